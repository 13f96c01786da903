//! The Drift condition and `status.drift`, from the last drift reading ([`DriftReading`]) and the
//! thresholds of `spec.monitoring.drift`; and when new drift figures alone can wait for a write
//! ([`defer_drift`]). Drift never touches Ready, Progressing or Degraded.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use predictor::drift::Signal;

use super::reason;
use super::verdict::{DRIFT, FALSE, TRUE, UNKNOWN, Verdict, find_condition, verdict};
use crate::crd::{DriftPsi, DriftSpec, DriftStatus, PredictorStatus};
use crate::drift::{DriftReading, Found};

/// The Drift verdict and `status.drift` for `spec`: from `reading`, or kept from `previous` while
/// there is none yet, and while a short history cannot tell (just after the operator started, a
/// window holds only what it has read since: a verdict stands until a whole window says otherwise).
pub(super) fn drift_of(
    spec: &DriftSpec,
    reading: Option<&DriftReading>,
    previous: &PredictorStatus,
) -> (Verdict, Option<DriftStatus>) {
    let kept = find_condition(previous, DRIFT).map(|c| {
        let status = match c.status.as_str() {
            TRUE => TRUE,
            FALSE => FALSE,
            _ => UNKNOWN,
        };
        (
            verdict(status, &c.reason, c.message.clone()),
            previous.drift.clone(),
        )
    });
    let short = |r: &DriftReading| r.partial && r.samples < min_samples(spec);
    match (reading, kept) {
        (Some(r), Some(kept)) if short(r) => kept,
        (Some(r), _) => (drift_condition(spec, r), Some(drift_status(spec, r))),
        (None, Some(kept)) => kept,
        (None, None) => (
            verdict(
                UNKNOWN,
                reason::NOT_ENOUGH_SAMPLES,
                format!(
                    "0 of {} samples in the last {}",
                    spec.min_samples,
                    window(spec)
                ),
            ),
            None,
        ),
    }
}

fn min_samples(spec: &DriftSpec) -> u64 {
    u64::try_from(spec.min_samples).unwrap_or(0)
}

/// `10m`, `1h 30m`: the window as humans write it.
fn window(spec: &DriftSpec) -> String {
    humantime::format_duration(spec.window()).to_string()
}

/// What the condition says of `reading`.
fn drift_condition(spec: &DriftSpec, reading: &DriftReading) -> Verdict {
    let samples = format!("{} samples in the last {}", reading.samples, window(spec));
    let values = match &reading.found {
        Found::NoSignals => {
            return verdict(
                UNKNOWN,
                reason::NO_SIGNALS,
                "the pods export no drift signals",
            );
        }
        Found::Unreadable(pods) => {
            return verdict(
                UNKNOWN,
                reason::SIGNALS_UNREADABLE,
                format!(
                    "the drift signals of {pods} pod{} could not be read",
                    if *pods == 1 { "" } else { "s" }
                ),
            );
        }
        Found::NoReference => {
            return verdict(
                UNKNOWN,
                reason::NO_REFERENCE,
                "the model file has no reference: retrain with predictor ≥ 0.3",
            );
        }
        _ if reading.samples < min_samples(spec) => {
            return verdict(
                UNKNOWN,
                reason::NOT_ENOUGH_SAMPLES,
                format!(
                    "{} of {} samples in the last {}",
                    reading.samples,
                    spec.min_samples,
                    window(spec)
                ),
            );
        }
        Found::NoPods => {
            return verdict(UNKNOWN, reason::NOT_ENOUGH_SAMPLES, samples);
        }
        Found::Measured(values) => values,
    };
    let over: Vec<String> = values
        .iter()
        .filter_map(|(s, v)| {
            let (v, t) = ((*v)?, spec.thresholds.of(*s));
            (v > t).then(|| format!("{} PSI {v:.2} > {t}", s.name()))
        })
        .collect();
    if over.is_empty() {
        let all: Vec<String> = values
            .iter()
            .map(|(s, v)| match v {
                Some(v) => format!("{} PSI {v:.2}", s.name()),
                None => format!("{} PSI ?", s.name()),
            })
            .collect();
        verdict(
            FALSE,
            reason::WITHIN_THRESHOLDS,
            format!("{} ({samples})", all.join(", ")),
        )
    } else {
        verdict(
            TRUE,
            reason::DRIFTED,
            format!("{} ({samples})", over.join(", ")),
        )
    }
}

/// `status.drift` of `reading`: PSI rounded to 3 decimals, so that noise below that writes nothing.
fn drift_status(spec: &DriftSpec, reading: &DriftReading) -> DriftStatus {
    let psi = match &reading.found {
        Found::Measured(values) if reading.samples >= min_samples(spec) => {
            let of = |signal: Signal| {
                values
                    .iter()
                    .find(|(s, _)| *s == signal)
                    .and_then(|(_, v)| *v)
                    .map_or(0.0, |v| (v * 1000.0).round() / 1000.0)
            };
            Some(DriftPsi {
                probability: of(Signal::Probability),
                known: of(Signal::Known),
                length: of(Signal::Length),
                positive: of(Signal::Positive),
            })
        }
        _ => None,
    };
    DriftStatus {
        samples: i64::try_from(reading.samples).unwrap_or(i64::MAX),
        window_seconds: spec.window_seconds,
        psi,
        measured_at: Some(reading.at.clone()),
    }
}

/// When `new` differs from `old` only in drift's figures (samples, PSI, the Drift message, when
/// measured; not the condition's status or reason) and `old`'s were measured less than `every`
/// before `now`: how long until they are worth a write. The Drift condition's verdict is written
/// at once; its figures at most once per `every`, so a steady stream of answers does not cost a
/// status write per reading.
pub fn defer_drift(
    old: &PredictorStatus,
    new: &PredictorStatus,
    now: Timestamp,
    every: Duration,
) -> Option<Duration> {
    let measured = old.drift.as_ref()?.measured_at.as_ref()?;
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
    if let Some(d) = s.drift.as_mut() {
        *d = DriftStatus {
            window_seconds: d.window_seconds,
            psi: d.psi.as_ref().map(|_| DriftPsi::default()),
            ..DriftStatus::default()
        };
    }
    for c in s.conditions.iter_mut().filter(|c| c.type_ == DRIFT) {
        c.message.clear();
    }
    s
}
