//! When a status write can wait: a rollout's early progress and a canary analysis' new figures
//! are held back for a while, so that each write (a watch event, hence another reconcile) does
//! not start the next one as fast as the apiserver answers.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::verdict::{PROGRESSING, TRUE, find_condition};
use crate::crd::{PredictorStatus, phase};

/// When `new` differs from `old` only in a rollout's progress details (pod and node counts,
/// condition messages; not a condition's status or reason, the generation, or what is served) and
/// that rollout began less than `quiet` before `now`: how long until its progress is worth a write.
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
    time_left(began.last_transition_time.0, now, quiet)
}

/// What is left of `span` begun at `since`, at `now`; None once it is over.
pub(super) fn time_left(since: Timestamp, now: Timestamp, span: Duration) -> Option<Duration> {
    let left = SignedDuration::try_from(span).ok()? - now.duration_since(since);
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
    time_left(measured.0, now, every)
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
    s.nodes = None;
    for c in &mut s.conditions {
        c.message.clear();
    }
    s
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;

    use super::*;
    use crate::crd::{Predictor, RolloutStatus};
    use crate::fixtures::{deployment_of, observed, predictor, time};
    use crate::status::compute_status;
    use crate::status::reason;
    use crate::status::verdict::{condition, verdict};

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
}
