//! Every CamelCase reason the operator writes, in conditions and in Events: one spelling each,
//! shared by the controller, the pre-flight checks and the status computation.

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
/// `spec.replicas` is 0 (Ready).
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
/// The operator runs with `--skip-model-check` (ModelVerified) or `--skip-image-check`
/// (ImageResolved).
pub const CHECK_DISABLED: &str = "CheckDisabled";
/// `spec.image`'s tag resolved to a digest the pods pull by, or the spec names a digest
/// (ImageResolved).
pub const RESOLVED: &str = "Resolved";
/// The registry has no such repository or tag (image pre-flight).
pub const IMAGE_NOT_FOUND: &str = "ImageNotFound";
/// The registry refused the pull credentials, or wants some (image pre-flight).
pub const REGISTRY_UNAUTHORIZED: &str = "RegistryUnauthorized";
/// The registry could not be reached or failed (image pre-flight).
pub const REGISTRY_UNREACHABLE: &str = "RegistryUnreachable";
/// The kubelet cannot pull the image of the rollout's new pods (Degraded).
pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
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
// Events only.
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
