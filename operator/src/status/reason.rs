//! Every CamelCase reason the operator writes, in conditions and in Events: one spelling each,
//! shared by the controller, the pre-flight checks and the status computation. The checks' own
//! reasons stand beside their outcomes (in `check`) and are named here with the others.

// The pre-flight checks (ModelVerified, QualityGate, ImageResolved, and Degraded and Events when
// they refuse).
pub use super::check::{
    ALREADY_SERVING, CHECK_DISABLED, CREDENTIALS_UNUSABLE, DIGEST_MISMATCH, EVALUATION_FAILED,
    FETCH_FAILED, IMAGE_NOT_FOUND, MODEL_BELOW_QUALITY_GATE, MODEL_NOT_VERIFIED, NOT_A_MODEL_FILE,
    QUALITY_GATE_PASSED, REGISTRY_UNAUTHORIZED, REGISTRY_UNREACHABLE, RESOLVED,
    VALIDATION_DATA_DIGEST_MISMATCH, VALIDATION_DATA_INVALID, VALIDATION_DATA_UNAVAILABLE,
    VERIFIED,
};

// Conditions.
/// Every pod runs the current spec (Ready, Progressing).
pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";
/// Pods are being created or replaced (Ready, Progressing).
pub const ROLLING_OUT: &str = "RollingOut";
/// The Deployment is being created (Ready, Progressing).
pub const CREATING: &str = "Creating";
/// Pods are being added or removed for the release the ready pods already serve: a scale,
/// not a rollout (Ready, Progressing).
pub const SCALING: &str = "Scaling";
/// The autoscaler measures the pods and sets the replica count (Autoscaling).
pub const SCALING_ACTIVE: &str = "ScalingActive";
/// The autoscaler has not measured the pods yet, or does not exist yet (Autoscaling).
pub const AUTOSCALER_PENDING: &str = "AutoscalerPending";
/// `spec.replicas` is 0: Ready, with nothing to serve (Ready).
pub const SCALED_TO_ZERO: &str = "ScaledToZero";
/// The rollout completed but not every pod is ready (Ready).
pub const PODS_NOT_READY: &str = "PodsNotReady";
/// The deployment controller gave up on the rollout (Ready, Progressing, Degraded).
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// The validate step refused the spec (Ready, Degraded, ModelVerified).
pub const INVALID_SPEC: &str = "InvalidSpec";
/// An object under a child's name is not this Predictor's own: the operator leaves it alone
/// (Ready, Progressing, Degraded, the checks, Event).
pub const CHILD_CONFLICT: &str = "ChildConflict";
/// Nothing wrong (Degraded).
pub const AS_EXPECTED: &str = "AsExpected";
/// The kubelet cannot pull the image of the rollout's new pods (Degraded).
pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
// Events, and the canary analysis' conditions.
/// The Deployment's pods are being replaced.
pub const ROLLING_UPDATE: &str = "RollingUpdate";
/// The Predictor became ready again (after a rolling update, or after pods stopped being
/// ready).
pub const READY: &str = "Ready";
/// The Predictor stopped being ready (not for a requested rollout).
pub const NOT_READY: &str = "NotReady";
/// A model was refused before it rolled out.
pub const MODEL_REJECTED: &str = "ModelRejected";
/// An image was refused before it rolled out.
pub const IMAGE_REJECTED: &str = "ImageRejected";
/// A degradation ended.
pub const RECOVERED: &str = "Recovered";
/// A canary analysis is under way (Progressing).
pub const CANARY_ANALYSIS: &str = "CanaryAnalysis";
/// The canary analysis failed and the candidate was rolled back (Degraded, Event).
pub const CANARY_ROLLED_BACK: &str = "CanaryRolledBack";
/// A canary analysis started (Event).
pub const CANARY_STARTED: &str = "CanaryStarted";
/// A candidate passed its analysis and is being promoted (Event).
pub const CANARY_PROMOTED: &str = "CanaryPromoted";
// Drift (only with `spec.monitoring.drift`; never Ready, Progressing or Degraded).
/// The window holds fewer answers than `minSamples` (Drift Unknown).
pub const NOT_ENOUGH_SAMPLES: &str = "NotEnoughSamples";
/// The served model file has no reference to compare with (Drift Unknown).
pub const NO_REFERENCE: &str = "NoReference";
/// The pods export no drift signals (Drift Unknown).
pub const NO_SIGNALS: &str = "NoSignals";
/// The pods' drift signals could not be read (Drift Unknown).
pub const SIGNALS_UNREADABLE: &str = "SignalsUnreadable";
/// Every signal's PSI is at or below its threshold (Drift False).
pub const WITHIN_THRESHOLDS: &str = "WithinThresholds";
/// A signal's PSI is over its threshold (Drift True, Event).
pub const DRIFTED: &str = "Drifted";
// kstatus's conditions.
/// Reconciling is False because the operator is stuck: see Stalled (Reconciling).
pub const STALLED: &str = "Stalled";
