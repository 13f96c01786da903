//! The offline quality gate: before a new model rolls out, score it (and, for `maxAccuracyDrop`,
//! the model the Deployment runs) on `spec.validation`'s labelled data set, and refuse it when it
//! falls below a threshold.
//!
//! [`judge`] is pure: scores in, verdict and message out. [`QualityGate`] adds the bounded
//! downloads (the model check's fetch-once [`Spool`]: the candidate the check downloaded is read
//! from there, not downloaded again, and the data set is spooled the same way and streamed from
//! disk while scored), the scoring with the predictor's own evaluator
//! ([`predictor::evaluate::evaluate_reader`]) on a blocking thread within what the memory
//! [`Budget`] lends it, and a cache of scores by (model digest, data digest), so the serving model
//! is scored once, not on every reconcile. A data set that cannot be read refuses the model too:
//! the gate fails closed.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model_store::{StoreAccess, redact};
use tokio::sync::Semaphore;

use crate::budget::Budget;
use crate::crd::{DataSpec, ModelSpec, PredictorSpec, QualityStatus, ValidationSpec};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model_check::{ModelChecker, Pinned, refusal_reason, spooled, spooled_model};
use crate::resources::Served;
use crate::spool::{Spool, Spooled};
use crate::status::{ModelCheck, QualityCheck, reason, short};

/// Largest data set the gate downloads: scoring it must stay a matter of seconds. It is read from
/// the spool, not held, but the CSV reader may hold a record as long as the file.
pub const DATA_MAX_BYTES: u64 = 32 << 20;
/// What scoring a model file of n bytes on a data set of d bytes may hold in memory: the decode
/// twice over (the model is built from a copy of the decoded file), the CSV reader's buffers and
/// its longest record (at most the file), and a MiB of slack.
pub fn scoring_memory(model_len: u64, data_len: u64) -> u64 {
    2 * predictor::model::decode_memory_bound(model_len) + data_len + (1 << 20)
}
/// Longest one model's scoring may take (32 MiB of tweets take a few seconds on one core).
const SCORING_TIMEOUT: Duration = Duration::from_secs(60);
/// Scores kept at most; past that the cache starts over (cheap: only costs a re-scoring).
const CACHE_LIMIT: usize = 1024;
/// Gate runs at once: each reads a data set and up to two models from the spool and keeps a core
/// busy.
pub const PARALLEL_RUNS: usize = 2;
/// Accuracies closer than this are equal (a threshold met exactly passes).
const EPSILON: f64 = 1e-9;

/// One model's score on one data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// Fraction of rows classified correctly.
    pub accuracy: f64,
    /// Rows scored.
    pub rows: u64,
}

/// A model (by digest) and its score.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    pub model_sha256: String,
    pub score: Score,
}

/// The verdict on `candidate` under `validation`'s thresholds; `serving` is the model the
/// Deployment runs, scored on the same data (`None` when no model serves yet, or when only
/// `minAccuracy` is set).
pub fn judge(
    validation: &ValidationSpec,
    candidate: &Scored,
    serving: Option<&Scored>,
) -> QualityCheck {
    let accuracy = candidate.score.accuracy;
    let mut met = Vec::new();
    let mut missed = Vec::new();
    if let Some(min) = validation.min_accuracy {
        if accuracy + EPSILON < min {
            missed.push(format!("below spec.validation.minAccuracy {min:.4}"));
        } else {
            met.push(format!("meets minAccuracy {min:.4}"));
        }
    }
    if let Some(max_drop) = validation.max_accuracy_drop {
        match serving {
            Some(s) => {
                let drop = s.score.accuracy - accuracy;
                let compared = format!(
                    "the serving model {}'s {:.4}",
                    short(&s.model_sha256),
                    s.score.accuracy
                );
                if drop > max_drop + EPSILON {
                    missed.push(format!(
                        "{drop:.4} below {compared}, more than spec.validation.maxAccuracyDrop {max_drop:.4}"
                    ));
                } else {
                    met.push(format!(
                        "within maxAccuracyDrop {max_drop:.4} of {compared}"
                    ));
                }
            }
            None => met.push("no model serves yet, so maxAccuracyDrop does not apply".into()),
        }
    }
    let figures = format!(
        "model {} has accuracy {accuracy:.4} on {} rows of validation data {}",
        short(&candidate.model_sha256),
        candidate.score.rows,
        short(&validation.data.sha256)
    );
    let measured = QualityStatus {
        model_sha256: candidate.model_sha256.clone(),
        accuracy,
        data_sha256: validation.data.sha256.clone(),
        rows: candidate.score.rows,
        serving_model_sha256: serving.map(|s| s.model_sha256.clone()),
        serving_accuracy: serving.map(|s| s.score.accuracy),
    };
    if missed.is_empty() {
        QualityCheck::Passed {
            measured,
            message: format!("{figures}: {}", met.join("; ")),
        }
    } else {
        QualityCheck::Below {
            measured,
            message: format!(
                "{figures}: {}; the Deployment was left unchanged and the old pods keep serving",
                missed.join("; ")
            ),
        }
    }
}

/// How a gate that could not score shows in the status: refused, with the error's reason.
pub fn failure(error: &Error, model: &ModelSpec) -> QualityCheck {
    let reason = match error {
        Error::DataFetch { .. } => reason::VALIDATION_DATA_UNAVAILABLE,
        Error::DataDigest { .. } => reason::VALIDATION_DATA_DIGEST_MISMATCH,
        Error::DataInvalid { .. } => reason::VALIDATION_DATA_INVALID,
        Error::Evaluation { .. } => reason::EVALUATION_FAILED,
        other => refusal_reason(other),
    };
    QualityCheck::Failed {
        reason: reason.into(),
        message: format!(
            "{error}; the quality gate cannot judge model {}, so the Deployment was left unchanged",
            short(&model.sha256)
        ),
    }
}

/// Scores `model_bytes` (a verified model file) on `data` (the verified CSV, read as it goes) with
/// the predictor's evaluator. CPU-bound: run it on a blocking thread.
pub fn score(model_bytes: &[u8], data: impl Read, data_url: &str) -> Result<Score> {
    let model =
        predictor::model::Model::from_bytes(model_bytes).map_err(|e| Error::Evaluation {
            model: "-".into(),
            reason: e.to_string(),
        })?;
    let shown = redact(data_url);
    let (summary, _skipped) =
        predictor::evaluate::evaluate_reader(&model, data, &shown).map_err(|e| {
            Error::DataInvalid {
                url: shown.clone(),
                reason: match e {
                    // The evaluator's message already names the data.
                    predictor::Error::Data(message) => message,
                    other => other.to_string(),
                },
            }
        })?;
    Ok(Score {
        accuracy: summary.accuracy,
        rows: summary.rows,
    })
}

/// Scores models on data sets, remembering the scores.
pub struct QualityGate {
    spool: Arc<Spool>,
    budget: Arc<Budget>,
    model_max_bytes: u64,
    data_max_bytes: u64,
    scores: Mutex<HashMap<(String, String), Score>>,
    runs: Semaphore,
}

impl QualityGate {
    /// A gate that reads models through `checker`'s spool (the copies it downloaded; at most its
    /// model size limit) and data sets of at most `data_max_bytes`, within its memory budget.
    pub fn new(checker: &ModelChecker, data_max_bytes: u64) -> Self {
        Self {
            spool: checker.spool().clone(),
            budget: checker.budget().clone(),
            model_max_bytes: checker.max_bytes(),
            data_max_bytes,
            scores: Mutex::new(HashMap::new()),
            runs: Semaphore::new(PARALLEL_RUNS),
        }
    }

    fn cached(&self, model_sha256: &str, data_sha256: &str) -> Option<Score> {
        let cache = self.scores.lock().expect("cache lock");
        cache
            .get(&(model_sha256.to_string(), data_sha256.to_string()))
            .copied()
    }

    fn remember(&self, model_sha256: &str, data_sha256: &str, score: Score) {
        let mut cache = self.scores.lock().expect("cache lock");
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert((model_sha256.into(), data_sha256.into()), score);
    }

    /// The gate's verdict on `spec.model`: off without `spec.validation`; not run when the model
    /// check refused the model or when `serving` (the Deployment) already runs it; else scored
    /// (from the cache, or by downloading) and judged.
    pub async fn check(
        &self,
        spec: &PredictorSpec,
        model: &ModelCheck,
        serving: Option<&Served>,
        access: &StoreAccess,
        metrics: &Metrics,
    ) -> QualityCheck {
        let Some(validation) = &spec.validation else {
            return QualityCheck::Off;
        };
        if matches!(model, ModelCheck::Rejected { .. }) {
            return QualityCheck::Unchecked {
                reason: reason::MODEL_NOT_VERIFIED.into(),
                message: "not measured: the model was refused, see ModelVerified".into(),
            };
        }
        if serving.is_some_and(|s| s.runs_model(&spec.model)) {
            return QualityCheck::Serving;
        }
        // The serving model is scored only when a threshold compares against it.
        let serving = validation.max_accuracy_drop.and(serving).and_then(|s| {
            Some(ModelSpec {
                url: s.model_url.clone()?,
                sha256: s.model_sha256.clone()?,
                ..ModelSpec::default()
            })
        });
        match self
            .score_all(&spec.model, serving.as_ref(), &validation.data, access)
            .await
        {
            Ok((candidate, serving, fresh)) => {
                let verdict = judge(validation, &candidate, serving.as_ref());
                if fresh {
                    metrics.quality_check(match verdict {
                        QualityCheck::Passed { .. } => "passed",
                        _ => "below_gate",
                    });
                }
                verdict
            }
            Err(e) => {
                metrics.quality_check(e.metric_label());
                tracing::warn!(data = %redact(&validation.data.url), error = %e, "quality gate cannot score");
                failure(&e, &spec.model)
            }
        }
    }

    /// Scores of `candidate` and `serving` on `data`, and whether the candidate's was computed now
    /// (not cached). Downloads the data set once for both, only when a score is missing.
    async fn score_all(
        &self,
        candidate: &ModelSpec,
        serving: Option<&ModelSpec>,
        data: &DataSpec,
        access: &StoreAccess,
    ) -> Result<(Scored, Option<Scored>, bool)> {
        let wanted: Vec<&ModelSpec> = std::iter::once(candidate).chain(serving).collect();
        let lookup = |gate: &Self| -> Vec<Option<Score>> {
            wanted
                .iter()
                .map(|m| gate.cached(&m.sha256, &data.sha256))
                .collect()
        };
        let mut scores = lookup(self);
        let mut fresh = false;
        if scores.iter().any(Option::is_none) {
            let _permit = self.runs.acquire().await.expect("semaphore never closed");
            // Another reconcile may have scored the same models while this one waited.
            scores = lookup(self);
            fresh = scores[0].is_none();
            if scores.iter().any(Option::is_none) {
                let bytes = self.fetch_data(data, access).await?;
                for (i, (model, score)) in wanted.iter().zip(scores.iter_mut()).enumerate() {
                    if score.is_none() {
                        let scored = self
                            .score_model(model, &bytes, &data.url, access)
                            .await
                            .map_err(|e| match i {
                                0 => e,
                                // Say whose model it is: the user did not name it in this spec.
                                _ => Error::Evaluation {
                                    model: short(&model.sha256).into(),
                                    reason: format!(
                                        "it is the serving model maxAccuracyDrop compares against: {e}"
                                    ),
                                },
                            })?;
                        self.remember(&model.sha256, &data.sha256, scored);
                        *score = Some(scored);
                    }
                }
            }
        }
        let mut scored = wanted.iter().zip(scores).map(|(m, score)| Scored {
            model_sha256: m.sha256.clone(),
            score: score.expect("every missing score was computed above"),
        });
        let candidate = scored.next().expect("the candidate is wanted first");
        Ok((candidate, scored.next(), fresh))
    }

    /// The spooled data set (downloaded once, at most `data_max_bytes`, its digest checked; a URL
    /// [`DATA_URL`](crate::store_url::DATA_URL) allows).
    fn fetch_data<'a>(
        &'a self,
        data: &'a DataSpec,
        access: &'a StoreAccess,
    ) -> impl Future<Output = Result<Arc<Spooled>>> + 'a {
        let file = (Pinned::Data, data.url.as_str(), data.sha256.as_str());
        spooled(&self.spool, &self.budget, self.data_max_bytes, file, access)
    }

    /// The spooled `model` (the model check's copy, or downloaded now; a URL [`crate::store_url::MODEL_URL`] allows:
    /// the serving model's comes from the Deployment, which may have been edited by hand), scored
    /// on a blocking thread within the timeout and the memory the budget lends it.
    async fn score_model(
        &self,
        model: &ModelSpec,
        data: &Arc<Spooled>,
        data_url: &str,
        access: &StoreAccess,
    ) -> Result<Score> {
        let file = spooled_model(
            &self.spool,
            &self.budget,
            self.model_max_bytes,
            model,
            access,
        )
        .await?;
        let memory = self
            .budget
            .reserve(scoring_memory(file.len, data.len), "scoring the model")
            .await
            .map_err(|reason| Error::Evaluation {
                model: short(&model.sha256).into(),
                reason,
            })?;
        let (data, data_url, model_url) =
            (Arc::clone(data), data_url.to_string(), model.url.clone());
        // The reservation goes with the blocking thread: on a timeout below the thread finishes
        // in the background, and its memory stays counted until it does.
        let job = tokio::task::spawn_blocking(move || {
            let _memory = memory;
            let unreadable = |e: std::io::Error| Error::Evaluation {
                model: "-".into(),
                reason: format!("cannot read the spooled copy: {e}"),
            };
            let bytes = std::fs::read(file.path()).map_err(unreadable)?;
            crate::model_check::verify_model_file(&model_url, &bytes)?;
            let csv = std::fs::File::open(data.path()).map_err(unreadable)?;
            score(&bytes, std::io::BufReader::new(csv), &data_url)
        });
        let named = |reason: String| Error::Evaluation {
            model: short(&model.sha256).into(),
            reason,
        };
        // NB: a blocking thread cannot be cancelled; on timeout it finishes in the background,
        // bounded by the data set's size limit.
        match tokio::time::timeout(SCORING_TIMEOUT, job).await {
            Ok(Ok(Err(Error::Evaluation { reason, .. }))) => Err(named(reason)),
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(named(format!("the scoring thread failed: {join}"))),
            Err(_) => Err(named(format!(
                "scoring took more than {} s",
                SCORING_TIMEOUT.as_secs()
            ))),
        }
    }
}

#[cfg(test)]
impl QualityGate {
    /// [`check`](Self::check) of a verified model, with no store credentials.
    pub(crate) async fn check_verified(
        &self,
        spec: &PredictorSpec,
        serving: Option<&Served>,
        metrics: &Metrics,
    ) -> QualityCheck {
        let verified = ModelCheck::Passed(());
        self.check(spec, &verified, serving, &StoreAccess::default(), metrics)
            .await
    }
}

#[cfg(test)]
mod tests;
