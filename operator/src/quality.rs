//! The offline quality gate: before a new model rolls out, score it (and, for `maxAccuracyDrop`,
//! the model the Deployment runs) on `spec.validation`'s labelled data set, and refuse it when it
//! falls below a threshold.
//!
//! [`judge`] is pure: scores in, verdict and message out. [`QualityGate`] adds the bounded
//! downloads (the predictor's own [`Fetcher`], as for the model check), the scoring with the
//! predictor's own evaluator ([`predictor::evaluate::evaluate_reader`]) on a blocking thread, and a
//! cache of scores by (model digest, data digest), so the serving model is scored once, not on
//! every reconcile. A data set that cannot be read refuses the model too: the gate fails closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use predictor::source::{Fetcher, redact};
use tokio::sync::Semaphore;

use crate::crd::{DataSpec, ModelSpec, PredictorSpec, QualityStatus, ValidationSpec};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model_check::{fetch_reason, refusal_reason, verify_model};
use crate::resources::Served;
use crate::status::{ModelCheck, QualityCheck, reason, short};

/// Largest data set the gate downloads: scoring it must stay a matter of seconds and of tens of
/// MiB of memory in the operator's pod.
pub const DATA_MAX_BYTES: u64 = 32 << 20;
/// Longest one model's scoring may take (32 MiB of tweets take a few seconds on one core).
const SCORING_TIMEOUT: Duration = Duration::from_secs(60);
/// Scores kept at most; past that the cache starts over (cheap: only costs a re-scoring).
const CACHE_LIMIT: usize = 1024;
/// Gate runs at once: each holds a data set and up to two models in memory and keeps a core busy.
const PARALLEL_RUNS: usize = 2;
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

/// Checks that downloaded data set bytes are the pinned file.
pub fn verify_data(data: &DataSpec, bytes: &[u8]) -> Result<()> {
    let actual = predictor::model::sha256_hex(bytes);
    if actual != data.sha256 {
        return Err(Error::DataDigest {
            url: redact(&data.url),
            expected: data.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

/// Scores `model_bytes` (a verified model file) on `data` (verified CSV bytes) with the predictor's
/// evaluator. CPU-bound: run it on a blocking thread.
pub fn score(model_bytes: &[u8], data: &[u8], data_url: &str) -> Result<Score> {
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
    fetcher: Fetcher,
    model_max_bytes: u64,
    data_max_bytes: u64,
    scores: Mutex<HashMap<(String, String), Score>>,
    runs: Semaphore,
}

impl QualityGate {
    /// A gate that downloads at most `model_max_bytes` per model and `data_max_bytes` per data
    /// set, each within `timeout`.
    pub fn new(model_max_bytes: u64, data_max_bytes: u64, timeout: Duration) -> Result<Self> {
        let fetcher = Fetcher::new(timeout).map_err(|e| Error::DataFetch {
            url: "-".into(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            fetcher,
            model_max_bytes,
            data_max_bytes,
            scores: Mutex::new(HashMap::new()),
            runs: Semaphore::new(PARALLEL_RUNS),
        })
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
            })
        });
        match self
            .score_all(&spec.model, serving.as_ref(), &validation.data)
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
    ) -> Result<(Scored, Option<Scored>, bool)> {
        let wanted: Vec<&ModelSpec> = std::iter::once(candidate).chain(serving).collect();
        let missing = |gate: &Self| -> Vec<&ModelSpec> {
            wanted
                .iter()
                .copied()
                .filter(|m| gate.cached(&m.sha256, &data.sha256).is_none())
                .collect()
        };
        let fresh = if missing(self).is_empty() {
            false
        } else {
            let _permit = self.runs.acquire().await.expect("semaphore never closed");
            // Another reconcile may have scored the same models while this one waited.
            let missing = missing(self);
            let fresh = missing.iter().any(|m| m.sha256 == candidate.sha256);
            if !missing.is_empty() {
                let bytes = Arc::new(self.fetch_data(data).await?);
                for model in missing {
                    let score = self.score_model(model, &bytes, &data.url).await?;
                    self.remember(&model.sha256, &data.sha256, score);
                }
            }
            fresh
        };
        let scored = |m: &ModelSpec| -> Result<Scored> {
            let score = self
                .cached(&m.sha256, &data.sha256)
                .ok_or_else(|| Error::Evaluation {
                    model: short(&m.sha256).into(),
                    reason: "its score was dropped from the cache while in use; retrying".into(),
                })?;
            Ok(Scored {
                model_sha256: m.sha256.clone(),
                score,
            })
        };
        let serving = serving.map(scored).transpose()?;
        Ok((scored(candidate)?, serving, fresh))
    }

    /// Downloads the data set (at most `data_max_bytes`) and checks its digest.
    async fn fetch_data(&self, data: &DataSpec) -> Result<Vec<u8>> {
        let bytes = self
            .fetcher
            .fetch(&data.url, self.data_max_bytes)
            .await
            .map_err(|e| Error::DataFetch {
                url: redact(&data.url),
                reason: fetch_reason(e),
            })?;
        verify_data(data, &bytes)?;
        Ok(bytes)
    }

    /// Downloads and verifies `model`, then scores it on a blocking thread within the timeout.
    async fn score_model(
        &self,
        model: &ModelSpec,
        data: &Arc<Vec<u8>>,
        data_url: &str,
    ) -> Result<Score> {
        let bytes = self
            .fetcher
            .fetch(&model.url, self.model_max_bytes)
            .await
            .map_err(|e| Error::ModelFetch {
                url: redact(&model.url),
                reason: fetch_reason(e),
            })?;
        verify_model(&model.url, &model.sha256, &bytes)?;
        let (data, data_url) = (Arc::clone(data), data_url.to_string());
        let job = tokio::task::spawn_blocking(move || score(&bytes, &data, &data_url));
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
