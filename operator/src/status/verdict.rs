//! The words of a status: the condition types, what a condition says ([`Verdict`]) and how that
//! becomes a Kubernetes `Condition`, and how a digest is shortened in a message.
//!
//! Conditions follow the Kubernetes API conventions: `type`, `status` (True/False/Unknown), a
//! CamelCase `reason`, a human `message`, `observedGeneration`, and a `lastTransitionTime` that only
//! moves when `status` does, so an unchanged status computes to an identical object and no write is
//! needed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{Predictor, PredictorStatus};

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
/// Present only with `spec.monitoring.drift`: whether the live answers drifted from the model
/// file's reference. Never part of Ready, Progressing or Degraded.
pub const DRIFT: &str = "Drift";
/// kstatus's (Flux, kpt, cli-utils): True while the operator works towards the spec, read from
/// Ready, Progressing and Degraded (see `kstatus`). Always present, last but one.
pub const RECONCILING: &str = "Reconciling";
/// kstatus's: True when the operator will not reach the spec without a change. Always last.
pub const STALLED: &str = "Stalled";
pub(super) const TRUE: &str = "True";
pub(super) const FALSE: &str = "False";
pub(super) const UNKNOWN: &str = "Unknown";

/// What a condition says, before its type, generation and transition time are added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Verdict {
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// CamelCase, one of [`reason`](super::reason)'s constants.
    pub reason: String,
    /// For humans.
    pub message: String,
}

pub(super) fn verdict(status: &'static str, reason: &str, message: impl Into<String>) -> Verdict {
    Verdict {
        status,
        reason: reason.into(),
        message: message.into(),
    }
}

/// A condition whose `lastTransitionTime` is kept from `previous` when its status did not change.
pub(super) fn condition(
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

/// Whether `status` says the Predictor's current generation is fully rolled out and ready.
pub fn is_ready(predictor: &Predictor) -> bool {
    predictor.status.as_ref().is_some_and(|s| {
        s.observed_generation == predictor.metadata.generation
            && find_condition(s, READY).is_some_and(|c| c.status == TRUE)
    })
}

/// First 12 characters of a digest (what `kubectl get` shows).
pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}
