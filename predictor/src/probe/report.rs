//! What a probe saw, from its samples: when each release first and last answered, the switch-over, failed
//! requests, the longest gap between answers and the latency ([`summarize`], pure), and that report as
//! markdown ([`render_markdown`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Load, Sample};
use crate::client::Percentiles;

/// When one release (version, and model when the answers name it) was seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionSpan {
    pub version: String,
    pub first_ms: f64,
    pub last_ms: f64,
    pub answers: u64,
}

/// What the probe found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub started_at: String,
    pub requests: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    /// In order of first appearance.
    pub versions: Vec<VersionSpan>,
    /// From the first answer of the last version to the last answer of any other version (0 if only one).
    pub switch_over_ms: Option<f64>,
    /// Longest time between two consecutive successful answers (by send time).
    pub longest_gap_ms: f64,
    pub latency_ms: Percentiles,
    pub duration_ms: f64,
    /// Time between requests at the start (1000 / the base rate).
    pub interval_ms: f64,
    /// How the rate rose, when it did.
    pub ramp: Option<RampReport>,
    /// Requests sent in the busiest whole second of the run (second k is [k, k+1) s after the start): the
    /// highest rate reached, in requests/s.
    pub peak_requests_per_second: u64,
}

/// A ramp's configuration, as [`ProbeReport`] states it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RampReport {
    /// Requests/s at the end of the ramp and after it.
    pub peak_rate: f64,
    pub duration_ms: f64,
}

/// Pure: the report of a list of samples (in send order) sent as `load` scheduled them.
pub fn summarize(samples: &[Sample], started_at: &str, load: &Load) -> ProbeReport {
    let mut versions: Vec<VersionSpan> = Vec::new();
    let mut failures = BTreeMap::new();
    let mut latencies = Vec::new();
    let (mut previous_ok, mut longest_gap_ms) = (None::<f64>, 0.0f64);
    for sample in samples {
        match (sample.release(), &sample.failure) {
            (Some(version), None) => {
                match versions.iter_mut().find(|v| v.version == version) {
                    Some(span) => {
                        span.first_ms = span.first_ms.min(sample.sent_ms);
                        span.last_ms = span.last_ms.max(sample.sent_ms);
                        span.answers += 1;
                    }
                    None => versions.push(VersionSpan {
                        version,
                        first_ms: sample.sent_ms,
                        last_ms: sample.sent_ms,
                        answers: 1,
                    }),
                }
                if let Some(previous) = previous_ok {
                    longest_gap_ms = longest_gap_ms.max(sample.sent_ms - previous);
                }
                previous_ok = Some(sample.sent_ms);
                latencies.push(Duration::from_secs_f64(sample.latency_ms / 1e3));
            }
            _ => {
                let kind = sample
                    .failure
                    .clone()
                    .unwrap_or_else(|| "no version in answer".into());
                *failures.entry(kind).or_insert(0u64) += 1;
            }
        }
    }
    let switch_over_ms = versions.last().map(|newest| {
        let old_last = versions[..versions.len() - 1]
            .iter()
            .map(|v| v.last_ms)
            .fold(f64::NEG_INFINITY, f64::max);
        if old_last.is_finite() {
            (old_last - newest.first_ms).max(0.0)
        } else {
            0.0
        }
    });
    let duration_ms = samples.last().map_or(0.0, |s| s.sent_ms + s.latency_ms);
    let mut per_second = BTreeMap::<u64, u64>::new();
    for sample in samples {
        *per_second.entry((sample.sent_ms / 1e3) as u64).or_default() += 1;
    }
    ProbeReport {
        started_at: started_at.to_string(),
        requests: samples.len() as u64,
        failed: failures.values().sum(),
        failures,
        versions,
        switch_over_ms,
        longest_gap_ms,
        latency_ms: Percentiles::of(&mut latencies),
        duration_ms,
        interval_ms: 1e3 / load.base_rate,
        ramp: load.is_ramp().then_some(RampReport {
            peak_rate: load.peak_rate,
            duration_ms: load.ramp.as_secs_f64() * 1e3,
        }),
        peak_requests_per_second: per_second.into_values().max().unwrap_or(0),
    }
}

/// The report as markdown: a table per version, then the figures.
pub fn render_markdown(report: &ProbeReport, url: &str) -> String {
    let mut load = if report.interval_ms >= 1.0 {
        format!("one request every {:.0} ms", report.interval_ms)
    } else {
        format!("{:.0} requests/s", 1e3 / report.interval_ms)
    };
    if let Some(ramp) = &report.ramp {
        load.push_str(&format!(
            ", then linearly to {:.0} requests/s over {:.1} s",
            ramp.peak_rate,
            ramp.duration_ms / 1e3
        ));
    }
    let mut out = format!(
        "## Rollout probe of {url}\n\nStarted {} · {load} · {} requests over {:.1} s\n\n",
        report.started_at,
        report.requests,
        report.duration_ms / 1e3
    );
    out.push_str("| version | first answer (s) | last answer (s) | answers |\n|---|---|---|---|\n");
    for v in &report.versions {
        out.push_str(&format!(
            "| {} | {:.3} | {:.3} | {} |\n",
            v.version,
            v.first_ms / 1e3,
            v.last_ms / 1e3,
            v.answers
        ));
    }
    let failures = if report.failures.is_empty() {
        "none".to_string()
    } else {
        report
            .failures
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!(
        "\n| figure | value |\n|---|---|\n| failed requests | {} ({failures}) |\n| switch-over (first new answer → last old answer) | {} |\n| longest gap between answers | {:.0} ms |\n| latency p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |\n| requests in the busiest second | {} |\n",
        report.failed,
        report.switch_over_ms.map_or("-".into(), |ms| format!("{:.3} s", ms / 1e3)),
        report.longest_gap_ms,
        report.latency_ms.p50,
        report.latency_ms.p99,
        report.latency_ms.max,
        report.peak_requests_per_second,
    ));
    out
}
