//! The outcomes of the pre-flight checks of a Predictor's spec, each beside the reasons it gives:
//! the model and the image, one [`Check`] each ([`ModelCheck`], [`ImageCheck`]), and the model's
//! quality on labelled data ([`QualityCheck`]). [`reason`](super::reason) names these reasons
//! with all the others.

use crate::crd::{Predictor, QualityStatus};

/// The outcome of a pre-flight check: `T` is what a check that passed found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check<T> {
    /// Passed now or earlier (a cache, or what the Deployment already runs): the rollout goes
    /// ahead with what the check found.
    Passed(T),
    /// Not checked (disabled by flag, a scheme the operator cannot read, or a spec that cannot
    /// run); the rollout goes ahead unchecked.
    Unchecked {
        /// CamelCase reason, e.g. `CheckDisabled`.
        reason: String,
        /// Why the check did not happen.
        message: String,
    },
    /// Refused; the Deployment was not touched.
    Rejected {
        /// CamelCase reason, e.g. `DigestMismatch`, `ImageNotFound`.
        reason: String,
        /// Human message naming what was expected and what was found.
        message: String,
    },
}

impl<T> Check<T> {
    /// The refusal that blocks the rollout, if any: `(reason, message)`.
    pub(super) fn refusal(&self) -> Option<(&str, &str)> {
        match self {
            Self::Rejected { reason, message } => Some((reason, message)),
            _ => None,
        }
    }

    /// Whether the rollout must wait: the check refused.
    pub fn refuses(&self) -> bool {
        self.refusal().is_some()
    }
}

/// The operator runs with `--skip-model-check` (ModelVerified) or `--skip-image-check`
/// (ImageResolved), or the Predictor has no `spec.validation` (QualityGate).
pub const CHECK_DISABLED: &str = "CheckDisabled";

/// Outcome of the pre-flight model check for the model in `spec.model`. Unchecked, the pods
/// verify the digest themselves.
pub type ModelCheck = Check<()>;

/// The model has the pinned digest and is a model file (ModelVerified).
pub const VERIFIED: &str = "Verified";
/// The model's sha256 is not `spec.model.sha256` (ModelVerified, Degraded).
pub const DIGEST_MISMATCH: &str = "DigestMismatch";
/// The model has the pinned digest but is not a predictor model file.
pub const NOT_A_MODEL_FILE: &str = "NotAModelFile";
/// The model could not be downloaded.
pub const FETCH_FAILED: &str = "FetchFailed";
/// The Secret `spec.model.credentials` names is missing or unusable (ModelVerified, Degraded).
pub const CREDENTIALS_UNUSABLE: &str = "CredentialsUnusable";

/// Outcome of the image pre-flight for `spec.image`: which exact image the pods are to run.
/// Passed, the reference the Deployment's container gets (`registry/repository@sha256:…`): the
/// tag resolved now, or earlier (the Deployment already pins it), or the spec names a digest
/// itself. Unchecked (`--skip-image-check`), the pods pull `spec.image` as written.
pub type ImageCheck = Check<String>;

impl ImageCheck {
    /// The image the Deployment's container gets (`None` when refused).
    pub fn pod_image<'a>(&'a self, predictor: &'a Predictor) -> Option<&'a str> {
        match self {
            Self::Passed(pinned) => Some(pinned),
            Self::Unchecked { .. } => Some(&predictor.spec.image),
            Self::Rejected { .. } => None,
        }
    }
}

/// `spec.image`'s tag resolved to a digest the pods pull by, or the spec names a digest
/// (ImageResolved).
pub const RESOLVED: &str = "Resolved";
/// The registry has no such repository or tag (image pre-flight).
pub const IMAGE_NOT_FOUND: &str = "ImageNotFound";
/// The registry refused the pull credentials, or wants some (image pre-flight).
pub const REGISTRY_UNAUTHORIZED: &str = "RegistryUnauthorized";
/// The registry could not be reached or failed (image pre-flight).
pub const REGISTRY_UNREACHABLE: &str = "RegistryUnreachable";

/// Outcome of the offline quality gate for `spec.model` (see `quality`). Not a [`Check`]: the
/// gate can pass without judging (off, or the model already serves), and what it measured stays
/// in the status whether the model passed or fell below.
#[derive(Clone, Debug, PartialEq)]
pub enum QualityCheck {
    /// The Predictor has no `spec.validation`.
    Off,
    /// `spec.model` is what the Deployment runs: not judged again.
    Serving,
    /// Not judged (the model itself was refused); the model check's refusal blocks the rollout.
    Unchecked {
        /// CamelCase reason, e.g. `ModelNotVerified`.
        reason: String,
        /// Why the gate did not run.
        message: String,
    },
    /// Measured: at or above every threshold; the rollout goes ahead.
    Passed {
        measured: QualityStatus,
        /// The figures and the thresholds they met.
        message: String,
    },
    /// Measured: below a threshold; the Deployment was not touched.
    Below {
        measured: QualityStatus,
        /// Both figures: the candidate's accuracy and the threshold it missed.
        message: String,
    },
    /// Could not be measured (data set unreachable, wrong or unreadable): refused like a model
    /// that cannot be fetched, and retried.
    Failed {
        /// CamelCase reason, e.g. `ValidationDataUnavailable`.
        reason: String,
        /// What went wrong and what to do.
        message: String,
    },
}

impl QualityCheck {
    /// The refusal that blocks the rollout, if any: `(reason, message)`.
    pub(super) fn refusal(&self) -> Option<(&str, &str)> {
        match self {
            Self::Below { message, .. } => Some((MODEL_BELOW_QUALITY_GATE, message)),
            Self::Failed { reason, message } => Some((reason, message)),
            _ => None,
        }
    }

    /// Whether the rollout must wait: the model is below the gate or could not be judged.
    pub fn refuses(&self) -> bool {
        self.refusal().is_some()
    }
}

/// The new model met every threshold of `spec.validation` (QualityGate).
pub const QUALITY_GATE_PASSED: &str = "QualityGatePassed";
/// `spec.model` is what the Deployment runs: the gate judged it before it rolled out (or it
/// predates the gate), so it is not judged again (QualityGate).
pub const ALREADY_SERVING: &str = "AlreadyServing";
/// The new model is below a threshold of `spec.validation` (QualityGate, Degraded, Event).
pub const MODEL_BELOW_QUALITY_GATE: &str = "ModelBelowQualityGate";
/// The gate's data set could not be downloaded (QualityGate, Degraded, Event).
pub const VALIDATION_DATA_UNAVAILABLE: &str = "ValidationDataUnavailable";
/// The gate's data set is not the pinned file (QualityGate, Degraded, Event).
pub const VALIDATION_DATA_DIGEST_MISMATCH: &str = "ValidationDataDigestMismatch";
/// The gate's data set cannot be scored (QualityGate, Degraded, Event).
pub const VALIDATION_DATA_INVALID: &str = "ValidationDataInvalid";
/// Scoring did not finish in time (QualityGate, Degraded, Event).
pub const EVALUATION_FAILED: &str = "EvaluationFailed";
/// The gate did not run because the model check refused the model (QualityGate).
pub const MODEL_NOT_VERIFIED: &str = "ModelNotVerified";
