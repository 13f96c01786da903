//! Pure status computation: what the Predictor's status should say, given its Deployment and the
//! outcomes of the pre-flight checks (model, quality gate, image), and for a Canary Predictor where
//! its rollout stands ([`RolloutView`]). Also which Events a status change deserves.
//!
//! Conditions follow the Kubernetes API conventions: `type`, `status` (True/False/Unknown), a
//! CamelCase `reason`, a human `message`, `observedGeneration`, and a `lastTransitionTime` that only
//! moves when `status` does, so an unchanged status computes to an identical object and no write is
//! needed.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use predictor::source::redact;

use crate::crd::phase;
use crate::crd::{
    AutoscalingSpec, AutoscalingStatus, ModelRef, Predictor, PredictorStatus, QualityStatus,
    RolloutStatus,
};
use crate::resources::{CONTAINER, Served, service_url, stable_replicas};

/// Condition types, in the order they appear in the status.
pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const MODEL_VERIFIED: &str = "ModelVerified";
pub const IMAGE_RESOLVED: &str = "ImageResolved";
/// Present only with `spec.validation`: the offline quality gate's verdict on `spec.model`.
pub const QUALITY_GATE: &str = "QualityGate";
/// Present only with `spec.autoscaling`: whether the autoscaler can scale the pods.
pub const AUTOSCALING: &str = "Autoscaling";
const TRUE: &str = "True";
const FALSE: &str = "False";
const UNKNOWN: &str = "Unknown";

/// Every CamelCase reason the operator writes, in conditions and in Events: one spelling each,
/// shared by the controller, the model check and the status computation.
pub mod reason {
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
}

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
    fn refusal(&self) -> Option<(&str, &str)> {
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

/// Everything the status is computed from besides the Predictor itself.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The Deployment as the apiserver returned it (after apply, or untouched when the model or
    /// the image was rejected).
    pub deployment: Option<&'a Deployment>,
    pub model: ModelCheck,
    /// The offline quality gate's verdict on `spec.model`.
    pub quality: QualityCheck,
    pub image: ImageCheck,
    /// Why the rollout's new pods cannot start, when the kubelet cannot pull their image
    /// ([`pull_failure`]).
    pub pull_failure: Option<String>,
    /// Why the spec cannot be run, when the validate step refused it.
    pub invalid: Option<String>,
    /// Which objects under a child's name are not the Predictor's own (see [`crate::ownership`]).
    pub conflict: Option<String>,
    /// The Predictor's HorizontalPodAutoscaler, when it is autoscaled and the autoscaler exists.
    pub autoscaler: Option<&'a HorizontalPodAutoscaler>,
}

impl Observed<'_> {
    /// The pre-flight refusal that blocks the rollout, model first, then its quality, then the
    /// image: `(reason, message, what)`.
    fn refusal(&self) -> Option<(&str, &str, &'static str)> {
        match (&self.model, self.quality.refusal(), &self.image) {
            (ModelCheck::Rejected { reason, message }, _, _) => Some((reason, message, "model")),
            (_, Some((reason, message)), _) => Some((reason, message, "model")),
            (_, _, ImageCheck::Rejected { reason, message }) => Some((reason, message, "image")),
            _ => None,
        }
    }
}

/// Container waiting reasons of a kubelet that cannot get the image.
const PULL_FAILURES: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "RegistryUnavailable",
];

/// Why pods running `image` (the rollout's new pods) cannot start because the kubelet cannot
/// pull their image, from the pods' container states; `None` when none is stuck so. Read during a
/// rollout, this says why it stalls long before the progress deadline does.
pub fn pull_failure(pods: &[Pod], image: &str) -> Option<String> {
    pods.iter().find_map(|pod| {
        let spec = pod.spec.as_ref()?;
        let container = spec.containers.iter().find(|c| c.name == CONTAINER)?;
        if container.image.as_deref() != Some(image) {
            return None;
        }
        let waiting = pod
            .status
            .as_ref()?
            .container_statuses
            .iter()
            .flatten()
            .find(|c| c.name == CONTAINER)?
            .state
            .as_ref()?
            .waiting
            .as_ref()?;
        let reason = waiting.reason.as_deref()?;
        PULL_FAILURES.contains(&reason).then(|| {
            format!(
                "pod {} cannot pull image {image}: {reason}: {}; the old pods keep serving",
                pod.name_any(),
                waiting
                    .message
                    .as_deref()
                    .unwrap_or("no message from the kubelet")
            )
        })
    })
}

/// Where the Deployment's rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// There is no Deployment (yet).
    Missing,
    /// Pods are being created or replaced.
    InProgress(String),
    /// The deployment controller gave up (`ProgressDeadlineExceeded`).
    Failed(String),
    /// Every pod runs the current template and is available.
    Complete,
    /// Pods of the release the ready pods already serve are being added (see [`scaling`]).
    Scaling(String),
}

/// Reads the rollout state of a Deployment the way `kubectl rollout status` does.
pub fn rollout_of(deployment: Option<&Deployment>) -> Rollout {
    let Some(d) = deployment else {
        return Rollout::Missing;
    };
    let desired = d.spec.replicas.unwrap_or(1);
    let Some(status) = d.status.as_ref() else {
        return Rollout::InProgress("waiting for the deployment controller".into());
    };
    if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
        return Rollout::InProgress("waiting for the deployment controller".into());
    }
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(PROGRESSING))
        && c.reason.as_deref() == Some(reason::PROGRESS_DEADLINE_EXCEEDED)
    {
        return Rollout::Failed(format!(
            "{} The new pods never became ready (their /readyz and logs say why, e.g. a model they \
             cannot fetch or whose sha256 differs); the old pods keep serving.",
            c.message.as_deref().unwrap_or("The rollout timed out.")
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        Rollout::InProgress(format!("{updated} of {desired} pods updated"))
    } else if total > updated {
        Rollout::InProgress(format!("{} old pods terminating", total - updated))
    } else if available < updated {
        Rollout::InProgress(format!("{available} of {updated} updated pods available"))
    } else {
        Rollout::Complete
    }
}

/// `rollout`, or [`Rollout::Scaling`] when what is in progress only adds pods: the Deployment has
/// no pod of another template, and its template is the release the status already reports as
/// served (a rollout of it completed before). The autoscaler, or a new `spec.replicas`, then
/// changes the number of pods, not what they serve: the Predictor stays Ready (with fewer pods
/// than wanted for a moment) and is not Progressing, so ArgoCD keeps it Healthy.
pub fn scaling(
    rollout: Rollout,
    deployment: Option<&Deployment>,
    served: &PredictorStatus,
) -> Rollout {
    let (Rollout::InProgress(_), Some(d)) = (&rollout, deployment) else {
        return rollout;
    };
    let Some(status) = d.status.as_ref() else {
        return rollout;
    };
    let release = Served::of(d);
    let same_release = served.version.is_some()
        && release.version == served.version
        && release.model_sha256 == served.model_sha256
        && release.image_digest() == served.image_digest.as_deref();
    let only_current_pods = status.replicas.unwrap_or(0) == status.updated_replicas.unwrap_or(0);
    if same_release && only_current_pods {
        Rollout::Scaling(format!("scaling to {} pods", d.spec.replicas.unwrap_or(1)))
    } else {
        rollout
    }
}

/// What a condition says, before its type, generation and transition time are added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// CamelCase, one of [`reason`]'s constants.
    pub reason: String,
    /// For humans.
    pub message: String,
}

fn verdict(status: &'static str, reason: &str, message: impl Into<String>) -> Verdict {
    Verdict {
        status,
        reason: reason.into(),
        message: message.into(),
    }
}

/// The facts the Ready condition and the status fields are read from.
#[derive(Clone, Debug)]
pub struct Pods {
    /// `spec.replicas`, or what the autoscaler set (see [`stable_replicas`]).
    pub desired: i32,
    /// Pods of the Deployment, old and new.
    pub total: i32,
    /// Pods that passed their readiness probe.
    pub ready: i32,
    /// Version, model sha256 and image digest the ready pods serve (as of the last completed
    /// rollout).
    pub version: Option<String>,
    pub model_sha256: Option<String>,
    pub image_digest: Option<String>,
}

impl Pods {
    /// Counts from the Deployment; what is served only moves when a rollout has completed, until
    /// then the old pods (if any) still serve what `previous` said.
    fn observe(
        predictor: &Predictor,
        deployment: Option<&Deployment>,
        rollout: &Rollout,
        previous: &PredictorStatus,
    ) -> Self {
        let status = deployment.and_then(|d| d.status.as_ref());
        let (version, model_sha256, image_digest) = match (rollout, deployment) {
            (Rollout::Complete | Rollout::Scaling(_), Some(d)) => {
                let served = Served::of(d);
                let digest = served.image_digest().map(str::to_string);
                (served.version, served.model_sha256, digest)
            }
            _ => (
                previous.version.clone(),
                previous.model_sha256.clone(),
                previous.image_digest.clone(),
            ),
        };
        Self {
            desired: stable_replicas(predictor, deployment),
            total: status.and_then(|s| s.replicas).unwrap_or(0),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            version,
            model_sha256,
            image_digest,
        }
    }

    /// "2/2 pods ready, serving version 0.2 with model 9f2c1e0d4b3a": what a Ready Predictor says.
    fn serving(&self) -> String {
        format!(
            "{}/{} pods ready, serving version {} with model {}",
            self.ready,
            self.desired,
            self.version.as_deref().unwrap_or("?"),
            short(self.model_sha256.as_deref().unwrap_or("?"))
        )
    }
}

/// Ready: every desired pod runs the current spec and is ready.
pub fn ready_condition(rollout: &Rollout, pods: &Pods, observed: &Observed) -> Verdict {
    let Pods { desired, ready, .. } = *pods;
    if observed.invalid.is_some() && observed.deployment.is_none() {
        return verdict(
            FALSE,
            reason::INVALID_SPEC,
            "the spec cannot be run, see Degraded",
        );
    }
    if observed.conflict.is_some() {
        return verdict(
            FALSE,
            reason::CHILD_CONFLICT,
            "a child's name is taken by an object this Predictor does not control, see Degraded",
        );
    }
    match rollout {
        Rollout::Complete if desired == 0 => {
            verdict(FALSE, reason::SCALED_TO_ZERO, "spec.replicas is 0")
        }
        Rollout::Complete if ready >= desired => {
            verdict(TRUE, reason::ROLLOUT_COMPLETE, pods.serving())
        }
        Rollout::Complete => verdict(
            FALSE,
            reason::PODS_NOT_READY,
            format!("{ready}/{desired} pods ready"),
        ),
        Rollout::Scaling(msg) if ready > 0 => {
            verdict(TRUE, reason::SCALING, format!("{}; {msg}", pods.serving()))
        }
        Rollout::Scaling(msg) => verdict(
            FALSE,
            reason::PODS_NOT_READY,
            format!("{ready}/{desired} pods ready; {msg}"),
        ),
        Rollout::Missing => match observed.refusal() {
            Some((reason, _, what)) => verdict(
                FALSE,
                reason,
                format!("no Deployment: the {what} was refused, see Degraded"),
            ),
            None => verdict(FALSE, reason::CREATING, "the Deployment is being created"),
        },
        Rollout::InProgress(msg) => verdict(
            FALSE,
            reason::ROLLING_OUT,
            format!("{ready}/{desired} pods ready; {msg}"),
        ),
        Rollout::Failed(msg) => verdict(FALSE, reason::PROGRESS_DEADLINE_EXCEEDED, msg.clone()),
    }
}

/// Progressing: a rollout is under way (or why it is not).
pub fn progressing_condition(rollout: &Rollout, observed: &Observed) -> Verdict {
    if observed.conflict.is_some() {
        return verdict(
            FALSE,
            reason::CHILD_CONFLICT,
            "rollout blocked: a child's name is taken, see Degraded",
        );
    }
    match rollout {
        Rollout::InProgress(msg) => verdict(TRUE, reason::ROLLING_OUT, msg.clone()),
        Rollout::Missing => match observed.refusal() {
            Some((reason, _, what)) => verdict(
                FALSE,
                reason,
                format!("rollout blocked: the {what} was refused"),
            ),
            None => verdict(TRUE, reason::CREATING, "the Deployment is being created"),
        },
        Rollout::Failed(msg) => verdict(FALSE, reason::PROGRESS_DEADLINE_EXCEEDED, msg.clone()),
        Rollout::Complete => verdict(
            FALSE,
            reason::ROLLOUT_COMPLETE,
            "all pods run the current spec",
        ),
        Rollout::Scaling(msg) => verdict(
            FALSE,
            reason::SCALING,
            format!("all pods run the current spec; {msg}"),
        ),
    }
}

/// Degraded: something needs the user (invalid spec, refused model or image, an image the
/// kubelet cannot pull, stuck rollout), most actionable first.
pub fn degraded_condition(rollout: &Rollout, observed: &Observed) -> Verdict {
    match (&observed.invalid, observed.refusal(), rollout) {
        (Some(why), _, _) => verdict(TRUE, reason::INVALID_SPEC, why.clone()),
        _ if observed.conflict.is_some() => verdict(
            TRUE,
            reason::CHILD_CONFLICT,
            observed.conflict.clone().unwrap_or_default(),
        ),
        (_, Some((reason, message, _)), _) => verdict(TRUE, reason, message),
        (_, _, Rollout::InProgress(_) | Rollout::Failed(_)) if observed.pull_failure.is_some() => {
            verdict(
                TRUE,
                reason::IMAGE_PULL_BACK_OFF,
                observed.pull_failure.clone().unwrap_or_default(),
            )
        }
        (_, _, Rollout::Failed(msg)) => {
            verdict(TRUE, reason::PROGRESS_DEADLINE_EXCEEDED, msg.clone())
        }
        _ => verdict(FALSE, reason::AS_EXPECTED, "no problems observed"),
    }
}

/// ModelVerified: the outcome of the pre-flight check of `spec.model` (its URL redacted).
pub fn model_verified_condition(predictor: &Predictor, model: &ModelCheck) -> Verdict {
    match model {
        ModelCheck::Verified => verdict(
            TRUE,
            reason::VERIFIED,
            format!(
                "model {} has the pinned sha256 {} and is a predictor model file",
                redact(&predictor.spec.model.url),
                predictor.spec.model.sha256
            ),
        ),
        ModelCheck::Unchecked { reason, message } => verdict(UNKNOWN, reason, message.clone()),
        ModelCheck::Rejected { reason, message } => verdict(FALSE, reason, message.clone()),
    }
}

/// QualityGate: the offline quality gate's verdict; `quality` is what the status will show of
/// `spec.model`'s measured accuracy.
pub fn quality_gate_condition(
    predictor: &Predictor,
    check: &QualityCheck,
    quality: Option<&QualityStatus>,
) -> Verdict {
    match check {
        QualityCheck::Passed { message, .. } => {
            verdict(TRUE, reason::QUALITY_GATE_PASSED, message.clone())
        }
        QualityCheck::Below { message, .. } => {
            verdict(FALSE, reason::MODEL_BELOW_QUALITY_GATE, message.clone())
        }
        QualityCheck::Failed { reason, message } => verdict(FALSE, reason, message.clone()),
        QualityCheck::Unchecked { reason, message } => verdict(UNKNOWN, reason, message.clone()),
        QualityCheck::Serving => {
            let model = short(&predictor.spec.model.sha256);
            let message = match quality {
                Some(q) => format!(
                    "model {model} already serves; it had accuracy {:.4} on {} rows when the gate measured it",
                    q.accuracy, q.rows
                ),
                None => format!(
                    "model {model} already serves; the gate judges the next model before it rolls out"
                ),
            };
            verdict(TRUE, reason::ALREADY_SERVING, message)
        }
        QualityCheck::Off => verdict(
            UNKNOWN,
            reason::CHECK_DISABLED,
            "spec.validation is not set",
        ),
    }
}

/// What the status shows of `spec.model`'s measured accuracy: the new measurement, else the one
/// `previous` holds of the same model (it stays true while that model serves).
fn quality_status(
    predictor: &Predictor,
    check: &QualityCheck,
    previous: &PredictorStatus,
) -> Option<QualityStatus> {
    match check {
        QualityCheck::Passed { measured, .. } | QualityCheck::Below { measured, .. } => {
            Some(measured.clone())
        }
        QualityCheck::Serving => previous
            .quality
            .clone()
            .filter(|q| q.model_sha256 == predictor.spec.model.sha256),
        _ => None,
    }
}

/// ImageResolved: the outcome of the image pre-flight of `spec.image`.
pub fn image_resolved_condition(predictor: &Predictor, image: &ImageCheck) -> Verdict {
    match image {
        ImageCheck::Resolved { pinned } => verdict(
            TRUE,
            reason::RESOLVED,
            format!(
                "image {} is {}; the pods pull it by digest",
                predictor.spec.image,
                pinned.split_once('@').map_or(pinned.as_str(), |(_, d)| d)
            ),
        ),
        ImageCheck::Unchecked { reason, message } => verdict(UNKNOWN, reason, message.clone()),
        ImageCheck::Rejected { reason, message } => verdict(FALSE, reason, message.clone()),
    }
}

/// The status `predictor` should have, given what was observed at `now`.
pub fn compute_status(predictor: &Predictor, observed: &Observed, now: &Time) -> PredictorStatus {
    let previous = predictor.status.clone().unwrap_or_default();
    let generation = predictor.metadata.generation;
    let rollout = scaling(
        rollout_of(observed.deployment),
        observed.deployment,
        &previous,
    );
    let pods = Pods::observe(predictor, observed.deployment, &rollout, &previous);
    let quality = predictor
        .spec
        .validation
        .as_ref()
        .and_then(|_| quality_status(predictor, &observed.quality, &previous));
    // The QualityGate condition exists only while the Predictor asks for the gate.
    let gate = predictor.spec.validation.as_ref().map(|_| {
        (
            QUALITY_GATE,
            quality_gate_condition(predictor, &observed.quality, quality.as_ref()),
        )
    });
    let autoscaling = predictor.spec.autoscaling.as_ref().map(|spec| {
        (
            AUTOSCALING,
            autoscaling_condition(spec, observed.autoscaler),
        )
    });
    let conditions = [
        (READY, ready_condition(&rollout, &pods, observed)),
        (PROGRESSING, progressing_condition(&rollout, observed)),
        (DEGRADED, degraded_condition(&rollout, observed)),
        (
            MODEL_VERIFIED,
            model_verified_condition(predictor, &observed.model),
        ),
        (
            IMAGE_RESOLVED,
            image_resolved_condition(predictor, &observed.image),
        ),
    ]
    .into_iter()
    .chain(gate)
    .chain(autoscaling)
    .map(|(type_, v)| condition(&previous.conditions, type_, v, generation, now))
    .collect();
    let Pods {
        desired,
        total,
        ready,
        version,
        model_sha256,
        image_digest,
    } = pods;
    PredictorStatus {
        observed_generation: generation,
        replicas: Some(total),
        ready_replicas: Some(ready),
        ready: Some(format!("{ready}/{desired}")),
        model_short: model_sha256.as_deref().map(|s| short(s).to_string()),
        version,
        model_sha256,
        image_digest,
        url: Some(service_url(predictor)),
        quality,
        autoscaling: autoscaling_status(predictor, observed, total, desired),
        rollout: None,
        last_good_model: None,
        last_good_image: None,
        conditions,
    }
}

/// `status.autoscaling`: the pods there are and the pods wanted, as the autoscaler last saw them
/// (before it has computed a count: as the Deployment says).
fn autoscaling_status(
    predictor: &Predictor,
    observed: &Observed,
    total: i32,
    desired: i32,
) -> Option<AutoscalingStatus> {
    let spec = predictor.spec.autoscaling.as_ref()?;
    let hpa = observed.autoscaler.and_then(|a| a.status.as_ref());
    Some(AutoscalingStatus {
        current_replicas: hpa.and_then(|s| s.current_replicas).unwrap_or(total),
        // 0 until the autoscaler has computed a count (it says 0 while it cannot measure).
        desired_replicas: hpa
            .map(|s| s.desired_replicas)
            .filter(|d| *d > 0)
            .unwrap_or(desired),
        min_replicas: spec.min_replicas,
        max_replicas: spec.max_replicas,
        last_scale_time: hpa.and_then(|s| s.last_scale_time.clone()),
    })
}

/// Autoscaling: whether the autoscaler measures the pods and may scale them, in its own words
/// when it cannot (e.g. `FailedGetResourceMetric`: no metrics API, or pods without a CPU request).
pub fn autoscaling_condition(
    spec: &AutoscalingSpec,
    autoscaler: Option<&HorizontalPodAutoscaler>,
) -> Verdict {
    let Some(hpa) = autoscaler else {
        return verdict(
            UNKNOWN,
            reason::AUTOSCALER_PENDING,
            "the HorizontalPodAutoscaler is being created",
        );
    };
    let conditions = hpa
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let hpa_condition = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    // Either refusal stops scaling; AbleToScale (the target itself) is checked first.
    let refused = ["AbleToScale", "ScalingActive"]
        .into_iter()
        .filter_map(hpa_condition)
        .find(|c| c.status == FALSE);
    if let Some(c) = refused {
        return verdict(
            FALSE,
            c.reason.as_deref().unwrap_or(c.type_.as_str()),
            format!(
                "the autoscaler cannot scale: {}",
                c.message.as_deref().unwrap_or("no message")
            ),
        );
    }
    match hpa_condition("ScalingActive") {
        Some(c) if c.status == TRUE => {
            let desired = hpa.status.as_ref().map_or(0, |s| s.desired_replicas);
            let limited = hpa_condition("ScalingLimited")
                .filter(|c| c.status == TRUE)
                .and_then(|c| c.message.as_deref())
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            verdict(
                TRUE,
                reason::SCALING_ACTIVE,
                format!(
                    "{desired} pods wanted, between {} and {} on CPU at {}% of the request{limited}",
                    spec.min_replicas, spec.max_replicas, spec.target_cpu_utilization_percentage
                ),
            )
        }
        _ => verdict(
            UNKNOWN,
            reason::AUTOSCALER_PENDING,
            "waiting for the autoscaler's first measurement of the pods",
        ),
    }
}

/// What the status says of a Canary Predictor's rollout, beside what [`compute_status`] reads
/// from the stable Deployment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RolloutView {
    /// `status.rollout` (see [`crate::canary::next_rollout`]).
    pub rollout: Option<RolloutStatus>,
    /// The model and image the stable pods serve (Canary Predictors only).
    pub last_good: Option<(ModelRef, String)>,
}

/// [`compute_status`], plus the rollout: while a candidate is analysed Progressing is True with
/// the analysis' words ("waiting: N of M samples"); after a rollback Degraded is True with the
/// measured values and thresholds (unless something more actionable already degrades it).
pub fn compute_status_with_rollout(
    predictor: &Predictor,
    observed: &Observed,
    view: &RolloutView,
    now: &Time,
) -> PredictorStatus {
    let mut status = compute_status(predictor, observed, now);
    status.rollout = view.rollout.clone();
    (status.last_good_model, status.last_good_image) = view.last_good.clone().unzip();
    let Some(rollout) = &view.rollout else {
        return status;
    };
    let previous = predictor.status.clone().unwrap_or_default();
    let generation = predictor.metadata.generation;
    let overlay = match rollout.phase.as_str() {
        phase::ANALYZING => Some((
            PROGRESSING,
            verdict(TRUE, reason::CANARY_ANALYSIS, rollout.message.clone()),
        )),
        phase::ROLLED_BACK
            if find_condition(&status, DEGRADED).is_none_or(|c| c.status != TRUE) =>
        {
            let message = format!(
                "canary rolled back (version {}, model {}): {}; the stable pods keep serving \
                 version {} with model {} (status.lastGoodModel); commit another candidate to \
                 try again",
                rollout.candidate.version,
                short(&rollout.candidate.model_sha256),
                rollout.message,
                status.version.as_deref().unwrap_or("?"),
                status.model_short.as_deref().unwrap_or("?"),
            );
            Some((DEGRADED, verdict(TRUE, reason::CANARY_ROLLED_BACK, message)))
        }
        _ => None,
    };
    if let Some((type_, v)) = overlay
        && let Some(c) = status.conditions.iter_mut().find(|c| c.type_ == type_)
    {
        *c = condition(&previous.conditions, type_, v, generation, now);
    }
    status
}

/// When `new` differs from `old` only in a rollout's progress details (pod counts and condition
/// messages; not a condition's status or reason, the generation, or what is served) and that
/// rollout began less than `quiet` before `now`: how long until its progress is worth a write.
pub fn defer_progress(
    old: &PredictorStatus,
    new: &PredictorStatus,
    now: Timestamp,
    quiet: Duration,
) -> Option<Duration> {
    let began = find_condition(new, PROGRESSING).filter(|c| c.status == TRUE)?;
    if without_progress(old) != without_progress(new) {
        return None;
    }
    let left =
        SignedDuration::try_from(quiet).ok()? - now.duration_since(began.last_transition_time.0);
    left.is_positive()
        .then(|| Duration::try_from(left).ok())
        .flatten()
}

/// When `new` differs from `old` only in a canary analysis' figures (sample counts, measured
/// values, the Progressing message) and `old`'s were measured less than `every` before `now`: how
/// long until they are worth a write. Without it, each write (a watch event) would start the next
/// reconcile, which measures new counts and writes again, as fast as the apiserver answers.
pub fn defer_analysis(
    old: &PredictorStatus,
    new: &PredictorStatus,
    now: Timestamp,
    every: Duration,
) -> Option<Duration> {
    let measured = old
        .rollout
        .as_ref()
        .filter(|r| r.phase == phase::ANALYZING)?
        .measured_at
        .as_ref()?;
    if without_figures(old) != without_figures(new) {
        return None;
    }
    let left = SignedDuration::try_from(every).ok()? - now.duration_since(measured.0);
    left.is_positive()
        .then(|| Duration::try_from(left).ok())
        .flatten()
}

fn without_figures(status: &PredictorStatus) -> PredictorStatus {
    let mut s = status.clone();
    if let Some(r) = s.rollout.as_mut() {
        r.message.clear();
        r.measured = None;
        r.measured_at = None;
    }
    for c in s.conditions.iter_mut().filter(|c| c.type_ == PROGRESSING) {
        c.message.clear();
    }
    s
}

fn without_progress(status: &PredictorStatus) -> PredictorStatus {
    let mut s = status.clone();
    s.replicas = None;
    s.ready_replicas = None;
    s.ready = None;
    for c in &mut s.conditions {
        c.message.clear();
    }
    s
}

/// First 12 characters of a digest (what `kubectl get` shows).
pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// A condition whose `lastTransitionTime` is kept from `previous` when its status did not change.
fn condition(
    previous: &[Condition],
    type_: &str,
    verdict: Verdict,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|p| p.type_ == type_ && p.status == verdict.status)
        .map(|p| p.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.into(),
        status: verdict.status.into(),
        reason: verdict.reason,
        message: verdict.message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The condition of `type_` in `status`, if present.
pub fn find_condition<'a>(status: &'a PredictorStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// An Event the controller should publish for a status change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEvent {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// Events for the meaningful changes between two statuses: a Predictor became ready again or
/// stopped being ready, became degraded (with the reason), recovered, or had its model refused.
///
/// A new Predictor's first readiness has no Event (nor has its creation): the status tells it,
/// with the condition's transition time, and an Event per Predictor created would be a third of
/// the operator's apiserver writes at scale (`benches/scale.rs`). Events are for what changed on
/// something that already served, and for what went wrong.
pub fn status_events(old: &PredictorStatus, new: &PredictorStatus) -> Vec<StatusEvent> {
    let changed = |type_: &str| {
        let (o, n) = (find_condition(old, type_), find_condition(new, type_));
        match (o, n) {
            (_, None) => None,
            (Some(o), Some(n)) if o.status == n.status && o.reason == n.reason => None,
            (_, Some(n)) => Some(n),
        }
    };
    let mut events = Vec::new();
    if let Some(c) = changed(READY) {
        // `modelSha256` is set by the first completed rollout: before it, nothing served.
        let served_before = old.model_sha256.is_some();
        if c.status == TRUE && served_before {
            events.push(StatusEvent {
                warning: false,
                reason: reason::READY.into(),
                note: c.message.clone(),
            });
        } else if c.status != TRUE
            && find_condition(old, READY).is_some_and(|o| o.status == TRUE)
            && ![reason::ROLLING_OUT, reason::SCALED_TO_ZERO].contains(&c.reason.as_str())
        {
            // Not for a rollout the user asked for: only when pods stopped being ready.
            events.push(StatusEvent {
                warning: true,
                reason: reason::NOT_READY.into(),
                note: c.message.clone(),
            });
        }
    }
    let refusals = [
        (MODEL_VERIFIED, reason::MODEL_REJECTED),
        (IMAGE_RESOLVED, reason::IMAGE_REJECTED),
    ];
    for (type_, event_reason) in refusals {
        if let Some(c) = changed(type_)
            && c.status == FALSE
        {
            events.push(StatusEvent {
                warning: true,
                reason: event_reason.into(),
                note: c.message.clone(),
            });
        }
    }
    // A model below the quality gate (or one the gate could not judge) gets an Event named for
    // the condition's reason, e.g. `ModelBelowQualityGate`.
    if let Some(c) = changed(QUALITY_GATE)
        && c.status == FALSE
    {
        events.push(StatusEvent {
            warning: true,
            reason: c.reason.clone(),
            note: c.message.clone(),
        });
    }
    if let Some(event) = rollout_event(old.rollout.as_ref(), new.rollout.as_ref()) {
        events.push(event);
    }
    let refused = refusals
        .iter()
        .map(|(type_, _)| *type_)
        .chain([QUALITY_GATE])
        .any(|type_| find_condition(new, type_).is_some_and(|c| c.status == FALSE));
    if let Some(c) = changed(DEGRADED) {
        // A refused model or image already has its own event; other degradations get theirs.
        if c.status == TRUE && !refused {
            events.push(StatusEvent {
                warning: true,
                reason: c.reason.clone(),
                note: c.message.clone(),
            });
        } else if c.status == FALSE
            && find_condition(old, DEGRADED).is_some_and(|o| o.status == TRUE)
        {
            events.push(StatusEvent {
                warning: false,
                reason: reason::RECOVERED.into(),
                note: c.message.clone(),
            });
        }
    }
    events
}

/// The Event for a canary that started or passed its analysis (a rollback has its own, from
/// Degraded).
fn rollout_event(old: Option<&RolloutStatus>, new: Option<&RolloutStatus>) -> Option<StatusEvent> {
    let new = new?;
    let same = old.is_some_and(|o| o.phase == new.phase && o.candidate == new.candidate);
    if same {
        return None;
    }
    let candidate = format!(
        "version {} with model {} (image {})",
        new.candidate.version,
        short(&new.candidate.model_sha256),
        new.candidate.image
    );
    let (reason, note) = match new.phase.as_str() {
        phase::ANALYZING => (
            reason::CANARY_STARTED,
            format!("canary analysis of {candidate} started: {}", new.message),
        ),
        phase::PROMOTING => (
            reason::CANARY_PROMOTED,
            format!("promoting {candidate}: {}", new.message),
        ),
        _ => return None,
    };
    Some(StatusEvent {
        warning: false,
        reason: reason.into(),
        note,
    })
}

/// Whether `status` says the Predictor's current generation is fully rolled out and ready.
pub fn is_ready(predictor: &Predictor) -> bool {
    predictor.status.as_ref().is_some_and(|s| {
        s.observed_generation == predictor.metadata.generation
            && find_condition(s, READY).is_some_and(|c| c.status == TRUE)
    })
}

/// Name and namespace for logs.
pub fn key(predictor: &Predictor) -> String {
    format!(
        "{}/{}",
        predictor.namespace().unwrap_or_default(),
        predictor.name_any()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{IMAGE_DIGEST, SHA_A, SHA_B, deployment_of, predictor, time};

    fn observed(d: Option<&Deployment>) -> Observed<'_> {
        Observed {
            deployment: d,
            model: ModelCheck::Verified,
            quality: QualityCheck::Off,
            image: crate::fixtures::resolved(&predictor("american", "team-a")),
            pull_failure: None,
            invalid: None,
            conflict: None,
            autoscaler: None,
        }
    }

    fn cond<'a>(s: &'a PredictorStatus, t: &str) -> (&'a str, &'a str) {
        let c = find_condition(s, t).unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn fresh_deployment_is_progressing_and_serves_nothing_yet() {
        let p = predictor("american", "team-a");
        let d = deployment_of(&p).without_status();
        let s = compute_status(&p, &observed(Some(&d)), &time(0));
        assert_eq!(s.ready.as_deref(), Some("0/2"));
        assert_eq!(s.version, None);
        assert_eq!(cond(&s, READY), ("False", "RollingOut"));
        assert_eq!(cond(&s, PROGRESSING), ("True", "RollingOut"));
        assert_eq!(cond(&s, DEGRADED), ("False", "AsExpected"));
        assert_eq!(cond(&s, MODEL_VERIFIED), ("True", "Verified"));
        assert_eq!(s.observed_generation, Some(1));
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(1))
        );
    }

    #[test]
    fn complete_rollout_is_ready_and_reports_what_is_served() {
        let p = predictor("american", "team-a");
        let d = deployment_of(&p).rolled_out(2);
        let s = compute_status(&p, &observed(Some(&d)), &time(0));
        let expected = serde_json::json!({
            "observedGeneration": 1,
            "replicas": 2,
            "readyReplicas": 2,
            "ready": "2/2",
            "version": "0.2",
            "modelSha256": SHA_A,
            "modelShort": &SHA_A[..12],
            "imageDigest": IMAGE_DIGEST,
            "url": "http://american.team-a.svc:5008/api/american",
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "RolloutComplete", "observedGeneration": 1,
                 "lastTransitionTime": "2026-11-25T10:00:00Z",
                 "message": format!("2/2 pods ready, serving version 0.2 with model {}", &SHA_A[..12])},
                {"type": "Progressing", "status": "False", "reason": "RolloutComplete", "observedGeneration": 1,
                 "lastTransitionTime": "2026-11-25T10:00:00Z", "message": "all pods run the current spec"},
                {"type": "Degraded", "status": "False", "reason": "AsExpected", "observedGeneration": 1,
                 "lastTransitionTime": "2026-11-25T10:00:00Z", "message": "no problems observed"},
                {"type": "ModelVerified", "status": "True", "reason": "Verified", "observedGeneration": 1,
                 "lastTransitionTime": "2026-11-25T10:00:00Z",
                 "message": format!("model https://models.example.org/american/2026-11-24.model has the pinned sha256 {SHA_A} and is a predictor model file")},
                {"type": "ImageResolved", "status": "True", "reason": "Resolved", "observedGeneration": 1,
                 "lastTransitionTime": "2026-11-25T10:00:00Z",
                 "message": format!("image registry.local/american-predictor:0.2 is {IMAGE_DIGEST}; the pods pull it by digest")}
            ]
        });
        assert_eq!(serde_json::to_value(&s).unwrap(), expected);
    }

    /// The gate of the tests below: the sample as validation data, `minAccuracy` 0.8.
    fn gated(mut p: Predictor) -> Predictor {
        p.spec.validation = Some(crate::crd::ValidationSpec {
            data: crate::crd::DataSpec {
                url: "https://data.example.org/eval.csv?token=s3cret".into(),
                sha256: SHA_B.into(),
            },
            min_accuracy: Some(0.8),
            max_accuracy_drop: None,
        });
        p
    }

    #[test]
    fn a_model_below_the_quality_gate_is_degraded_while_the_old_pods_serve() {
        let mut p = gated(predictor("american", "team-a"));
        let d = deployment_of(&p).rolled_out(2);
        p.status = Some(compute_status(
            &p,
            &Observed {
                quality: QualityCheck::Serving,
                ..observed(Some(&d))
            },
            &time(0),
        ));
        // Generation 2 asks for a model that scores 0.5 on the validation data.
        p.metadata.generation = Some(2);
        p.spec.model.sha256 = SHA_B.into();
        let candidate = crate::quality::Scored {
            model_sha256: SHA_B.into(),
            score: crate::quality::Score {
                accuracy: 0.5,
                rows: 76,
            },
        };
        let verdict = crate::quality::judge(p.spec.validation.as_ref().unwrap(), &candidate, None);
        let below = Observed {
            quality: verdict,
            ..observed(Some(&d))
        };
        let s = compute_status(&p, &below, &time(5));
        let refusal = format!(
            "model {} has accuracy 0.5000 on 76 rows of validation data {}: below \
             spec.validation.minAccuracy 0.8000; the Deployment was left unchanged and the old pods \
             keep serving",
            &SHA_B[..12],
            &SHA_B[..12]
        );
        let expected = serde_json::json!({
            "observedGeneration": 2,
            "replicas": 2,
            "readyReplicas": 2,
            "ready": "2/2",
            "version": "0.2",
            "modelSha256": SHA_A,
            "modelShort": &SHA_A[..12],
            "imageDigest": IMAGE_DIGEST,
            "url": "http://american.team-a.svc:5008/api/american",
            "quality": {"modelSha256": SHA_B, "accuracy": 0.5, "dataSha256": SHA_B, "rows": 76},
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "RolloutComplete", "observedGeneration": 2,
                 "lastTransitionTime": "2026-11-25T10:00:00Z",
                 "message": format!("2/2 pods ready, serving version 0.2 with model {}", &SHA_A[..12])},
                {"type": "Progressing", "status": "False", "reason": "RolloutComplete", "observedGeneration": 2,
                 "lastTransitionTime": "2026-11-25T10:00:00Z", "message": "all pods run the current spec"},
                {"type": "Degraded", "status": "True", "reason": "ModelBelowQualityGate", "observedGeneration": 2,
                 "lastTransitionTime": "2026-11-25T10:00:05Z", "message": refusal},
                {"type": "ModelVerified", "status": "True", "reason": "Verified", "observedGeneration": 2,
                 "lastTransitionTime": "2026-11-25T10:00:00Z",
                 "message": format!("model https://models.example.org/american/2026-11-24.model has the pinned sha256 {SHA_B} and is a predictor model file")},
                {"type": "ImageResolved", "status": "True", "reason": "Resolved", "observedGeneration": 2,
                 "lastTransitionTime": "2026-11-25T10:00:00Z",
                 "message": format!("image registry.local/american-predictor:0.2 is {IMAGE_DIGEST}; the pods pull it by digest")},
                {"type": "QualityGate", "status": "False", "reason": "ModelBelowQualityGate", "observedGeneration": 2,
                 "lastTransitionTime": "2026-11-25T10:00:05Z", "message": refusal}
            ]
        });
        assert_eq!(serde_json::to_value(&s).unwrap(), expected);
        // One Event, named for the gate, with both figures; not a second one for Degraded.
        let events = status_events(p.status.as_ref().unwrap(), &s);
        assert_eq!(
            events,
            [StatusEvent {
                warning: true,
                reason: reason::MODEL_BELOW_QUALITY_GATE.into(),
                note: refusal,
            }]
        );
        // The data set's URL (and its token) appears nowhere.
        assert!(!serde_json::to_string(&s).unwrap().contains("s3cret"));

        // Back to the serving model: the gate has nothing to judge and the Predictor recovers.
        p.status = Some(s);
        p.metadata.generation = Some(3);
        p.spec.model.sha256 = SHA_A.into();
        let back = compute_status(
            &p,
            &Observed {
                quality: QualityCheck::Serving,
                ..observed(Some(&d))
            },
            &time(9),
        );
        assert_eq!(cond(&back, DEGRADED), ("False", reason::AS_EXPECTED));
        assert_eq!(cond(&back, QUALITY_GATE), ("True", reason::ALREADY_SERVING));
        assert_eq!(back.quality, None, "the figures were of the refused model");
        let events = status_events(p.status.as_ref().unwrap(), &back);
        assert_eq!(
            events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
            [reason::RECOVERED]
        );
    }

    #[test]
    fn a_model_that_passed_the_gate_keeps_its_accuracy_in_the_status_once_it_serves() {
        let mut p = gated(predictor("american", "team-a"));
        let measured = QualityStatus {
            model_sha256: SHA_A.into(),
            accuracy: 0.9342,
            data_sha256: SHA_B.into(),
            rows: 76,
            serving_model_sha256: None,
            serving_accuracy: None,
        };
        let passed = QualityCheck::Passed {
            measured: measured.clone(),
            message: "model passed".into(),
        };
        let fresh = deployment_of(&p).without_status();
        let s = compute_status(
            &p,
            &Observed {
                quality: passed,
                ..observed(Some(&fresh))
            },
            &time(0),
        );
        assert_eq!(s.quality.as_ref(), Some(&measured));
        assert_eq!(
            cond(&s, QUALITY_GATE),
            ("True", reason::QUALITY_GATE_PASSED)
        );
        assert_eq!(cond(&s, PROGRESSING), ("True", reason::ROLLING_OUT));

        // Rolled out: the Deployment runs it, so it is not judged again, but its figures stay.
        p.status = Some(s);
        let done = deployment_of(&p).rolled_out(2);
        let s = compute_status(
            &p,
            &Observed {
                quality: QualityCheck::Serving,
                ..observed(Some(&done))
            },
            &time(10),
        );
        assert_eq!(s.quality, Some(measured));
        let gate = find_condition(&s, QUALITY_GATE).unwrap();
        assert_eq!(
            (gate.status.as_str(), gate.reason.as_str(), gate.message.as_str()),
            (
                "True",
                reason::ALREADY_SERVING,
                format!(
                    "model {} already serves; it had accuracy 0.9342 on 76 rows when the gate measured it",
                    &SHA_A[..12]
                )
                .as_str()
            )
        );
        assert_eq!(
            gate.last_transition_time,
            time(0),
            "still True: no transition"
        );

        // Without spec.validation there is neither a QualityGate condition nor figures.
        p.spec.validation = None;
        let s = compute_status(&p, &observed(Some(&done)), &time(20));
        assert!(find_condition(&s, QUALITY_GATE).is_none());
        assert_eq!(s.quality, None);
    }

    #[test]
    fn unchanged_status_keeps_transition_times_so_no_write_is_needed() {
        let mut p = predictor("american", "team-a");
        let d = deployment_of(&p).rolled_out(2);
        let first = compute_status(&p, &observed(Some(&d)), &time(0));
        p.status = Some(first.clone());
        let second = compute_status(&p, &observed(Some(&d)), &time(60));
        assert_eq!(first, second);
    }

    #[test]
    fn rolling_update_keeps_reporting_the_old_version_until_complete() {
        let mut p = predictor("american", "team-a");
        let d = deployment_of(&p).rolled_out(2);
        p.status = Some(compute_status(&p, &observed(Some(&d)), &time(0)));

        // New image and model: generation 2, the Deployment is mid-rollout.
        p.metadata.generation = Some(2);
        p.spec.image = "registry.local/american-predictor:0.3".into();
        p.spec.model.sha256 = SHA_B.into();
        let rolling = deployment_of(&p).rolling(2, 1);
        let mid = compute_status(&p, &observed(Some(&rolling)), &time(10));
        assert_eq!(mid.version.as_deref(), Some("0.2"));
        assert_eq!(mid.model_sha256.as_deref(), Some(SHA_A));
        assert_eq!(cond(&mid, PROGRESSING), ("True", "RollingOut"));
        assert_eq!(cond(&mid, READY), ("False", "RollingOut"));
        let ready = find_condition(&mid, READY).unwrap();
        assert_eq!(ready.last_transition_time, time(10));

        assert!(
            status_events(p.status.as_ref().unwrap(), &mid).is_empty(),
            "a requested rollout is not worth a warning"
        );
        p.status = Some(mid);
        let done = deployment_of(&p).rolled_out(2);
        let end = compute_status(&p, &observed(Some(&done)), &time(20));
        assert_eq!(end.version.as_deref(), Some("0.3"));
        assert_eq!(end.model_short.as_deref(), Some(&SHA_B[..12]));
        assert_eq!(cond(&end, READY), ("True", "RolloutComplete"));
        assert_eq!(end.observed_generation, Some(2));
    }

    #[test]
    fn rejected_model_degrades_but_old_pods_stay_ready() {
        let mut p = predictor("american", "team-a");
        let d = deployment_of(&p).rolled_out(2);
        p.status = Some(compute_status(&p, &observed(Some(&d)), &time(0)));
        p.spec.model.sha256 = SHA_B.into();
        let rejected = Observed {
            deployment: Some(&d),
            model: ModelCheck::Rejected {
                reason: "DigestMismatch".into(),
                message: format!("expected {SHA_B}, got {SHA_A}"),
            },
            quality: QualityCheck::Off,
            image: crate::fixtures::resolved(&predictor("american", "team-a")),
            pull_failure: None,
            invalid: None,
            conflict: None,
            autoscaler: None,
        };
        let s = compute_status(&p, &rejected, &time(5));
        assert_eq!(cond(&s, READY), ("True", "RolloutComplete"));
        assert_eq!(cond(&s, DEGRADED), ("True", "DigestMismatch"));
        assert_eq!(cond(&s, MODEL_VERIFIED), ("False", "DigestMismatch"));
        assert_eq!(s.model_sha256.as_deref(), Some(SHA_A));
        let events = status_events(p.status.as_ref().unwrap(), &s);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "ModelRejected");
        assert!(
            events[0].warning && events[0].note.contains(SHA_A) && events[0].note.contains(SHA_B)
        );
    }

    #[test]
    fn rejected_model_without_deployment_blocks_creation() {
        let p = predictor("american", "team-a");
        let rejected = Observed {
            deployment: None,
            model: ModelCheck::Rejected {
                reason: "FetchFailed".into(),
                message: "connection refused".into(),
            },
            quality: QualityCheck::Off,
            image: crate::fixtures::resolved(&predictor("american", "team-a")),
            pull_failure: None,
            invalid: None,
            conflict: None,
            autoscaler: None,
        };
        let s = compute_status(&p, &rejected, &time(0));
        assert_eq!(cond(&s, READY), ("False", "FetchFailed"));
        assert_eq!(cond(&s, PROGRESSING), ("False", "FetchFailed"));
        assert_eq!(s.ready.as_deref(), Some("0/2"));
    }

    #[test]
    fn disabled_check_reports_unknown() {
        let p = predictor("american", "team-a");
        let o = Observed {
            deployment: None,
            model: ModelCheck::Unchecked {
                reason: "CheckDisabled".into(),
                message: "--skip-model-check".into(),
            },
            quality: QualityCheck::Off,
            image: crate::fixtures::resolved(&predictor("american", "team-a")),
            pull_failure: None,
            invalid: None,
            conflict: None,
            autoscaler: None,
        };
        let s = compute_status(&p, &o, &time(0));
        assert_eq!(cond(&s, MODEL_VERIFIED), ("Unknown", "CheckDisabled"));
        assert_eq!(cond(&s, PROGRESSING), ("True", "Creating"));
    }

    #[test]
    fn deadline_exceeded_is_degraded() {
        let p = predictor("american", "team-a");
        let d = deployment_of(&p).deadline_exceeded();
        let s = compute_status(&p, &observed(Some(&d)), &time(0));
        assert_eq!(cond(&s, DEGRADED), ("True", "ProgressDeadlineExceeded"));
        assert_eq!(cond(&s, PROGRESSING), ("False", "ProgressDeadlineExceeded"));
        let events = status_events(&PredictorStatus::default(), &s);
        assert_eq!(events[0].reason, "ProgressDeadlineExceeded");
    }

    #[test]
    fn scaled_to_zero_is_not_ready() {
        let mut p = predictor("american", "team-a");
        p.spec.replicas = 0;
        let d = deployment_of(&p).rolled_out(0);
        let s = compute_status(&p, &observed(Some(&d)), &time(0));
        assert_eq!(cond(&s, READY), ("False", "ScaledToZero"));
        assert_eq!(s.ready.as_deref(), Some("0/0"));
    }

    #[test]
    fn early_rollout_progress_waits_but_milestones_do_not() {
        let quiet = Duration::from_secs(10);
        let p = predictor("american", "team-a");
        let fresh = deployment_of(&p).without_status();
        let begun = compute_status(&p, &observed(Some(&fresh)), &time(0));
        // The status 3 s later, when the Deployment looks like `d`.
        let later = |d: &Deployment| {
            let p = Predictor {
                status: Some(begun.clone()),
                ..p.clone()
            };
            compute_status(&p, &observed(Some(d)), &time(3))
        };
        let step = later(&deployment_of(&p).rolling(2, 1));
        assert_ne!(begun, step, "the messages and counts moved on");
        // 3 s into the rollout: wait the 7 s that are left.
        assert_eq!(
            defer_progress(&begun, &step, time(3).0, quiet),
            Some(Duration::from_secs(7))
        );
        // 10 s in: progress is written.
        assert_eq!(defer_progress(&begun, &step, time(10).0, quiet), None);
        // Becoming ready is written at once.
        let ready = later(&deployment_of(&p).rolled_out(2));
        assert_eq!(defer_progress(&begun, &ready, time(3).0, quiet), None);
        // So is a new generation, even mid-rollout.
        let mut newer = step.clone();
        newer.observed_generation = Some(2);
        assert_eq!(defer_progress(&begun, &newer, time(3).0, quiet), None);
    }

    #[test]
    fn degraded_names_the_most_actionable_problem_first() {
        let failed = Rollout::Failed("timed out".into());
        let rejected = ModelCheck::Rejected {
            reason: reason::DIGEST_MISMATCH.into(),
            message: "expected a, got b".into(),
        };
        let observed = |model: ModelCheck, invalid: Option<&str>| Observed {
            deployment: None,
            model,
            quality: QualityCheck::Off,
            image: crate::fixtures::resolved(&predictor("american", "team-a")),
            pull_failure: None,
            invalid: invalid.map(Into::into),
            conflict: None,
            autoscaler: None,
        };
        let d = degraded_condition(&failed, &observed(rejected.clone(), Some("bad port")));
        assert_eq!(d, verdict(TRUE, reason::INVALID_SPEC, "bad port"));
        let d = degraded_condition(&failed, &observed(rejected, None));
        assert_eq!(
            d,
            verdict(TRUE, reason::DIGEST_MISMATCH, "expected a, got b")
        );
        let d = degraded_condition(&failed, &observed(ModelCheck::Verified, None));
        assert_eq!(
            d,
            verdict(TRUE, reason::PROGRESS_DEADLINE_EXCEEDED, "timed out")
        );
        let d = degraded_condition(&Rollout::Complete, &observed(ModelCheck::Verified, None));
        assert_eq!(d.status, FALSE);
        assert_eq!(
            progressing_condition(&Rollout::Missing, &observed(ModelCheck::Verified, None)).reason,
            reason::CREATING
        );
    }

    #[test]
    fn a_refused_image_blocks_the_rollout_and_says_why_once() {
        let p = predictor("american", "team-a");
        let refused = |d| Observed {
            deployment: d,
            model: ModelCheck::Verified,
            quality: QualityCheck::Off,
            image: ImageCheck::Rejected {
                reason: reason::IMAGE_NOT_FOUND.into(),
                message: "image r/a:9 was not found in its registry".into(),
            },
            pull_failure: None,
            invalid: None,
            conflict: None,
            autoscaler: None,
        };
        // No Deployment yet: nothing is created, and every condition says why.
        let s = compute_status(&p, &refused(None), &time(0));
        assert_eq!(cond(&s, READY), ("False", reason::IMAGE_NOT_FOUND));
        assert_eq!(cond(&s, PROGRESSING), ("False", reason::IMAGE_NOT_FOUND));
        assert_eq!(cond(&s, DEGRADED), ("True", reason::IMAGE_NOT_FOUND));
        assert_eq!(cond(&s, IMAGE_RESOLVED), ("False", reason::IMAGE_NOT_FOUND));
        assert_eq!(cond(&s, MODEL_VERIFIED), ("True", reason::VERIFIED));
        assert_eq!(
            find_condition(&s, DEGRADED).unwrap().message,
            "image r/a:9 was not found in its registry"
        );
        let events = status_events(&PredictorStatus::default(), &s);
        assert_eq!(
            events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
            [reason::IMAGE_REJECTED],
            "one Event, not a second one for Degraded"
        );
        // Old pods serving: still Ready, still their digest, Degraded says the new image was refused.
        let d = deployment_of(&p).rolled_out(2);
        let s = compute_status(&p, &refused(Some(&d)), &time(0));
        assert_eq!(cond(&s, READY), ("True", reason::ROLLOUT_COMPLETE));
        assert_eq!(cond(&s, DEGRADED), ("True", reason::IMAGE_NOT_FOUND));
        assert_eq!(s.image_digest.as_deref(), Some(IMAGE_DIGEST));
    }

    /// A pod of `p`'s Deployment running `image`, its container waiting for `reason`.
    fn waiting_pod(name: &str, image: &str, reason: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"containers": [{"name": "predictor", "image": image}]},
            "status": {"containerStatuses": [{
                "name": "predictor", "image": image, "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": "failed to pull: connection refused"}}
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn new_pods_that_cannot_pull_degrade_the_rollout_before_its_deadline() {
        let new = "r:5000/a@sha256:2";
        let pods = [
            // An old pod in trouble is not the rollout's: ignored.
            waiting_pod("old", "r:5000/a@sha256:1", "ImagePullBackOff"),
            waiting_pod("new-1", new, "ContainerCreating"),
        ];
        assert_eq!(pull_failure(&pods, new), None);
        let pods = [
            waiting_pod("new-1", new, "ContainerCreating"),
            waiting_pod("new-2", new, "ErrImagePull"),
        ];
        let failure = pull_failure(&pods, new).expect("a pull failure");
        assert_eq!(
            failure,
            "pod new-2 cannot pull image r:5000/a@sha256:2: ErrImagePull: failed to pull: \
             connection refused; the old pods keep serving"
        );

        let p = predictor("american", "team-a");
        let d = deployment_of(&p).rolling(2, 1);
        let stalled = Observed {
            pull_failure: Some(failure.clone()),
            ..observed(Some(&d))
        };
        let s = compute_status(&p, &stalled, &time(0));
        assert_eq!(cond(&s, DEGRADED), ("True", reason::IMAGE_PULL_BACK_OFF));
        assert_eq!(find_condition(&s, DEGRADED).unwrap().message, failure);
        assert_eq!(cond(&s, PROGRESSING), ("True", reason::ROLLING_OUT));
        let events = status_events(&PredictorStatus::default(), &s);
        assert!(
            events
                .iter()
                .any(|e| e.warning && e.reason == reason::IMAGE_PULL_BACK_OFF),
            "{events:?}"
        );
        // Once the rollout completed, stale pod states mean nothing.
        let done = deployment_of(&p).rolled_out(2);
        let stale = Observed {
            pull_failure: Some(failure),
            ..observed(Some(&done))
        };
        let s = compute_status(&p, &stale, &time(0));
        assert_eq!(cond(&s, DEGRADED), ("False", reason::AS_EXPECTED));
    }

    #[test]
    fn an_unresolved_image_is_unknown_and_has_no_digest() {
        let p = predictor("american", "team-a");
        let mut d = deployment_of(&p).rolled_out(2);
        d.spec.template.spec.as_mut().unwrap().containers[0].image = Some(p.spec.image.clone());
        let unchecked = Observed {
            deployment: Some(&d),
            model: ModelCheck::Verified,
            quality: QualityCheck::Off,
            image: ImageCheck::Unchecked {
                reason: reason::CHECK_DISABLED.into(),
                message: "off".into(),
            },
            pull_failure: None,
            invalid: None,
            conflict: None,
            autoscaler: None,
        };
        let s = compute_status(&p, &unchecked, &time(0));
        assert_eq!(
            cond(&s, IMAGE_RESOLVED),
            ("Unknown", reason::CHECK_DISABLED)
        );
        assert_eq!(cond(&s, READY), ("True", reason::ROLLOUT_COMPLETE));
        assert_eq!(s.image_digest, None);
    }

    #[test]
    fn a_canary_analysis_is_progressing_and_a_rollback_is_degraded_with_its_figures() {
        let mut p = crate::fixtures::canary(predictor("american", "team-a"));
        let d = deployment_of(&p).rolled_out(2);
        p.status = Some(compute_status(&p, &observed(Some(&d)), &time(0)));
        p.metadata.generation = Some(2);
        p.spec.model.sha256 = SHA_B.into();
        let rollout = |phase: &str, reason: &str, message: &str| RolloutStatus {
            phase: phase.into(),
            reason: reason.into(),
            message: message.into(),
            candidate: crate::crd::Candidate {
                image: "r/p:0.2@sha256:2".into(),
                model_sha256: SHA_B.into(),
                version: "0.2".into(),
            },
            generation: Some(2),
            ..RolloutStatus::default()
        };
        let last_good = Some((
            ModelRef {
                url: "https://m/a.model".into(),
                sha256: SHA_A.into(),
            },
            "r/p:0.2@sha256:1".to_string(),
        ));
        let analysing = RolloutView {
            rollout: Some(rollout(
                "Analyzing",
                "WaitingForSamples",
                "waiting: 3 of 100 samples",
            )),
            last_good: last_good.clone(),
        };
        let s = compute_status_with_rollout(&p, &observed(Some(&d)), &analysing, &time(5));
        let progressing = find_condition(&s, PROGRESSING).unwrap();
        assert_eq!(
            (
                progressing.status.as_str(),
                progressing.reason.as_str(),
                progressing.message.as_str()
            ),
            ("True", reason::CANARY_ANALYSIS, "waiting: 3 of 100 samples")
        );
        assert_eq!(progressing.last_transition_time, time(5));
        assert_eq!(cond(&s, READY), ("True", reason::ROLLOUT_COMPLETE));
        assert_eq!(cond(&s, DEGRADED), ("False", reason::AS_EXPECTED));
        assert_eq!(s.last_good_model.as_ref().unwrap().sha256, SHA_A);
        assert_eq!(s.last_good_image.as_deref(), Some("r/p:0.2@sha256:1"));
        assert_eq!(
            s.model_sha256.as_deref(),
            Some(SHA_A),
            "the stable pods serve"
        );
        assert_eq!(
            status_events(p.status.as_ref().unwrap(), &s),
            [StatusEvent {
                warning: false,
                reason: reason::CANARY_STARTED.into(),
                note: format!(
                    "canary analysis of version 0.2 with model {} (image r/p:0.2@sha256:2) \
                     started: waiting: 3 of 100 samples",
                    &SHA_B[..12]
                ),
            }]
        );
        // The next sample count is no new Event.
        let more = RolloutView {
            rollout: Some(rollout(
                "Analyzing",
                "WaitingForSamples",
                "waiting: 9 of 100 samples",
            )),
            last_good: last_good.clone(),
        };
        p.status = Some(s);
        let s = compute_status_with_rollout(&p, &observed(Some(&d)), &more, &time(15));
        assert!(status_events(p.status.as_ref().unwrap(), &s).is_empty());

        p.status = Some(s);
        let rolled_back = RolloutView {
            rollout: Some(rollout(
                "RolledBack",
                "ErrorRateTooHigh",
                "candidate failed the analysis on (figures)",
            )),
            last_good,
        };
        let s = compute_status_with_rollout(&p, &observed(Some(&d)), &rolled_back, &time(20));
        let message = format!(
            "canary rolled back (version 0.2, model {}): candidate failed the analysis on \
             (figures); the stable pods keep serving version 0.2 with model {} \
             (status.lastGoodModel); commit another candidate to try again",
            &SHA_B[..12],
            &SHA_A[..12]
        );
        let degraded = find_condition(&s, DEGRADED).unwrap();
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", reason::CANARY_ROLLED_BACK)
        );
        assert_eq!(degraded.message, message);
        assert_eq!(cond(&s, PROGRESSING), ("False", reason::ROLLOUT_COMPLETE));
        assert_eq!(cond(&s, READY), ("True", reason::ROLLOUT_COMPLETE));
        assert_eq!(
            status_events(p.status.as_ref().unwrap(), &s),
            [StatusEvent {
                warning: true,
                reason: reason::CANARY_ROLLED_BACK.into(),
                note: message,
            }]
        );
        // A refused model is more actionable than an old rollback: Degraded names the refusal.
        let refused = Observed {
            model: ModelCheck::Rejected {
                reason: reason::DIGEST_MISMATCH.into(),
                message: "expected a, got b".into(),
            },
            ..observed(Some(&d))
        };
        let s = compute_status_with_rollout(&p, &refused, &rolled_back, &time(30));
        assert_eq!(cond(&s, DEGRADED), ("True", reason::DIGEST_MISMATCH));
    }

    #[test]
    fn new_sample_counts_are_written_at_most_once_per_poll() {
        let analysing = |samples: i64, at: i64| {
            let mut s = PredictorStatus {
                rollout: Some(RolloutStatus {
                    phase: "Analyzing".into(),
                    reason: "WaitingForSamples".into(),
                    message: format!("waiting: {samples} of 100 samples"),
                    measured_at: Some(time(at)),
                    ..RolloutStatus::default()
                }),
                ..PredictorStatus::default()
            };
            s.conditions = vec![condition(
                &[],
                PROGRESSING,
                verdict(
                    TRUE,
                    reason::CANARY_ANALYSIS,
                    format!("waiting: {samples} of 100 samples"),
                ),
                Some(2),
                &time(0),
            )];
            s
        };
        let every = Duration::from_secs(10);
        let old = analysing(3, 0);
        // 4 s later, more samples: written 6 s later.
        assert_eq!(
            defer_analysis(&old, &analysing(9, 4), time(4).0, every),
            Some(Duration::from_secs(6))
        );
        // 10 s later: written.
        assert_eq!(
            defer_analysis(&old, &analysing(9, 10), time(10).0, every),
            None
        );
        // A verdict (another phase or reason) is written at once.
        let mut passed = analysing(150, 4);
        passed.rollout.as_mut().unwrap().phase = "Promoting".into();
        assert_eq!(defer_analysis(&old, &passed, time(4).0, every), None);
        // Not analysing: nothing deferred.
        assert_eq!(
            defer_analysis(&PredictorStatus::default(), &old, time(4).0, every),
            None
        );
    }

    #[test]
    fn readiness_is_an_event_only_for_what_served_before() {
        let p = predictor("american", "team-a");
        let d = deployment_of(&p).rolled_out(2);
        let s = compute_status(&p, &observed(Some(&d)), &time(0));
        // A new Predictor's first readiness: the status tells it, no Event.
        assert_eq!(cond(&s, READY), ("True", reason::ROLLOUT_COMPLETE));
        assert!(status_events(&PredictorStatus::default(), &s).is_empty());
        let mut first_rollout = s.clone();
        first_rollout.model_sha256 = None;
        set_condition(&mut first_rollout, READY, FALSE, reason::ROLLING_OUT);
        assert!(status_events(&first_rollout, &s).is_empty());
        // Ready again after a rollout of something that served: an Event.
        let mut rolling = s.clone();
        set_condition(&mut rolling, READY, FALSE, reason::ROLLING_OUT);
        let reasons =
            |events: Vec<StatusEvent>| events.into_iter().map(|e| e.reason).collect::<Vec<_>>();
        assert_eq!(reasons(status_events(&rolling, &s)), ["Ready"]);
        // Pods that stopped being ready, and came back: both are Events.
        let mut down = s.clone();
        set_condition(&mut down, READY, FALSE, reason::PODS_NOT_READY);
        assert_eq!(reasons(status_events(&s, &down)), ["NotReady"]);
        assert_eq!(reasons(status_events(&down, &s)), ["Ready"]);
        assert!(status_events(&s, &s).is_empty());
    }

    fn set_condition(status: &mut PredictorStatus, type_: &str, to: &str, why: &str) {
        let c = status
            .conditions
            .iter_mut()
            .find(|c| c.type_ == type_)
            .unwrap();
        (c.status, c.reason) = (to.into(), why.into());
    }

    /// An autoscaled Predictor serving model A on 2 pods (status written), its Deployment then
    /// scaled to 4 by the autoscaler with 2 new pods starting.
    fn scaled_up(new_template: bool) -> (Predictor, Deployment) {
        let mut p = crate::fixtures::autoscaled(predictor("american", "team-a"));
        let served = deployment_of(&p).rolled_out(2);
        p.status = Some(compute_status(&p, &observed(Some(&served)), &time(0)));
        if new_template {
            p.spec.model.sha256 = SHA_B.into();
        }
        let mut d = deployment_of(&p).with_counts(4, 2, 4, 2);
        d.spec.replicas = Some(4);
        (p, d)
    }

    #[test]
    fn a_scale_up_of_the_served_release_stays_ready_and_is_not_a_rollout() {
        let (p, d) = scaled_up(false);
        let s = compute_status(&p, &observed(Some(&d)), &time(30));
        assert_eq!(s.ready.as_deref(), Some("2/4"));
        assert_eq!(cond(&s, READY), ("True", "Scaling"));
        assert_eq!(
            find_condition(&s, READY).unwrap().message,
            "2/4 pods ready, serving version 0.2 with model 9f2c1e0d4b3a; scaling to 4 pods"
        );
        assert_eq!(cond(&s, PROGRESSING), ("False", "Scaling"));
        assert_eq!(s.version.as_deref(), Some("0.2"));
        assert_eq!(s.model_sha256.as_deref(), Some(SHA_A));
        // The scale itself, before the deployment controller has seen it: the same.
        let mut unseen = d.clone();
        unseen.metadata.generation = Some(2);
        let s = compute_status(&p, &observed(Some(&unseen)), &time(30));
        assert_eq!(cond(&s, READY), ("True", "Scaling"));
        // Every pod ready again: a plain complete rollout.
        let mut done = d.clone();
        let status = done.status.as_mut().unwrap();
        (status.ready_replicas, status.available_replicas) = (Some(4), Some(4));
        let s = compute_status(&p, &observed(Some(&done)), &time(40));
        assert_eq!(cond(&s, READY), ("True", "RolloutComplete"));
        assert_eq!(s.ready.as_deref(), Some("4/4"));
    }

    #[test]
    fn new_pods_of_a_new_release_are_a_rollout_whatever_their_number() {
        let (p, d) = scaled_up(true);
        let s = compute_status(&p, &observed(Some(&d)), &time(30));
        assert_eq!(cond(&s, READY), ("False", "RollingOut"));
        assert_eq!(cond(&s, PROGRESSING), ("True", "RollingOut"));
        assert_eq!(
            s.model_sha256.as_deref(),
            Some(SHA_A),
            "still the old pods' model"
        );
        // Old pods beside the new ones: a rollout too, even of the served template.
        let (p, mut d) = scaled_up(false);
        d.status.as_mut().unwrap().replicas = Some(6);
        let s = compute_status(&p, &observed(Some(&d)), &time(30));
        assert_eq!(cond(&s, PROGRESSING), ("True", "RollingOut"));
    }

    /// An autoscaler with `conditions` (type, status, reason, message) and a desired count of 4.
    fn autoscaler_saying(
        p: &Predictor,
        conditions: &[(&str, &str, &str, &str)],
    ) -> HorizontalPodAutoscaler {
        use k8s_openapi::api::autoscaling::v2::{
            HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
        };
        let mut hpa = crate::resources::build_autoscaler(p).unwrap().unwrap();
        hpa.status = Some(HorizontalPodAutoscalerStatus {
            current_replicas: Some(2),
            desired_replicas: 4,
            last_scale_time: Some(time(20)),
            conditions: Some(
                conditions
                    .iter()
                    .map(
                        |(type_, status, reason, message)| HorizontalPodAutoscalerCondition {
                            type_: (*type_).into(),
                            status: (*status).into(),
                            reason: Some((*reason).into()),
                            message: Some((*message).into()),
                            ..HorizontalPodAutoscalerCondition::default()
                        },
                    )
                    .collect(),
            ),
            ..HorizontalPodAutoscalerStatus::default()
        });
        hpa
    }

    #[test]
    fn the_autoscaling_status_and_condition_say_what_the_autoscaler_says() {
        let (p, d) = scaled_up(false);
        let with = |hpa: Option<&HorizontalPodAutoscaler>| {
            let o = Observed {
                autoscaler: hpa,
                ..observed(Some(&d))
            };
            compute_status(&p, &o, &time(30))
        };
        let s = with(None);
        assert_eq!(cond(&s, AUTOSCALING), ("Unknown", "AutoscalerPending"));
        assert_eq!(
            s.autoscaling,
            Some(AutoscalingStatus {
                current_replicas: 4,
                desired_replicas: 4,
                min_replicas: 2,
                max_replicas: 6,
                last_scale_time: None,
            }),
            "before the autoscaler's first look: the Deployment's counts"
        );

        let active = autoscaler_saying(
            &p,
            &[
                (
                    "AbleToScale",
                    "True",
                    "SucceededRescale",
                    "the HPA controller was able to update the target scale to 4",
                ),
                (
                    "ScalingActive",
                    "True",
                    "ValidMetricFound",
                    "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)",
                ),
                (
                    "ScalingLimited",
                    "False",
                    "DesiredWithinRange",
                    "the desired count is within the acceptable range",
                ),
            ],
        );
        let s = with(Some(&active));
        assert_eq!(cond(&s, AUTOSCALING), ("True", "ScalingActive"));
        assert_eq!(
            find_condition(&s, AUTOSCALING).unwrap().message,
            "4 pods wanted, between 2 and 6 on CPU at 60% of the request"
        );
        assert_eq!(
            s.autoscaling,
            Some(AutoscalingStatus {
                current_replicas: 2,
                desired_replicas: 4,
                min_replicas: 2,
                max_replicas: 6,
                last_scale_time: Some(time(20)),
            })
        );
        // Readiness is the pods', not the autoscaler's.
        assert_eq!(cond(&s, READY), ("True", "Scaling"));

        let limited = autoscaler_saying(
            &p,
            &[
                ("ScalingActive", "True", "ValidMetricFound", "ok"),
                (
                    "ScalingLimited",
                    "True",
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                ),
            ],
        );
        assert_eq!(
            find_condition(&with(Some(&limited)), AUTOSCALING)
                .unwrap()
                .message,
            "4 pods wanted, between 2 and 6 on CPU at 60% of the request (the desired replica count is more than the maximum replica count)"
        );

        let blind = autoscaler_saying(
            &p,
            &[
                (
                    "AbleToScale",
                    "True",
                    "SucceededGetScale",
                    "the HPA controller was able to get the target's current scale",
                ),
                (
                    "ScalingActive",
                    "False",
                    "FailedGetResourceMetric",
                    "the HPA was unable to compute the replica count: unable to get metrics for resource cpu: no metrics returned from resource metrics API",
                ),
            ],
        );
        let mut blind = blind;
        blind.status.as_mut().unwrap().desired_replicas = 0;
        let s = with(Some(&blind));
        assert_eq!(cond(&s, AUTOSCALING), ("False", "FailedGetResourceMetric"));
        assert_eq!(
            s.autoscaling.as_ref().map(|a| a.desired_replicas),
            Some(4),
            "the autoscaler's 0 (no count computed) is not what is wanted: the Deployment's 4"
        );
        assert_eq!(
            find_condition(&s, AUTOSCALING).unwrap().message,
            "the autoscaler cannot scale: the HPA was unable to compute the replica count: unable to get metrics for resource cpu: no metrics returned from resource metrics API"
        );
        assert_eq!(
            cond(&s, DEGRADED),
            ("False", "AsExpected"),
            "the pods still serve"
        );
    }
}
