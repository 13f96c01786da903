//! The crate's one error type. Every variant says what went wrong and, where it helps, what to do.

use std::time::Duration;

/// Errors of the operator library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Predictor the apiserver accepted but the operator still cannot run (things the schema
    /// cannot express, such as a name that is not a valid Service name).
    #[error("invalid Predictor {name}: {reason}")]
    InvalidSpec { name: String, reason: String },

    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API call {action} failed: {source}")]
    Kube {
        action: &'static str,
        #[source]
        source: kube::Error,
    },

    /// No kubeconfig and no in-cluster service account.
    #[error("no Kubernetes configuration (set KUBECONFIG or run in a pod): {0}")]
    Config(#[source] kube::Error),

    /// The object came from the apiserver without a field the operator relies on.
    #[error("object is missing {0} (was it read from the apiserver?)")]
    MissingField(&'static str),

    /// The model could not be downloaded.
    #[error("cannot fetch model {url}: {reason}")]
    ModelFetch { url: String, reason: String },

    /// The model was downloaded but is not the pinned file.
    #[error("model {url} has sha256 {actual}, but spec.model.sha256 expects {expected}")]
    ModelDigest {
        url: String,
        expected: String,
        actual: String,
    },

    /// The model has the pinned digest but is not a usable predictor model file.
    #[error("model {url} is not a usable predictor model file: {reason}")]
    ModelInvalid { url: String, reason: String },

    /// The quality gate's data set could not be downloaded (unreachable, too large, too slow).
    #[error("cannot fetch validation data {url}: {reason}")]
    DataFetch { url: String, reason: String },

    /// The quality gate's data set was downloaded but is not the pinned file.
    #[error(
        "validation data {url} has sha256 {actual}, but spec.validation.data.sha256 expects {expected}"
    )]
    DataDigest {
        url: String,
        expected: String,
        actual: String,
    },

    /// The quality gate's data set has the pinned digest but cannot be scored (not the training
    /// CSV format, no usable rows).
    #[error("validation data {url} cannot be scored: {reason}")]
    DataInvalid { url: String, reason: String },

    /// Scoring a model on the data set did not finish (too slow, or it failed).
    #[error("cannot evaluate model {model} on the validation data: {reason}")]
    Evaluation { model: String, reason: String },

    /// `spec.image` is not an image reference a container runtime would accept.
    #[error("image {image:?} is not a valid image reference: {reason}")]
    InvalidImage { image: String, reason: String },

    /// The registry answered, but has no such repository or tag.
    #[error("image {image} was not found in its registry: {reason}")]
    ImageNotFound { image: String, reason: String },

    /// The registry refused the credentials (or wants some and none were given).
    #[error(
        "registry {registry} refused access to {image}: {reason}; check spec.imagePullSecrets and the Secret's credentials"
    )]
    RegistryUnauthorized {
        registry: String,
        image: String,
        reason: String,
    },

    /// The registry could not be reached or failed (connection, timeout, 5xx, a broken answer).
    #[error("registry {registry} could not answer for {image}: {reason}")]
    RegistryUnreachable {
        registry: String,
        image: String,
        reason: String,
    },

    /// The Secret `spec.model.credentials` names cannot be used.
    #[error("model credentials Secret {secret} cannot be used: {reason}")]
    ModelCredentials { secret: String, reason: String },

    /// A pull Secret's `.dockerconfigjson` cannot be read.
    #[error("pull secret {secret} is not a usable .dockerconfigjson: {reason}")]
    PullSecret { secret: String, reason: String },

    /// Leader election could not talk to its Lease.
    #[error("leader election on Lease {lease}: {reason}")]
    Leader { lease: String, reason: String },

    /// The `/metrics` and `/healthz` listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// The operator's own settings cannot work (flags, the spool directory).
    #[error("operator settings: {0}")]
    Settings(String),

    /// The `/metrics` and `/healthz` server failed.
    #[error("the metrics server failed: {0}")]
    Serve(#[source] std::io::Error),

    /// A predictor pod's metrics could not be read for a canary analysis.
    #[error("cannot read the metrics of pod {pod}: {reason}")]
    Scrape { pod: String, reason: String },

    /// Serialising an object failed (a bug, not a user error).
    #[error("cannot serialise {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a kube error with the action that failed.
    pub fn kube(action: &'static str) -> impl FnOnce(kube::Error) -> Self {
        move |source| Self::Kube { action, source }
    }

    /// Short machine-readable label for metrics and condition reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidSpec { .. } => "invalid_spec",
            Self::Kube { .. } => "kube",
            Self::Config(_) => "config",
            Self::MissingField(_) => "missing_field",
            Self::ModelFetch { .. } => "model_fetch",
            Self::ModelDigest { .. } => "model_digest",
            Self::ModelInvalid { .. } => "model_invalid",
            Self::DataFetch { .. } => "data_fetch",
            Self::DataDigest { .. } => "data_digest",
            Self::DataInvalid { .. } => "data_invalid",
            Self::Evaluation { .. } => "evaluation",
            Self::InvalidImage { .. } => "invalid_image",
            Self::ImageNotFound { .. } => "image_not_found",
            Self::RegistryUnauthorized { .. } => "registry_unauthorized",
            Self::RegistryUnreachable { .. } => "registry_unreachable",
            Self::PullSecret { .. } => "pull_secret",
            Self::ModelCredentials { .. } => "model_credentials",
            Self::Leader { .. } => "leader",
            Self::Listen { .. } => "listen",
            Self::Settings(_) => "settings",
            Self::Serve(_) => "serve",
            Self::Scrape { .. } => "scrape",
            Self::Serialize { .. } => "serialize",
        }
    }

    /// How long to wait before reconciling again after this error.
    pub fn requeue_after(&self) -> Duration {
        match self {
            // Nothing will change until the user edits the object (which triggers a reconcile).
            Self::InvalidSpec { .. } | Self::InvalidImage { .. } => Duration::from_secs(300),
            // Model storage may recover (or the file be re-uploaded); retry, but not hot.
            // Likewise a registry, or a tag that is about to be pushed, or a fixed Secret.
            Self::ModelFetch { .. }
            | Self::ModelDigest { .. }
            | Self::ModelInvalid { .. }
            | Self::DataFetch { .. }
            | Self::DataDigest { .. }
            | Self::DataInvalid { .. }
            | Self::Evaluation { .. }
            | Self::ImageNotFound { .. }
            | Self::RegistryUnauthorized { .. }
            | Self::RegistryUnreachable { .. }
            | Self::PullSecret { .. }
            | Self::ModelCredentials { .. } => Duration::from_secs(60),
            _ => Duration::from_secs(5),
        }
    }
}
