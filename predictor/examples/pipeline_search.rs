//! Chooses the default pipeline by 5-fold cross-validation on the training file, and shows the held-out
//! test accuracy beside it (the test file plays no part in the choice).
//!
//! Run: cargo run --release -p predictor --example pipeline_search -- TRAIN_CSV TEST_CSV
//! Prints a markdown table, best cross-validated accuracy first.

use std::time::Instant;

use predictor::evaluate::Confusion;
use predictor::model::Model;
use predictor::text::TextSettings;
use predictor::train::{TrainSettings, train_from_bytes};

const FOLDS: usize = 5;
const DATE: &str = "2026-01-01T00:00:00Z";

fn to_csv(rows: &[&(String, bool)]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["text", "country_code"]).unwrap();
    for (text, us) in rows {
        writer
            .write_record([text.as_str(), if *us { "US" } else { "XX" }])
            .unwrap();
    }
    writer.into_inner().unwrap()
}

fn accuracy(model: &Model, rows: &[&(String, bool)]) -> f64 {
    let mut confusion = Confusion::default();
    rows.iter()
        .for_each(|(text, us)| confusion.add(model.predict(text).is_american == 1, *us));
    confusion.accuracy()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (train_path, test_path) = match &args[..] {
        [_, train, test] => (train, test),
        _ => anyhow::bail!("usage: pipeline_search TRAIN_CSV TEST_CSV"),
    };
    let train = predictor::data::read_all(std::fs::File::open(train_path)?, train_path)?;
    let test = predictor::data::read_all(std::fs::File::open(test_path)?, test_path)?;
    let train_bytes = std::fs::read(train_path)?;
    let test_refs: Vec<&(String, bool)> = test.iter().collect();

    let mut grid = Vec::new();
    for char_ngrams in [None, Some((3, 3)), Some((2, 3)), Some((2, 4)), Some((3, 5))] {
        for max_features in [None, Some(3000), Some(4000), Some(6000), Some(10000)] {
            for alpha in [0.1, 0.3, 1.0] {
                for ngram_max in [1, 2] {
                    let text = TextSettings {
                        ngram_max,
                        char_ngrams,
                        max_features,
                        ..TextSettings::default()
                    };
                    grid.push(TrainSettings { text, alpha });
                }
            }
        }
    }
    grid.push(TrainSettings {
        text: TextSettings {
            stop_words: true,
            ..TextSettings::default()
        },
        alpha: 1.0,
    });
    grid.push(TrainSettings {
        text: TextSettings {
            sublinear_tf: false,
            ..TextSettings::default()
        },
        alpha: 1.0,
    });

    let mut results = Vec::new();
    for settings in &grid {
        let mut fold_accuracy = 0.0;
        for fold in 0..FOLDS {
            let (mut fit, mut held) = (Vec::new(), Vec::new());
            for (i, row) in train.iter().enumerate() {
                if i % FOLDS == fold {
                    held.push(row)
                } else {
                    fit.push(row)
                }
            }
            let model = Model::new(train_from_bytes(&to_csv(&fit), "fold", settings, DATE)?)?;
            fold_accuracy += accuracy(&model, &held) / FOLDS as f64;
        }
        let started = Instant::now();
        let model = Model::new(train_from_bytes(&train_bytes, "train", settings, DATE)?)?;
        let seconds = started.elapsed().as_secs_f64();
        results.push((
            fold_accuracy,
            accuracy(&model, &test_refs),
            seconds,
            settings.clone(),
            model.vectorizer().len(),
        ));
    }
    results.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!(
        "| 5-fold CV accuracy (train.csv) | test accuracy | train s | n-grams | word n | char n | max features | stop words | sublinear tf | alpha |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (cv, test, seconds, s, features) in results {
        let t = &s.text;
        println!(
            "| {cv:.4} | {test:.4} | {seconds:.3} | {features} | 1-{} | {} | {} | {} | {} | {} |",
            t.ngram_max,
            t.char_ngrams
                .map_or("-".into(), |(a, b)| format!("{a}-{b}")),
            t.max_features.map_or("all".into(), |m| m.to_string()),
            t.stop_words,
            t.sublinear_tf,
            s.alpha
        );
    }
    Ok(())
}
