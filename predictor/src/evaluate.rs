//! Scoring a model against labelled data: the confusion matrix and the figures derived from it.

use std::io::{BufReader, Read};

use serde::Serialize;

use crate::data::TweetReader;
use crate::error::{Error, Result};
use crate::model::Model;
use model_store::digest::DigestReader;

/// Counts of (prediction, truth) pairs; "positive" = US.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub true_positive: u64,
    pub false_positive: u64,
    pub true_negative: u64,
    pub false_negative: u64,
}

impl Confusion {
    pub fn add(&mut self, predicted_us: bool, actually_us: bool) {
        match (predicted_us, actually_us) {
            (true, true) => self.true_positive += 1,
            (true, false) => self.false_positive += 1,
            (false, false) => self.true_negative += 1,
            (false, true) => self.false_negative += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.true_positive + self.false_positive + self.true_negative + self.false_negative
    }

    pub fn accuracy(&self) -> f64 {
        ratio(self.true_positive + self.true_negative, self.total())
    }

    pub fn precision(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_positive)
    }

    pub fn recall(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_negative)
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Accuracy of always answering the more common class of this data.
    pub fn majority_baseline(&self) -> f64 {
        let us = self.true_positive + self.false_negative;
        ratio(us.max(self.total() - us), self.total())
    }

    /// The figures, for printing or JSON.
    pub fn summary(&self) -> Summary {
        Summary {
            rows: self.total(),
            accuracy: self.accuracy(),
            precision: self.precision(),
            recall: self.recall(),
            f1: self.f1(),
            majority_baseline: self.majority_baseline(),
            confusion: *self,
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Figures derived from a confusion matrix.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub rows: u64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub majority_baseline: f64,
    pub confusion: Confusion,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.confusion;
        writeln!(f, "rows               {}", self.rows)?;
        writeln!(f, "accuracy           {:.4}", self.accuracy)?;
        writeln!(f, "precision (US)     {:.4}", self.precision)?;
        writeln!(f, "recall (US)        {:.4}", self.recall)?;
        writeln!(f, "F1 (US)            {:.4}", self.f1)?;
        writeln!(f, "majority baseline  {:.4}", self.majority_baseline)?;
        writeln!(f, "confusion matrix   predicted US  predicted other")?;
        writeln!(
            f,
            "  actual US        {:>12}  {:>15}",
            c.true_positive, c.false_negative
        )?;
        write!(
            f,
            "  actual other     {:>12}  {:>15}",
            c.false_positive, c.true_negative
        )
    }
}

/// Evaluates `model` on the CSV at `location`; `progress` gets the bytes read so far.
pub fn evaluate_from(
    model: &Model,
    location: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<(Summary, u64)> {
    let shown = model_store::redact(location);
    let opened = model_store::open(location)?;
    let reader = DigestReader::new(BufReader::with_capacity(1 << 16, opened.reader), |n| {
        progress(n)
    });
    evaluate_reader(model, reader, &shown)
}

/// Evaluates `model` on labelled CSV read from `reader` (e.g. bytes already downloaded and
/// verified); `shown` names the data in messages. The figures and the rows skipped.
pub fn evaluate_reader(model: &Model, reader: impl Read, shown: &str) -> Result<(Summary, u64)> {
    let mut tweets = TweetReader::new(reader, shown)?;
    let mut confusion = Confusion::default();
    while let Some(tweet) = tweets.next_tweet()? {
        let prediction = model.predict(tweet.text);
        confusion.add(prediction.is_american == 1, tweet.is_american);
    }
    if confusion.total() == 0 {
        return Err(Error::Data(format!(
            "{shown}: no usable rows to evaluate on"
        )));
    }
    Ok((confusion.summary(), tweets.skipped()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_from_a_known_matrix() {
        let mut c = Confusion::default();
        for (p, t, n) in [
            (true, true, 6),
            (true, false, 2),
            (false, false, 1),
            (false, true, 1),
        ] {
            (0..n).for_each(|_| c.add(p, t));
        }
        let s = c.summary();
        assert_eq!(s.rows, 10);
        assert!((s.accuracy - 0.7).abs() < 1e-12);
        assert!((s.precision - 0.75).abs() < 1e-12);
        assert!((s.recall - 6.0 / 7.0).abs() < 1e-12);
        assert!((s.f1 - 0.8).abs() < 1e-12);
        assert!((s.majority_baseline - 0.7).abs() < 1e-12);
    }

    #[test]
    fn bytes_in_memory_score_like_the_same_file() {
        let (train, eval) = crate::sample::split();
        let file = crate::train::train_from_bytes(
            train.as_bytes(),
            "train",
            &crate::train::TrainSettings::default(),
            "2026-11-24T00:00:00Z",
        )
        .unwrap();
        let model = Model::new(file).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eval.csv");
        std::fs::write(&path, &eval).unwrap();
        let from_file = evaluate_from(&model, path.to_str().unwrap(), &mut |_| {}).unwrap();
        let in_memory = evaluate_reader(&model, eval.as_bytes(), "eval").unwrap();
        assert_eq!(from_file, in_memory);
        assert_eq!(in_memory.0.rows, (eval.lines().count() - 1) as u64);
        let err = evaluate_reader(&model, &b"text,country_code\n"[..], "empty").unwrap_err();
        assert!(err.to_string().contains("empty: no usable rows"), "{err}");
    }

    #[test]
    fn empty_matrix_has_zero_figures_not_nan() {
        let s = Confusion::default().summary();
        assert_eq!(
            (s.accuracy, s.precision, s.recall, s.f1),
            (0.0, 0.0, 0.0, 0.0)
        );
    }
}
