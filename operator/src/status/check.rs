//! The outcomes of the pre-flight checks of a Predictor's spec: its model ([`ModelCheck`]), the
//! model's quality on labelled data ([`QualityCheck`]) and its image ([`ImageCheck`]).

use super::reason;
use crate::crd::{Predictor, QualityStatus};

/// Outcome of the pre-flight model check for the model in `spec.model`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelCheck {
    /// Downloaded and verified now, earlier (cache), or already running in the Deployment.
    Verified,
    /// Not checked (disabled by flag, or a scheme the operator cannot read); the pods verify the
    /// digest themselves and the rollout goes ahead.
    Unchecked {
        /// CamelCase reason, e.g. `CheckDisabled`.
        reason: String,
        /// Why the check did not happen.
        message: String,
    },
    /// The model was refused; the Deployment was not touched.
    Rejected {
        /// CamelCase reason, e.g. `DigestMismatch`.
        reason: String,
        /// Human message naming what was expected and what was found.
        message: String,
    },
}

/// Outcome of the offline quality gate for `spec.model` (see `quality`).
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
            Self::Below { message, .. } => Some((reason::MODEL_BELOW_QUALITY_GATE, message)),
            Self::Failed { reason, message } => Some((reason, message)),
            _ => None,
        }
    }

    /// Whether the rollout must wait: the model is below the gate or could not be judged.
    pub fn refuses(&self) -> bool {
        self.refusal().is_some()
    }
}

/// Outcome of the image pre-flight for `spec.image`: which exact image the pods are to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageCheck {
    /// The pods run `pinned` (`registry/repository@sha256:…`): the tag resolved now, or earlier
    /// (the Deployment already pins it), or the spec names a digest itself.
    Resolved {
        /// The reference the Deployment's container gets.
        pinned: String,
    },
    /// Not resolved (`--skip-image-check`): the pods pull `spec.image` as written.
    Unchecked {
        /// CamelCase reason, e.g. `CheckDisabled`.
        reason: String,
        /// Why the image was not resolved.
        message: String,
    },
    /// The image was refused; the Deployment was not touched.
    Rejected {
        /// CamelCase reason, e.g. `ImageNotFound`.
        reason: String,
        /// Human message naming the image and what the registry said.
        message: String,
    },
}

impl ImageCheck {
    /// The image the Deployment's container gets (`None` when refused).
    pub fn pod_image<'a>(&'a self, predictor: &'a Predictor) -> Option<&'a str> {
        match self {
            Self::Resolved { pinned } => Some(pinned),
            Self::Unchecked { .. } => Some(&predictor.spec.image),
            Self::Rejected { .. } => None,
        }
    }
}
