//! Scoring a model against labelled data: the confusion matrix and the figures derived from it, and
//! the data's drift profile beside the model's reference ([`DriftReport`]).

use std::io::{BufReader, Read};

use serde::Serialize;

use crate::data::TweetReader;
use crate::drift::{Profile, Signal, psi};
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

/// What an evaluation found.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub summary: Summary,
    /// Rows skipped (missing text or country).
    pub skipped: u64,
    /// The evaluated rows as drift sees them, predicted by the model.
    pub profile: Profile,
}

/// Evaluates `model` on the CSV at `location`; `progress` gets the bytes read so far.
pub fn evaluate_from(
    model: &Model,
    location: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Evaluation> {
    let shown = model_store::redact(location);
    let opened = model_store::open(location)?;
    let reader = DigestReader::new(BufReader::with_capacity(1 << 16, opened.reader), |n| {
        progress(n)
    });
    evaluate(model, reader, &shown)
}

/// Evaluates `model` on labelled CSV read from `reader` (e.g. bytes already downloaded and
/// verified); `shown` names the data in messages.
pub fn evaluate(model: &Model, reader: impl Read, shown: &str) -> Result<Evaluation> {
    let mut tweets = TweetReader::new(reader, shown)?;
    let mut confusion = Confusion::default();
    let mut profile = Profile::empty();
    while let Some(tweet) = tweets.next_tweet()? {
        let (prediction, observation) = model.predict_observed(tweet.text);
        confusion.add(prediction.is_american == 1, tweet.is_american);
        profile.observe(&observation);
    }
    if confusion.total() == 0 {
        return Err(Error::Data(format!(
            "{shown}: no usable rows to evaluate on"
        )));
    }
    Ok(Evaluation {
        summary: confusion.summary(),
        skipped: tweets.skipped(),
        profile,
    })
}

/// [`evaluate`]'s figures and rows skipped (what the operator's quality gate compares).
pub fn evaluate_reader(model: &Model, reader: impl Read, shown: &str) -> Result<(Summary, u64)> {
    evaluate(model, reader, shown).map(|e| (e.summary, e.skipped))
}

/// An evaluated data set's profile beside the model's reference, signal by signal: what
/// `predictor eval` prints after the figures (and under `drift` in its JSON).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftReport {
    /// Rows of the data.
    pub rows: u64,
    /// Rows of the reference; `None` when the model file has none (format 1).
    pub reference_rows: Option<u64>,
    pub signals: Vec<SignalDrift>,
}

/// One signal of a [`DriftReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SignalDrift {
    pub signal: &'static str,
    /// Each bin's upper bound as `/metrics` writes its `le` (`0.1`, `10.0`, `+Inf`).
    pub le: Vec<String>,
    /// Rows per bin: the data's, and the reference's.
    pub data: Vec<u64>,
    pub reference: Option<Vec<u64>>,
    /// PSI of the data against the reference ([`psi`]); `None` without a reference.
    pub psi: Option<f64>,
}

/// `data`'s profile beside `reference` (the model file's, if it has one). Pure.
pub fn drift_report(data: &Profile, reference: Option<&Profile>) -> DriftReport {
    let signals = Signal::ALL
        .into_iter()
        .map(|s| SignalDrift {
            signal: s.name(),
            le: s.bounds().iter().map(|&b| le(b)).collect(),
            data: data.counts(s).to_vec(),
            reference: reference.map(|r| r.counts(s).to_vec()),
            psi: reference.and_then(|r| psi(r.counts(s), data.counts(s))),
        })
        .collect();
    DriftReport {
        rows: data.rows,
        reference_rows: reference.map(|r| r.rows),
        signals,
    }
}

/// A bin's upper bound as an OpenMetrics `le`: the shortest text that reads back as the same number,
/// with a `.0` on whole numbers, or `+Inf`.
fn le(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".into()
    } else {
        format!("{bound:?}")
    }
}

/// Shares in percent, one column per bin.
fn shares_row(label: &str, counts: &[u64]) -> String {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    let cells: String = counts
        .iter()
        .map(|&c| format!("{:>7.1}", 100.0 * c as f64 / total))
        .collect();
    format!("    {label:<13}{cells}")
}

impl std::fmt::Display for DriftReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reference_rows {
            Some(rows) => write!(
                f,
                "drift              against the model's reference ({rows} training rows): % of rows per \
                 bin; PSI below 0.1 no shift, 0.1-0.25 moderate, above 0.25 large"
            )?,
            None => write!(
                f,
                "drift              the model file has no reference (format 1): this data's % of rows \
                 per bin only"
            )?,
        }
        for s in &self.signals {
            match s.psi {
                Some(psi) => write!(f, "\n  {:<17}PSI {psi:.4}", s.signal)?,
                None => write!(f, "\n  {}", s.signal)?,
            }
            let bounds: String = s.le.iter().map(|le| format!("{le:>7}")).collect();
            write!(f, "\n    {:<13}{bounds}", "le")?;
            write!(f, "\n{}", shares_row("this data", &s.data))?;
            if let Some(reference) = &s.reference {
                write!(f, "\n{}", shares_row("reference", reference))?;
            }
        }
        Ok(())
    }
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
        let in_memory = evaluate(&model, eval.as_bytes(), "eval").unwrap();
        assert_eq!(from_file, in_memory);
        assert_eq!(in_memory.summary.rows, (eval.lines().count() - 1) as u64);
        assert_eq!(in_memory.profile.rows, in_memory.summary.rows);
        assert_eq!(
            evaluate_reader(&model, eval.as_bytes(), "eval").unwrap(),
            (in_memory.summary, in_memory.skipped)
        );
        let err = evaluate_reader(&model, &b"text,country_code\n"[..], "empty").unwrap_err();
        assert!(err.to_string().contains("empty: no usable rows"), "{err}");
    }

    /// Two rows of data against a reference of four, every value chosen so the bins are known.
    fn profiles() -> (Profile, Profile) {
        use crate::drift::Observation;
        let o = |probability, known, length, is_american| Observation {
            probability,
            known,
            ngrams: 4,
            length,
            is_american,
        };
        let mut reference = Profile::empty();
        for row in [
            o(0.05, 4, 30, false),
            o(0.15, 4, 50, false),
            o(0.85, 3, 70, true),
            o(0.95, 4, 90, true),
        ] {
            reference.observe(&row);
        }
        let mut data = Profile::empty();
        data.observe(&o(0.95, 0, 5, true));
        data.observe(&o(0.95, 1, 300, true));
        (data, reference)
    }

    #[test]
    fn drift_report_lays_the_data_beside_the_reference_signal_by_signal() {
        let (data, reference) = profiles();
        let report = drift_report(&data, Some(&reference));
        let json = serde_json::to_value(&report).unwrap();
        let positive_psi = psi(&[2, 2], &[0, 2]).unwrap();
        assert_eq!(
            json["signals"][3],
            serde_json::json!({
                "signal": "positive",
                "le": ["0.0", "+Inf"],
                "data": [0, 2],
                "reference": [2, 2],
                "psi": positive_psi,
            })
        );
        assert_eq!(json["rows"], 2);
        assert_eq!(json["reference_rows"], 4);
        assert_eq!(
            json["signals"][2]["le"],
            serde_json::json!([
                "10.0", "20.0", "40.0", "60.0", "80.0", "100.0", "140.0", "200.0", "280.0", "+Inf"
            ])
        );
        assert_eq!(
            json["signals"][1]["data"],
            serde_json::json!([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
        );
        let names: Vec<&str> = report.signals.iter().map(|s| s.signal).collect();
        assert_eq!(names, ["probability", "known", "length", "positive"]);

        let text = report.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..5],
            [
                "drift              against the model's reference (4 training rows): % of rows per bin; \
                 PSI below 0.1 no shift, 0.1-0.25 moderate, above 0.25 large",
                &format!(
                    "  probability      PSI {:.4}",
                    psi(&reference.probability, &data.probability).unwrap()
                ),
                "    le               0.1    0.2    0.3    0.4    0.5    0.6    0.7    0.8    0.9   +Inf",
                "    this data        0.0    0.0    0.0    0.0    0.0    0.0    0.0    0.0    0.0  100.0",
                "    reference       25.0   25.0    0.0    0.0    0.0    0.0    0.0    0.0   25.0   25.0",
            ]
        );
        assert_eq!(lines.len(), 1 + 4 * 4, "{text}");
    }

    #[test]
    fn without_a_reference_the_report_says_so_and_shows_the_data_alone() {
        let (data, _) = profiles();
        let report = drift_report(&data, None);
        assert_eq!(report.reference_rows, None);
        assert!(
            report
                .signals
                .iter()
                .all(|s| s.psi.is_none() && s.reference.is_none())
        );
        let text = report.to_string();
        assert!(
            text.starts_with("drift              the model file has no reference (format 1)"),
            "{text}"
        );
        assert!(
            !text.contains("PSI") && !text.contains("reference   "),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1 + 4 * 3, "{text}");
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
