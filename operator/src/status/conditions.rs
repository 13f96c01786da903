//! Each condition's verdict: Ready, Progressing and Degraded from where the rollout stands and what
//! was observed; ModelVerified, QualityGate and ImageResolved from the pre-flight checks;
//! Autoscaling from the HorizontalPodAutoscaler's own conditions.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use model_store::redact;

use super::check::{Check, ImageCheck, ModelCheck, QualityCheck};
use super::observed::{Observed, Pods};
use super::reason;
use super::rollout::Rollout;
use super::verdict::{FALSE, TRUE, UNKNOWN, Verdict, short, verdict};
use crate::crd::{AutoscalingSpec, Predictor, QualityStatus};

/// Ready: every desired pod runs the current spec and is ready.
pub(super) fn ready_condition(rollout: &Rollout, pods: &Pods, observed: &Observed) -> Verdict {
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
        // As asked: no pod wanted (a Deployment scaled to 0 is Available too), so a script's
        // `kubectl wait --for=condition=Ready` and kstatus (Current) do not wait forever.
        Rollout::Complete if desired == 0 => {
            verdict(TRUE, reason::SCALED_TO_ZERO, "spec.replicas is 0")
        }
        Rollout::Complete if ready >= desired => {
            verdict(TRUE, reason::ROLLOUT_COMPLETE, pods.serving())
        }
        Rollout::Complete => verdict(FALSE, reason::PODS_NOT_READY, pods.ready_on_nodes()),
        Rollout::Scaling(msg) if ready > 0 => {
            verdict(TRUE, reason::SCALING, format!("{}; {msg}", pods.serving()))
        }
        Rollout::Scaling(msg) => verdict(
            FALSE,
            reason::PODS_NOT_READY,
            format!("{}; {msg}", pods.ready_on_nodes()),
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
            format!("{}; {msg}", pods.ready_on_nodes()),
        ),
        Rollout::Failed(msg) => verdict(FALSE, reason::PROGRESS_DEADLINE_EXCEEDED, msg.clone()),
    }
}

/// Progressing: a rollout is under way (or why it is not).
pub(super) fn progressing_condition(rollout: &Rollout, observed: &Observed) -> Verdict {
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
pub(super) fn degraded_condition(rollout: &Rollout, observed: &Observed) -> Verdict {
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

/// The condition that tells a pre-flight check's outcome: True with what `passed` says of what the
/// check found, Unknown when it was not made, False when it refused.
fn check_verdict<T>(check: &Check<T>, passed: impl FnOnce(&T) -> Verdict) -> Verdict {
    match check {
        Check::Passed(found) => passed(found),
        Check::Unchecked { reason, message } => verdict(UNKNOWN, reason, message.clone()),
        Check::Rejected { reason, message } => verdict(FALSE, reason, message.clone()),
    }
}

/// ModelVerified: the outcome of the pre-flight check of `spec.model` (its URL redacted).
pub(super) fn model_verified_condition(predictor: &Predictor, model: &ModelCheck) -> Verdict {
    check_verdict(model, |_| {
        verdict(
            TRUE,
            reason::VERIFIED,
            format!(
                "model {} has the pinned sha256 {} and is a predictor model file",
                redact(&predictor.spec.model.url),
                predictor.spec.model.sha256
            ),
        )
    })
}

/// QualityGate: the offline quality gate's verdict; `quality` is what the status will show of
/// `spec.model`'s measured accuracy.
pub(super) fn quality_gate_condition(
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

/// ImageResolved: the outcome of the image pre-flight of `spec.image`.
pub(super) fn image_resolved_condition(predictor: &Predictor, image: &ImageCheck) -> Verdict {
    check_verdict(image, |pinned| {
        verdict(
            TRUE,
            reason::RESOLVED,
            format!(
                "image {} is {}; the pods pull it by digest",
                predictor.spec.image,
                pinned.split_once('@').map_or(pinned.as_str(), |(_, d)| d)
            ),
        )
    })
}

/// Autoscaling: whether the autoscaler measures the pods and may scale them, in its own words
/// when it cannot (e.g. `FailedGetResourceMetric`: no metrics API, or pods without a CPU request).
pub(super) fn autoscaling_condition(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_names_the_most_actionable_problem_first() {
        let failed = Rollout::Failed("timed out".into());
        let rejected = ModelCheck::Rejected {
            reason: reason::DIGEST_MISMATCH.into(),
            message: "expected a, got b".into(),
        };
        let observed = |model: ModelCheck, invalid: Option<&str>| Observed {
            model,
            invalid: invalid.map(Into::into),
            ..crate::fixtures::observed(None)
        };
        let d = degraded_condition(&failed, &observed(rejected.clone(), Some("bad port")));
        assert_eq!(d, verdict(TRUE, reason::INVALID_SPEC, "bad port"));
        let d = degraded_condition(&failed, &observed(rejected, None));
        assert_eq!(
            d,
            verdict(TRUE, reason::DIGEST_MISMATCH, "expected a, got b")
        );
        let d = degraded_condition(&failed, &observed(ModelCheck::Passed(()), None));
        assert_eq!(
            d,
            verdict(TRUE, reason::PROGRESS_DEADLINE_EXCEEDED, "timed out")
        );
        let d = degraded_condition(&Rollout::Complete, &observed(ModelCheck::Passed(()), None));
        assert_eq!(d.status, FALSE);
        assert_eq!(
            progressing_condition(&Rollout::Missing, &observed(ModelCheck::Passed(()), None))
                .reason,
            reason::CREATING
        );
    }
}
