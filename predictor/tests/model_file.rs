//! The model file: save → load gives identical predictions, and the linfa-bayes model inside agrees with
//! the sparse scorer on real tweets.

mod common;

use linfa_bayes::NaiveBayes;
use predictor::classifier::dense;
use predictor::model::{Model, ModelFile};
use predictor::text::Features;
use predictor::text::vectorizer::Scratch;
use predictor::train::{TrainSettings, train_from_bytes};

#[test]
fn round_trip_keeps_every_prediction() {
    let (train, eval) = predictor::sample::split();
    let file = train_from_bytes(
        train.as_bytes(),
        "sample",
        &TrainSettings::default(),
        "2026-11-24T00:00:00Z",
    )
    .unwrap();
    let bytes = file.to_bytes().unwrap();
    let loaded = ModelFile::from_bytes(&bytes).unwrap();
    assert_eq!(loaded, file);
    let (a, b) = (Model::new(file).unwrap(), Model::new(loaded).unwrap());
    for line in eval.lines().chain(train.lines()) {
        assert_eq!(a.predict(line), b.predict(line));
    }
}

#[test]
fn sparse_scorer_agrees_with_linfa_on_real_tweets() {
    let train = std::fs::read(common::tweets("train.csv")).unwrap();
    let file = train_from_bytes(
        &train,
        "train.csv",
        &TrainSettings::default(),
        "2026-11-24T00:00:00Z",
    )
    .unwrap();
    let linfa_model = file.classifier.to_linfa().unwrap();
    let model = Model::new(file).unwrap();
    let test = predictor::data::read_all(
        std::fs::File::open(common::tweets("test.csv")).unwrap(),
        "test.csv",
    )
    .unwrap();
    let texts: Vec<&str> = test.iter().take(300).map(|(t, _)| t.as_str()).collect();
    let mut rows: Vec<Features> = Vec::new();
    let mut scratch = Scratch::default();
    for text in &texts {
        let mut row = Features::new();
        model.vectorizer().transform(text, &mut scratch, &mut row);
        assert!(row.iter().all(|&(_, w)| w.is_finite() && w >= 0.0));
        rows.push(row);
    }
    let (proba, _) = linfa_model.predict_proba(dense(&rows, model.vectorizer().len()).view());
    for (i, text) in texts.iter().enumerate() {
        let ours = model.predict(text).probability;
        assert!(
            (ours - proba[[i, 1]]).abs() < 1e-9,
            "{text}: {ours} vs {}",
            proba[[i, 1]]
        );
    }
}
