//! A Canary Predictor's rollout laid over its status: the analysis says Progressing, a rollback
//! says Degraded, and the status names the model and image the stable pods serve.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::compute::compute_status;
use super::kstatus::set_kstatus;
use super::observed::Observed;
use super::reason;
use super::verdict::{DEGRADED, PROGRESSING, TRUE, condition, find_condition, short, verdict};
use crate::crd::{ModelRef, Predictor, PredictorStatus, RolloutStatus, phase};

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
        set_kstatus(&mut status, &previous.conditions, generation, now);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{SHA_A, SHA_B, cond, deployment_of, observed, predictor, time};
    use crate::status::{ModelCheck, READY, StatusEvent, status_events};

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
}
