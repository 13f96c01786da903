//! What the handlers share: the served model once verified, readiness, the metrics and the shadow.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::answer::AnswerShape;
use crate::error::Result;
use crate::metrics::{Metrics, ModelInfo};
use crate::model::Model;
use crate::shadow::{Shadow, ShadowConfig};

/// The model being served, once verified.
#[derive(Debug)]
pub struct ServedModel {
    pub model: Model,
    pub sha256: String,
}

/// Everything the handlers share.
pub struct AppState {
    pub(super) version: String,
    /// With how its answers are written (fixed when the model is set).
    model: OnceLock<(ServedModel, AnswerShape)>,
    not_ready: Mutex<String>,
    pub(super) draining: AtomicBool,
    pub(super) metrics: Metrics,
    /// Copies live requests to a candidate, when configured.
    pub(super) shadow: OnceLock<Shadow>,
}

impl AppState {
    /// State answering as `version`, with every metric (drift signals on).
    pub fn new(version: impl Into<String>) -> Arc<Self> {
        Self::with_metrics(version, Metrics::default())
    }

    /// State answering as `version`, counting into `metrics` (e.g. without drift signals).
    pub fn with_metrics(version: impl Into<String>, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self {
            version: version.into(),
            model: OnceLock::new(),
            not_ready: Mutex::new("the model has not been fetched yet".into()),
            draining: AtomicBool::new(false),
            metrics,
            shadow: OnceLock::new(),
        })
    }

    /// Starts copying a sample of answered predictions to `config`'s candidate, counting into
    /// this server's metrics. Once: a second call changes nothing.
    pub fn set_shadow(&self, config: &ShadowConfig) -> Result<()> {
        let shadow = Shadow::new(config, self.metrics.shadow())?;
        let _ = self.shadow.set(shadow);
        Ok(())
    }

    /// Installs a verified model; the server is ready from then on.
    pub fn set_model(&self, served: ServedModel) {
        self.metrics.set_model(ModelInfo {
            version: self.version.clone(),
            sha256: served.sha256.clone(),
            model_date: served.model.model_date().to_string(),
        });
        self.metrics.set_reference(served.model.reference());
        let shape = AnswerShape::new(&self.version, served.model.model_date(), &served.sha256);
        let _ = self.model.set((served, shape));
    }

    pub(super) fn set_not_ready(&self, reason: String) {
        *self.not_ready.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    }

    /// The verified model, or why there is none yet. Requests are answered with it even while draining:
    /// traffic that arrives before the load balancer has noticed must not fail.
    pub fn served(&self) -> Result<&ServedModel, String> {
        self.answering().map(|(served, _)| served)
    }

    /// [`served`](Self::served), with how its answers are written.
    pub(super) fn answering(&self) -> Result<(&ServedModel, &AnswerShape), String> {
        match self.model.get() {
            Some((served, shape)) => Ok((served, shape)),
            None => Err(self
                .not_ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()),
        }
    }

    /// What `/readyz` says: `Ok` with the model when ready for new traffic, else why not.
    pub fn readiness(&self) -> Result<&ServedModel, String> {
        if self.draining.load(Ordering::SeqCst) {
            return Err("shutting down".into());
        }
        self.served()
    }

    /// Starts draining: readiness turns false.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

/// One service's handle on the [`AppState`] (each serving thread builds its own [`app`](super::app)): the
/// router's `State` and [`Track`](super::Track) clone it per request, so its count is on this thread's own
/// cache line instead of one every serving thread writes.
#[derive(Clone)]
#[expect(
    clippy::redundant_allocation,
    reason = "the outer count is this service's own, the inner one is shared by all"
)]
pub struct Shared(pub(super) Arc<Arc<AppState>>);

impl std::ops::Deref for Shared {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}
