//! Which Events a status change deserves: readiness lost or regained by something that served,
//! a refused model or image, a degradation and its end, a canary that started or was promoted.

use super::reason;
use super::verdict::{
    DEGRADED, DRIFT, FALSE, IMAGE_RESOLVED, MODEL_VERIFIED, QUALITY_GATE, READY, TRUE,
    find_condition, short,
};
use crate::crd::{PredictorStatus, RolloutStatus, phase};

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
        // Scaled to zero is Ready (nothing is wanted) but nothing serves: no Event either way.
        let was_zero =
            find_condition(old, READY).is_some_and(|o| o.reason == reason::SCALED_TO_ZERO);
        if c.status == TRUE && served_before && c.reason != reason::SCALED_TO_ZERO {
            events.push(StatusEvent {
                warning: false,
                reason: reason::READY.into(),
                note: c.message.clone(),
            });
        } else if c.status != TRUE
            && find_condition(old, READY).is_some_and(|o| o.status == TRUE)
            && !was_zero
            && c.reason != reason::ROLLING_OUT
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
    // Drift: every change of the verdict (status or reason), a Warning when it drifted; the first
    // verdict of a Predictor only when it is drift (like readiness, the status tells the rest).
    if let Some(c) = changed(DRIFT)
        && (c.status == TRUE || find_condition(old, DRIFT).is_some())
    {
        events.push(StatusEvent {
            warning: c.status == TRUE,
            reason: c.reason.clone(),
            note: format!("drift: {}", c.message),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{cond, deployment_of, observed, predictor, time};
    use crate::status::compute_status;

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
}
