//! The Drift condition and `status.drift`, from the last drift reading ([`DriftReading`]) and the
//! thresholds of `spec.monitoring.drift`; and when new drift figures alone can wait for a write
//! ([`defer_drift`]). Drift never touches Ready, Progressing or Degraded.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
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

/// `psi`, over `threshold`, with two decimals, or as many more (up to 4) as it takes not to read as
/// the threshold itself ("0.25 > 0.25" for 0.2503).
fn over(psi: f64, threshold: f64) -> String {
    (2..=4)
        .map(|decimals| format!("{psi:.decimals$}"))
        .find(|text| text.parse::<f64>().is_ok_and(|shown| shown > threshold))
        .unwrap_or_else(|| psi.to_string())
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
            (v > t).then(|| format!("{} PSI {} > {t}", s.name(), over(v, t)))
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
    super::throttle::time_left(measured.0, now, every)
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_value_over_its_threshold_never_reads_as_the_threshold() {
        assert_eq!(over(0.372, 0.25), "0.37");
        assert_eq!(over(0.2503, 0.25), "0.2503");
        assert_eq!(over(0.251, 0.25), "0.251");
        assert_eq!(over(0.250_000_01, 0.25), "0.25000001");
    }
    use crate::crd::{DriftThresholds, MonitoringSpec, Predictor};
    use crate::fixtures::{deployment_of, observed, predictor, time};
    use crate::status::{READY, StatusEvent, compute_status, status_events};

    fn drifting(spec: DriftSpec) -> Predictor {
        let mut p = predictor("american", "team-a");
        p.spec.monitoring = Some(MonitoringSpec { drift: Some(spec) });
        p
    }

    fn reading(samples: u64, found: Found) -> DriftReading {
        DriftReading {
            samples,
            found,
            partial: false,
            at: time(30),
        }
    }

    fn measured(values: [f64; 4]) -> Found {
        Found::Measured(
            Signal::ALL
                .into_iter()
                .zip(values)
                .map(|(s, v)| (s, Some(v)))
                .collect(),
        )
    }

    /// The Drift condition and `status.drift` of `p` after `reading`, as JSON.
    fn drift_of_status(p: &Predictor, reading: Option<DriftReading>) -> serde_json::Value {
        let d = deployment_of(p).rolled_out(2);
        let o = crate::status::Observed {
            drift: reading,
            ..observed(Some(&d))
        };
        let s = compute_status(p, &o, &time(40));
        json!({
            "condition": find_condition(&s, DRIFT),
            "drift": s.drift,
        })
    }

    fn expected(
        status: &str,
        reason: &str,
        message: &str,
        drift: serde_json::Value,
    ) -> serde_json::Value {
        json!({
            "condition": {
                "type": "Drift",
                "status": status,
                "reason": reason,
                "message": message,
                "observedGeneration": 1,
                "lastTransitionTime": "2026-11-25T10:00:40Z",
            },
            "drift": drift,
        })
    }

    #[test]
    fn every_reason_of_the_drift_condition() {
        let p = drifting(DriftSpec::default());
        let figures = |samples: i64, psi: serde_json::Value| {
            let mut d = json!({"samples": samples, "windowSeconds": 600,
                "measuredAt": "2026-11-25T10:00:30Z"});
            if !psi.is_null() {
                d["psi"] = psi;
            }
            d
        };
        let cases = [
            (
                reading(812, measured([0.031, 0.4149, 0.02, 0.3])),
                expected(
                    "True",
                    "Drifted",
                    "known PSI 0.41 > 0.25, positive PSI 0.30 > 0.25 (812 samples in the last 10m)",
                    figures(
                        812,
                        json!({"probability": 0.031, "known": 0.415, "length": 0.02, "positive": 0.3}),
                    ),
                ),
            ),
            (
                reading(812, measured([0.031, 0.1, 0.02, 0.25])),
                expected(
                    "False",
                    "WithinThresholds",
                    "probability PSI 0.03, known PSI 0.10, length PSI 0.02, positive PSI 0.25 (812 samples in the last 10m)",
                    figures(
                        812,
                        json!({"probability": 0.031, "known": 0.1, "length": 0.02, "positive": 0.25}),
                    ),
                ),
            ),
            (
                reading(120, measured([3.0, 3.0, 3.0, 3.0])),
                expected(
                    "Unknown",
                    "NotEnoughSamples",
                    "120 of 500 samples in the last 10m",
                    figures(120, json!(null)),
                ),
            ),
            (
                reading(0, Found::NoPods),
                expected(
                    "Unknown",
                    "NotEnoughSamples",
                    "0 of 500 samples in the last 10m",
                    figures(0, json!(null)),
                ),
            ),
            (
                reading(900, Found::NoReference),
                expected(
                    "Unknown",
                    "NoReference",
                    "the model file has no reference: retrain with predictor ≥ 0.3",
                    figures(900, json!(null)),
                ),
            ),
            (
                reading(0, Found::NoSignals),
                expected(
                    "Unknown",
                    "NoSignals",
                    "the pods export no drift signals",
                    figures(0, json!(null)),
                ),
            ),
            (
                reading(0, Found::Unreadable(2)),
                expected(
                    "Unknown",
                    "SignalsUnreadable",
                    "the drift signals of 2 pods could not be read",
                    figures(0, json!(null)),
                ),
            ),
        ];
        for (r, want) in cases {
            assert_eq!(drift_of_status(&p, Some(r.clone())), want, "{r:?}");
        }
        // Its own thresholds and window.
        let strict = drifting(DriftSpec {
            thresholds: DriftThresholds {
                length: 0.01,
                ..DriftThresholds::default()
            },
            window_seconds: 5400,
            min_samples: 20,
        });
        let got = drift_of_status(&strict, Some(reading(30, measured([0.0, 0.0, 0.02, 0.0]))));
        assert_eq!(
            got["condition"]["message"],
            "length PSI 0.02 > 0.01 (30 samples in the last 1h 30m)"
        );
    }

    #[test]
    fn without_spec_monitoring_drift_there_is_no_drift_at_all() {
        let p = predictor("american", "team-a");
        let got = drift_of_status(&p, Some(reading(812, measured([9.0; 4]))));
        assert_eq!(got, json!({"condition": null, "drift": null}));
        // `{}` turns it on, with every default.
        let on: DriftSpec = serde_json::from_value(json!({})).unwrap();
        assert_eq!(on, DriftSpec::default());
        assert_eq!(
            (on.window_seconds, on.min_samples, on.thresholds.known),
            (600, 500, 0.25)
        );
        // And drift never bears on Ready.
        let d = deployment_of(&p).rolled_out(2);
        let quiet = compute_status(&p, &observed(Some(&d)), &time(40));
        let drifted = drifting(DriftSpec::default());
        let o = crate::status::Observed {
            drift: Some(reading(812, measured([9.0; 4]))),
            ..observed(Some(&d))
        };
        let loud = compute_status(&drifted, &o, &time(40));
        let others = |s: &PredictorStatus| {
            s.conditions
                .iter()
                .filter(|c| c.type_ != DRIFT)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(others(&quiet), others(&loud));
    }

    #[test]
    fn a_verdict_stands_until_a_whole_window_says_otherwise() {
        let mut p = drifting(DriftSpec::default());
        let d = deployment_of(&p).rolled_out(2);
        let status_after = |p: &Predictor, r: Option<DriftReading>| {
            let o = crate::status::Observed {
                drift: r,
                ..observed(Some(&d))
            };
            compute_status(p, &o, &time(40))
        };
        let drifted = status_after(&p, Some(reading(812, measured([0.0, 0.5, 0.0, 0.0]))));
        p.status = Some(drifted.clone());
        // The operator restarted: a short history of few answers, or no reading yet.
        let restarted = DriftReading {
            partial: true,
            ..reading(40, measured([0.0; 4]))
        };
        assert_eq!(status_after(&p, Some(restarted)), drifted);
        assert_eq!(status_after(&p, None), drifted);
        // A whole window of few answers (traffic stopped) does say so.
        let quiet = status_after(&p, Some(reading(40, measured([0.0; 4]))));
        assert_eq!(
            find_condition(&quiet, DRIFT).map(|c| c.reason.as_str()),
            Some("NotEnoughSamples")
        );
    }

    #[test]
    fn an_event_on_each_change_of_the_verdict_only() {
        let mut p = drifting(DriftSpec::default());
        let d = deployment_of(&p).rolled_out(2);
        let mut status_after = |r: DriftReading| {
            let o = crate::status::Observed {
                drift: Some(r),
                ..observed(Some(&d))
            };
            let s = compute_status(&p, &o, &time(40));
            let old = p.status.replace(s.clone()).unwrap_or_default();
            status_events(&old, &s)
        };
        let event = |warning: bool, reason: &str, note: &str| StatusEvent {
            warning,
            reason: reason.into(),
            note: note.into(),
        };
        // The first verdict, not drift: the status tells it (no Event per Predictor created).
        assert_eq!(status_after(reading(10, measured([0.0; 4]))), []);
        assert_eq!(
            status_after(reading(600, measured([0.0; 4]))),
            [event(
                false,
                "WithinThresholds",
                "drift: probability PSI 0.00, known PSI 0.00, length PSI 0.00, positive PSI 0.00 (600 samples in the last 10m)"
            )]
        );
        // New figures, same verdict: no Event.
        assert_eq!(status_after(reading(700, measured([0.01; 4]))), []);
        assert_eq!(
            status_after(reading(700, measured([0.0, 0.41, 0.0, 0.0]))),
            [event(
                true,
                "Drifted",
                "drift: known PSI 0.41 > 0.25 (700 samples in the last 10m)"
            )]
        );
        assert_eq!(
            status_after(reading(800, measured([0.0, 0.5, 0.0, 0.0]))),
            []
        );
        assert_eq!(
            status_after(reading(0, Found::NoSignals)),
            [event(
                false,
                "NoSignals",
                "drift: the pods export no drift signals"
            )]
        );
        // A Predictor whose first verdict is drift: a Warning.
        let mut fresh = drifting(DriftSpec::default());
        fresh.status = None;
        let o = crate::status::Observed {
            drift: Some(reading(700, measured([0.0, 0.41, 0.0, 0.0]))),
            ..observed(Some(&d))
        };
        let s = compute_status(&fresh, &o, &time(40));
        let events = status_events(&PredictorStatus::default(), &s);
        assert_eq!(events.len(), 1);
        assert!(events[0].warning);
        assert!(find_condition(&s, READY).is_some());
    }

    #[test]
    fn new_figures_alone_wait_for_the_next_window_a_new_verdict_does_not() {
        let mut p = drifting(DriftSpec::default());
        let d = deployment_of(&p).rolled_out(2);
        let at = |p: &Predictor, r: DriftReading, now: i64| {
            let o = crate::status::Observed {
                drift: Some(r),
                ..observed(Some(&d))
            };
            compute_status(p, &o, &time(now))
        };
        let every = Duration::from_secs(600);
        let old = at(&p, reading(600, measured([0.01; 4])), 40);
        p.status = Some(old.clone());
        let mut later = reading(900, measured([0.02; 4]));
        later.at = time(90);
        let newer = at(&p, later, 90);
        assert_ne!(old, newer);
        // Measured at 30 s: the figures of 90 s wait until 630 s.
        assert_eq!(
            defer_drift(&old, &newer, time(90).0, every),
            Some(Duration::from_secs(540))
        );
        assert_eq!(defer_drift(&old, &newer, time(630).0, every), None);
        // Drifted: at once.
        let mut drifted = reading(900, measured([0.0, 0.9, 0.0, 0.0]));
        drifted.at = time(90);
        assert_eq!(
            defer_drift(&old, &at(&p, drifted, 90), time(90).0, every),
            None
        );
    }
}
