//! kstatus's two conditions, for the GitOps tools that judge an object with `sigs.k8s.io/cli-utils`
//! (Flux's `wait`/`healthChecks`, kpt, `kubectl`-based CD): `Reconciling` (True: the operator is
//! still working towards the spec; kstatus says InProgress) and `Stalled` (True: it will not get
//! there without a change from the user; kstatus says Failed). Neither True, kstatus reads Ready:
//! True is Current.
//!
//! Both are read from the Ready, Progressing and Degraded the status already has (after a Canary's
//! overlay too), so the two conventions cannot disagree: ArgoCD's `health.lua` keeps reading those
//! three. The one difference is on purpose: a Degraded whose cause the operator or the kubelet
//! retries by itself (a store or registry that is down, an image pull backing off) is Reconciling,
//! not Stalled, because it may still succeed with no change; ArgoCD shows it Degraded meanwhile.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::reason;
use super::verdict::{
    DEGRADED, FALSE, PROGRESSING, READY, RECONCILING, STALLED, TRUE, Verdict, condition, verdict,
};
use crate::crd::PredictorStatus;

/// Sets `status`'s Reconciling and Stalled (the last two conditions) from its other conditions,
/// transition times kept from `previous`.
pub(super) fn set_kstatus(
    status: &mut PredictorStatus,
    previous: &[Condition],
    generation: Option<i64>,
    now: &Time,
) {
    status
        .conditions
        .retain(|c| c.type_ != RECONCILING && c.type_ != STALLED);
    let kstatus = kstatus_verdicts(&status.conditions)
        .map(|(type_, v)| condition(previous, type_, v, generation, now));
    status.conditions.extend(kstatus);
}

/// Degraded reasons that no retry cures: the spec, a model, an image, a Secret, or another
/// object must change (Stalled True). Every other Degraded reason is retried (Reconciling True).
const NEEDS_A_CHANGE: [&str; 12] = [
    reason::INVALID_SPEC,
    reason::CHILD_CONFLICT,
    reason::DIGEST_MISMATCH,
    reason::NOT_A_MODEL_FILE,
    reason::CREDENTIALS_UNUSABLE,
    reason::IMAGE_NOT_FOUND,
    reason::REGISTRY_UNAUTHORIZED,
    reason::MODEL_BELOW_QUALITY_GATE,
    reason::VALIDATION_DATA_DIGEST_MISMATCH,
    reason::VALIDATION_DATA_INVALID,
    reason::PROGRESS_DEADLINE_EXCEEDED,
    reason::CANARY_ROLLED_BACK,
];

/// The Reconciling and Stalled verdicts for the Ready, Progressing and Degraded in `conditions`.
fn kstatus_verdicts(conditions: &[Condition]) -> [(&'static str, Verdict); 2] {
    let find = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    let is_true = |c: &&Condition| c.status == TRUE;
    let says = |status, c: &Condition| verdict(status, &c.reason, c.message.clone());
    let degraded = find(DEGRADED).filter(is_true);
    let stalled = degraded.filter(|c| NEEDS_A_CHANGE.contains(&c.reason.as_str()));
    let (reconciling, stalled) = match stalled {
        Some(c) => (
            verdict(
                FALSE,
                reason::STALLED,
                "no progress without a change, see Stalled",
            ),
            says(TRUE, c),
        ),
        None => {
            // What the operator is working on: a rollout or an analysis, else a retried failure,
            // else pods that are not ready yet.
            let working = find(PROGRESSING)
                .filter(is_true)
                .or(degraded)
                .or(find(READY).filter(|c| c.status != TRUE));
            let reconciling = match (working, find(READY)) {
                (Some(c), _) => says(TRUE, c),
                (None, Some(ready)) => says(FALSE, ready),
                (None, None) => verdict(FALSE, reason::AS_EXPECTED, "nothing to do"),
            };
            (
                reconciling,
                verdict(FALSE, reason::AS_EXPECTED, "no problems observed"),
            )
        }
    };
    [(RECONCILING, reconciling), (STALLED, stalled)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn conditions(of: &[(&str, &'static str, &str)]) -> Vec<Condition> {
        of.iter()
            .map(|(type_, status, reason)| Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message: format!("{type_} says {reason}"),
                observed_generation: Some(1),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            })
            .collect()
    }

    fn kstatus(of: &[(&str, &'static str, &str)]) -> [(&'static str, &'static str, String); 2] {
        kstatus_verdicts(&conditions(of)).map(|(t, v)| (t, v.status, v.reason))
    }

    #[test]
    fn a_refusal_that_needs_a_change_stalls_one_that_is_retried_reconciles() {
        for stalls in NEEDS_A_CHANGE {
            let [r, s] = kstatus(&[
                (READY, TRUE, reason::ROLLOUT_COMPLETE),
                (PROGRESSING, FALSE, stalls),
                (DEGRADED, TRUE, stalls),
            ]);
            assert_eq!(r, (RECONCILING, FALSE, reason::STALLED.into()), "{stalls}");
            assert_eq!(s, (STALLED, TRUE, stalls.into()));
        }
        for retried in [
            reason::FETCH_FAILED,
            reason::REGISTRY_UNREACHABLE,
            reason::VALIDATION_DATA_UNAVAILABLE,
            reason::EVALUATION_FAILED,
            reason::IMAGE_PULL_BACK_OFF,
        ] {
            let [r, s] = kstatus(&[
                (READY, TRUE, reason::ROLLOUT_COMPLETE),
                (PROGRESSING, FALSE, retried),
                (DEGRADED, TRUE, retried),
            ]);
            assert_eq!(r, (RECONCILING, TRUE, retried.into()));
            assert_eq!(s, (STALLED, FALSE, reason::AS_EXPECTED.into()));
        }
    }

    #[test]
    fn a_rollout_reconciles_with_progressings_words_and_a_settled_one_does_not() {
        let rolling = kstatus_verdicts(&conditions(&[
            (READY, FALSE, reason::ROLLING_OUT),
            (PROGRESSING, TRUE, reason::CANARY_ANALYSIS),
            (DEGRADED, FALSE, reason::AS_EXPECTED),
        ]));
        assert_eq!(
            rolling[0].1,
            verdict(
                TRUE,
                reason::CANARY_ANALYSIS,
                "Progressing says CanaryAnalysis"
            )
        );
        assert_eq!(rolling[1].1.status, FALSE);
        // Pods not ready after a finished rollout: still being worked on (the deadline may stall it).
        let [r, _] = kstatus(&[
            (READY, FALSE, reason::PODS_NOT_READY),
            (PROGRESSING, FALSE, reason::ROLLOUT_COMPLETE),
            (DEGRADED, FALSE, reason::AS_EXPECTED),
        ]);
        assert_eq!(r, (RECONCILING, TRUE, reason::PODS_NOT_READY.into()));
        let [r, s] = kstatus(&[
            (READY, TRUE, reason::SCALED_TO_ZERO),
            (PROGRESSING, FALSE, reason::ROLLOUT_COMPLETE),
            (DEGRADED, FALSE, reason::AS_EXPECTED),
        ]);
        assert_eq!(r, (RECONCILING, FALSE, reason::SCALED_TO_ZERO.into()));
        assert_eq!(s, (STALLED, FALSE, reason::AS_EXPECTED.into()));
    }
}
