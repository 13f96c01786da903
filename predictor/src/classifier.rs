//! Multinomial naive Bayes: trained by linfa-bayes, scored sparsely.
//!
//! Training streams feature rows into per-class column sums (memory = 2 × vocabulary, whatever the number
//! of rows). Each flushed batch goes to linfa-bayes' `MultinomialNb::fit_with` as one summary row per class:
//! multinomial NB depends on the data only through those sums and the class row counts, so the fitted
//! feature log-probabilities are exactly those of fitting every row (tested against a plain dense `fit`).
//! linfa counts *matrix rows* for its class priors, so the priors are set from the true row counts when
//! the fitted parameters are read out of linfa's model (through its public serde form).
//!
//! Scoring a tweet is a sparse dot product `ln p(US) - ln p(other) + Σ xⱼ·wⱼ` with
//! `w = log p(feature | US) - log p(feature | other)`: a handful of multiply-adds, no dense row, no allocation.

use std::collections::HashMap;

use linfa::DatasetBase;
use linfa::traits::FitWith;
use linfa_bayes::{MultinomialNb, MultinomialNbParams};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::text::Features;

/// Class labels: index 0 = not US, 1 = US.
pub const CLASSES: usize = 2;

/// Rows summed into one `fit_with` call. Memory does not depend on it (rows are summed as they come);
/// it bounds how often linfa-bayes 0.8.1 runs its leftover `dbg!` over the whole vocabulary.
pub const ROWS_PER_FIT: u64 = 200_000;

/// The fitted parameters, as stored in the model file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NbParams {
    /// Additive (Laplace/Lidstone) smoothing used in fitting.
    pub alpha: f64,
    /// Training rows per class.
    pub class_count: [u64; CLASSES],
    /// `ln p(class)`.
    pub log_prior: [f64; CLASSES],
    /// `ln p(feature | class)`, one vector per class, vocabulary-long.
    pub feature_log_prob: [Vec<f64>; CLASSES],
}

/// Per-class column sums of feature rows and row counts: all multinomial NB needs from a batch of rows.
/// Filled row by row (by several workers at once), merged, then handed to [`NbTrainer::fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct ClassSums {
    sums: [Vec<f64>; CLASSES],
    rows: [u64; CLASSES],
}

impl ClassSums {
    pub fn new(columns: usize) -> Self {
        Self {
            sums: [vec![0.0; columns], vec![0.0; columns]],
            rows: [0; CLASSES],
        }
    }

    /// Adds one row (finite, non-negative weights) with its label.
    pub fn add(&mut self, row: &[(u32, f64)], is_american: bool) {
        let class = usize::from(is_american);
        let sums = &mut self.sums[class];
        for &(col, weight) in row {
            debug_assert!(weight.is_finite() && weight >= 0.0);
            sums[col as usize] += weight;
        }
        self.rows[class] += 1;
    }

    /// Adds another batch's sums into this one.
    pub fn merge(&mut self, other: &ClassSums) {
        for class in 0..CLASSES {
            self.sums[class]
                .iter_mut()
                .zip(&other.sums[class])
                .for_each(|(a, b)| *a += b);
            self.rows[class] += other.rows[class];
        }
    }

    /// Rows added so far.
    pub fn rows(&self) -> u64 {
        self.rows.iter().sum()
    }
}

/// Fits linfa-bayes' `MultinomialNb` batch by batch with `fit_with`.
pub struct NbTrainer {
    params: MultinomialNbParams<f64, usize>,
    alpha: f64,
    columns: usize,
    model: Option<MultinomialNb<f64, usize>>,
    class_count: [u64; CLASSES],
}

impl NbTrainer {
    /// A trainer for `columns` features with smoothing `alpha` (> 0, checked here once).
    pub fn new(columns: usize, alpha: f64) -> Result<Self> {
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(Error::Settings(format!(
                "alpha must be a positive number, not {alpha}"
            )));
        }
        Ok(Self {
            params: MultinomialNb::params().alpha(alpha),
            alpha,
            columns,
            model: None,
            class_count: [0; CLASSES],
        })
    }

    /// Fits one batch: `fit_with` on one summary row per class present in it.
    pub fn fit(&mut self, batch: &ClassSums) -> Result<()> {
        let present: Vec<usize> = (0..CLASSES).filter(|&c| batch.rows[c] > 0).collect();
        if present.is_empty() {
            return Ok(());
        }
        let mut records = Array2::<f64>::zeros((present.len(), self.columns));
        for (row, &class) in present.iter().enumerate() {
            records
                .row_mut(row)
                .assign(&ndarray::ArrayView1::from(&batch.sums[class]));
            self.class_count[class] += batch.rows[class];
        }
        let dataset = DatasetBase::new(records, Array1::from_vec(present));
        let fitted = {
            // NB: linfa-bayes 0.8.1 leaves a `dbg!` in `fit_with` that prints both vocabulary-long arrays
            // of every class to stderr on each call. Silence it for the duration of the call.
            let _quiet = StderrSilencer::new();
            self.params.fit_with(self.model.take(), &dataset)
        };
        self.model = Some(fitted.map_err(|e| Error::Training(e.to_string()))?);
        Ok(())
    }

    /// The fitted parameters, priors from the true class counts.
    pub fn finish(self) -> Result<NbParams> {
        let total: u64 = self.class_count.iter().sum();
        if let Some(missing) = (0..CLASSES).find(|&c| self.class_count[c] == 0) {
            let label = if missing == 1 { "US" } else { "non-US" };
            return Err(Error::Data(format!(
                "the training data has no {label} rows ({total} rows in all): a classifier needs both classes"
            )));
        }
        let model = self
            .model
            .ok_or_else(|| Error::Training("no batch was fitted".into()))?;
        let mut histograms = read_class_histograms(&model)?;
        let mut take = |class: usize| {
            histograms
                .remove(&class)
                .map(|h| h.feature_log_prob.to_vec())
                .ok_or_else(|| {
                    Error::Training(format!(
                        "linfa-bayes returned no parameters for class {class}"
                    ))
                })
        };
        let feature_log_prob = [take(0)?, take(1)?];
        let log_prior = self.class_count.map(|n| (n as f64 / total as f64).ln());
        Ok(NbParams {
            alpha: self.alpha,
            class_count: self.class_count,
            log_prior,
            feature_log_prob,
        })
    }
}

/// Mirror of linfa-bayes 0.8.1's private `ClassHistogram`, field for field, to read the fitted numbers
/// through the model's public serde form. `read_class_histograms` is tested against linfa's own predictions.
#[derive(Serialize, Deserialize)]
struct ClassHistogram {
    class_count: usize,
    prior: f64,
    feature_count: Array1<f64>,
    feature_log_prob: Array1<f64>,
}

#[derive(Serialize, Deserialize)]
struct MultinomialNbMirror {
    class_info: HashMap<usize, ClassHistogram>,
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn read_class_histograms(
    model: &MultinomialNb<f64, usize>,
) -> Result<HashMap<usize, ClassHistogram>> {
    let bytes = bincode::serde::encode_to_vec(model, bincode_config())
        .map_err(|e| Error::Training(format!("cannot serialize the linfa model: {e}")))?;
    let (mirror, _): (MultinomialNbMirror, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode_config())
            .map_err(|e| Error::Training(format!("linfa model layout changed: {e}")))?;
    Ok(mirror.class_info)
}

impl NbParams {
    /// The same parameters as a linfa-bayes model (for cross-checks and library users).
    pub fn to_linfa(&self) -> Result<MultinomialNb<f64, usize>> {
        let class_info = (0..CLASSES)
            .map(|c| {
                let histogram = ClassHistogram {
                    class_count: self.class_count[c] as usize,
                    prior: self.log_prior[c].exp(),
                    feature_count: Array1::zeros(self.feature_log_prob[c].len()),
                    feature_log_prob: Array1::from_vec(self.feature_log_prob[c].clone()),
                };
                (c, histogram)
            })
            .collect();
        let bytes =
            bincode::serde::encode_to_vec(MultinomialNbMirror { class_info }, bincode_config())
                .map_err(|e| Error::Training(e.to_string()))?;
        bincode::serde::decode_from_slice(&bytes, bincode_config())
            .map(|(model, _)| model)
            .map_err(|e| Error::Training(format!("linfa model layout changed: {e}")))
    }

    /// Checks shapes and values after loading (the file's checksum already matched).
    pub fn validate(&self, columns: usize) -> Result<()> {
        for c in 0..CLASSES {
            if self.feature_log_prob[c].len() != columns {
                return Err(Error::Corrupt(format!(
                    "class {c} has {} feature weights for {columns} vocabulary entries",
                    self.feature_log_prob[c].len()
                )));
            }
            let finite = self.log_prior[c].is_finite()
                && self.feature_log_prob[c].iter().all(|p| p.is_finite());
            if !finite {
                return Err(Error::Corrupt(format!(
                    "class {c} has a non-finite parameter"
                )));
            }
        }
        Ok(())
    }
}

/// The prediction path: a bias and one weight per feature.
#[derive(Clone, Debug)]
pub struct Scorer {
    bias: f64,
    weights: Vec<f64>,
}

impl Scorer {
    pub fn new(params: &NbParams) -> Self {
        let [other, us] = &params.feature_log_prob;
        Self {
            bias: params.log_prior[1] - params.log_prior[0],
            weights: us.iter().zip(other).map(|(u, o)| u - o).collect(),
        }
    }

    /// `ln p(US | x) - ln p(other | x)`.
    pub fn log_odds(&self, row: &[(u32, f64)]) -> f64 {
        self.bias
            + row
                .iter()
                .map(|&(col, x)| x * self.weights[col as usize])
                .sum::<f64>()
    }

    /// `p(US | x)`.
    pub fn probability(&self, row: &[(u32, f64)]) -> f64 {
        1.0 / (1.0 + (-self.log_odds(row)).exp())
    }

    /// 1 when the author is predicted to be in the US. Ties go to the lower class, like linfa's argmax.
    pub fn predict(&self, row: &[(u32, f64)]) -> u8 {
        u8::from(self.log_odds(row) > 0.0)
    }
}

/// Points stderr at /dev/null until dropped, then restores it. Only used around `fit_with` (see above).
///
/// NB: fd 2 is replaced atomically with `dup2`, never closed, so another thread opening a file or socket
/// meanwhile cannot be handed descriptor 2. (The test harness captures `dbg!` output in-process instead,
/// so tests still show it when they fail.)
struct StderrSilencer {
    saved: Option<libc::c_int>,
}

impl StderrSilencer {
    fn new() -> Self {
        // SAFETY: plain descriptor calls on fd 2 and descriptors opened here; any failure leaves stderr as is.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if null < 0 {
                return Self { saved: None };
            }
            let saved = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3);
            if saved >= 0 {
                libc::dup2(null, 2);
            }
            libc::close(null);
            Self {
                saved: (saved >= 0).then_some(saved),
            }
        }
    }
}

impl Drop for StderrSilencer {
    fn drop(&mut self) {
        if let Some(saved) = self.saved {
            // SAFETY: restores the descriptor saved in `new`.
            unsafe {
                libc::dup2(saved, 2);
                libc::close(saved);
            }
        }
    }
}

/// Densifies sparse rows (tests and cross-checks only: serving never builds dense rows).
pub fn dense(rows: &[Features], columns: usize) -> Array2<f64> {
    let mut out = Array2::zeros((rows.len(), columns));
    for (r, row) in rows.iter().enumerate() {
        for &(col, w) in row {
            out[[r, col as usize]] = w;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::traits::{Fit, Predict};
    use linfa_bayes::NaiveBayes;

    /// Six rows over three features; class 1 leans on feature 0, class 0 on feature 2.
    fn toy() -> (Vec<Features>, Vec<bool>) {
        let rows = vec![
            vec![(0, 2.0), (1, 1.0)],
            vec![(0, 1.0)],
            vec![(0, 3.0), (2, 1.0)],
            vec![(2, 2.0)],
            vec![(1, 1.0), (2, 1.0)],
            vec![(2, 4.0)],
        ];
        (rows, vec![true, true, true, false, false, false])
    }

    /// Fits row by row in batches of two (several `fit_with` calls, summary rows merged per batch).
    fn stream(rows: &[Features], labels: &[bool], alpha: f64) -> NbParams {
        let mut trainer = NbTrainer::new(3, alpha).unwrap();
        for (chunk, chunk_labels) in rows.chunks(2).zip(labels.chunks(2)) {
            let (mut first, mut second) = (ClassSums::new(3), ClassSums::new(3));
            first.add(&chunk[0], chunk_labels[0]);
            if chunk.len() > 1 {
                second.add(&chunk[1], chunk_labels[1]);
            }
            first.merge(&second);
            trainer.fit(&first).unwrap();
        }
        trainer.finish().unwrap()
    }

    #[test]
    fn streamed_summary_fit_equals_plain_dense_fit() {
        let (rows, labels) = toy();
        let params = stream(&rows, &labels, 0.5);
        let targets = Array1::from_iter(labels.iter().map(|&l| usize::from(l)));
        let dataset = DatasetBase::new(dense(&rows, 3), targets);
        let reference = MultinomialNb::params().alpha(0.5).fit(&dataset).unwrap();
        let ours = params.to_linfa().unwrap();
        let records = dense(&rows, 3);
        let (jll_ref, jll_ours) = (
            reference.joint_log_likelihood(records.view()),
            ours.joint_log_likelihood(records.view()),
        );
        for class in [0usize, 1] {
            let (a, b) = (&jll_ref[&class], &jll_ours[&class]);
            assert!(
                a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12),
                "class {class}: {a} vs {b}"
            );
        }
        assert_eq!(reference.predict(&records), ours.predict(&records));
        assert_eq!(params.class_count, [3, 3]);
    }

    #[test]
    fn scorer_matches_linfa_probabilities() {
        let (rows, labels) = toy();
        // Uneven classes, so the prior matters.
        let (rows, labels) = (rows[..5].to_vec(), labels[..5].to_vec());
        let params = stream(&rows, &labels, 1.0);
        let scorer = Scorer::new(&params);
        let linfa_model = params.to_linfa().unwrap();
        let (proba, classes) = linfa_model.predict_proba(dense(&rows, 3).view());
        assert_eq!(classes, [&0, &1]);
        for (r, row) in rows.iter().enumerate() {
            assert!((scorer.probability(row) - proba[[r, 1]]).abs() < 1e-12);
        }
        assert!((params.log_prior[1] - (3.0f64 / 5.0).ln()).abs() < 1e-15);
    }

    #[test]
    fn known_answer_by_hand() {
        // alpha = 1: class 1 feature sums (6, 1, 1) → p = (7, 2, 2)/11; class 0 sums (0, 1, 7) → (1, 2, 8)/11.
        let (rows, labels) = toy();
        let params = stream(&rows, &labels, 1.0);
        let expect_us = [7.0f64 / 11.0, 2.0 / 11.0, 2.0 / 11.0].map(f64::ln);
        let expect_other = [1.0f64 / 11.0, 2.0 / 11.0, 8.0 / 11.0].map(f64::ln);
        for j in 0..3 {
            assert!((params.feature_log_prob[1][j] - expect_us[j]).abs() < 1e-12);
            assert!((params.feature_log_prob[0][j] - expect_other[j]).abs() < 1e-12);
        }
        let scorer = Scorer::new(&params);
        assert_eq!(scorer.predict(&[(0, 1.0)]), 1);
        assert_eq!(scorer.predict(&[(2, 1.0)]), 0);
        // No known feature: the prior decides (3 vs 3 → tie → class 0).
        assert_eq!(scorer.predict(&[]), 0);
    }

    #[test]
    fn one_class_only_and_bad_alpha_are_errors() {
        let (rows, _) = toy();
        let mut trainer = NbTrainer::new(3, 1.0).unwrap();
        let mut batch = ClassSums::new(3);
        batch.add(&rows[0], true);
        trainer.fit(&batch).unwrap();
        assert!(matches!(trainer.finish(), Err(Error::Data(m)) if m.contains("no non-US rows")));
        assert!(NbTrainer::new(3, 0.0).is_err());
        assert!(NbTrainer::new(3, f64::NAN).is_err());
    }

    #[test]
    fn validate_catches_shape_and_nan() {
        let (rows, labels) = toy();
        let mut params = stream(&rows, &labels, 1.0);
        assert!(params.validate(3).is_ok());
        assert!(params.validate(4).is_err());
        params.feature_log_prob[0][1] = f64::NAN;
        assert!(params.validate(3).is_err());
    }
}
