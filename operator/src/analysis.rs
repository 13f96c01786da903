//! The canary analysis verdict: from what the stable and the candidate pods counted, whether the
//! candidate passes, fails or needs more samples. Pure: counters in, verdict out.
//!
//! The samples are the candidate's prediction requests (its live share and the shadow copies it
//! answered). Below `minSamples` the verdict is always `Waiting`, at the deadline too: a candidate
//! is never promoted, or rolled back, on too little evidence.

use std::time::Duration;

use crate::crd::{AnalysisSpec, Measured};

/// Latency histogram buckets summed over pods: `(upper bound in seconds, cumulative count)`, in
/// increasing order, `+Inf` last (the Prometheus convention).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    /// Adds `other`'s counts bucket by bucket (pods of one build share their buckets; a bucket
    /// only one side has is kept as it is).
    pub fn merge(&mut self, other: &Histogram) {
        for &(bound, count) in &other.buckets {
            match self.buckets.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, c)) => *c += count,
                None => self.buckets.push((bound, count)),
            }
        }
        self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }

    /// Observations counted (the `+Inf` bucket).
    pub fn count(&self) -> u64 {
        self.buckets.last().map_or(0, |&(_, c)| c)
    }

    /// The `q`-quantile (0 < q ≤ 1) as Prometheus' `histogram_quantile` estimates it: linear
    /// interpolation inside the bucket where the rank falls; the highest finite bound when it
    /// falls in `+Inf`. `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut lower = (0.0, 0u64);
        for &(bound, cumulative) in &self.buckets {
            if cumulative as f64 >= rank {
                if bound.is_infinite() {
                    return Some(lower.0);
                }
                let in_bucket = (cumulative - lower.1) as f64;
                let into = if in_bucket == 0.0 {
                    1.0
                } else {
                    (rank - lower.1 as f64) / in_bucket
                };
                return Some(lower.0 + (bound - lower.0) * into);
            }
            lower = (bound, cumulative);
        }
        Some(lower.0)
    }
}

/// What one side (the stable pods, or the canary pods) counted, summed over its pods.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    /// `POST /api/american` requests answered, whatever the status.
    pub requests: u64,
    /// Of those, the failed ones (5xx, and 408: the server's own timeout).
    pub errors: u64,
    /// Server-side latency of those requests.
    pub latency: Histogram,
    /// Stable side only: shadow copies whose answer from the candidate matched the live answer.
    pub agreed: u64,
    /// Stable side only: shadow copies whose answer from the candidate differed.
    pub disagreed: u64,
}

impl Samples {
    /// Adds another pod's counters.
    pub fn merge(&mut self, other: &Samples) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
        self.agreed += other.agreed;
        self.disagreed += other.disagreed;
    }

    fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }
}

/// CamelCase reasons of the verdicts (they reach `status.rollout.reason` and Events).
pub mod reason {
    /// Fewer than `minSamples` so far (or nothing to compare latency with yet).
    pub const WAITING_FOR_SAMPLES: &str = "WaitingForSamples";
    /// The candidate met every threshold.
    pub const ANALYSIS_PASSED: &str = "AnalysisPassed";
    /// The candidate disagreed with the stable model too often.
    pub const DISAGREEMENT_TOO_HIGH: &str = "DisagreementTooHigh";
    /// Too many of the candidate's requests failed.
    pub const ERROR_RATE_TOO_HIGH: &str = "ErrorRateTooHigh";
    /// The candidate's p99 latency is too high compared with the stable pods'.
    pub const LATENCY_TOO_HIGH: &str = "LatencyTooHigh";
}

/// What the analysis concludes.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Every threshold met on at least `minSamples`: promote.
    Pass { measured: Measured, message: String },
    /// A threshold missed on at least `minSamples`: roll back. `reason` names the first missed.
    Fail {
        reason: &'static str,
        measured: Measured,
        message: String,
    },
    /// Not enough evidence yet: keep the canary and look again.
    Waiting { measured: Measured, message: String },
}

impl Verdict {
    /// The CamelCase reason of this verdict.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Pass { .. } => reason::ANALYSIS_PASSED,
            Self::Fail { reason, .. } => reason,
            Self::Waiting { .. } => reason::WAITING_FOR_SAMPLES,
        }
    }

    /// The human message: figures and thresholds, or what the analysis waits for.
    pub fn message(&self) -> &str {
        match self {
            Self::Pass { message, .. } | Self::Fail { message, .. } => message,
            Self::Waiting { message, .. } => message,
        }
    }

    /// The figures behind the verdict.
    pub fn measured(&self) -> &Measured {
        match self {
            Self::Pass { measured, .. } | Self::Fail { measured, .. } => measured,
            Self::Waiting { measured, .. } => measured,
        }
    }
}

/// The p99 the latency check compares.
const QUANTILE: f64 = 0.99;

/// Judges the candidate on `spec`'s thresholds, `elapsed` after its analysis started.
pub fn judge(
    spec: &AnalysisSpec,
    stable: &Samples,
    candidate: &Samples,
    elapsed: Duration,
) -> Verdict {
    let compared = candidate_compared(stable);
    let p99 = candidate
        .latency
        .quantile(QUANTILE)
        .zip(stable.latency.quantile(QUANTILE));
    let measured = Measured {
        samples: candidate.requests as i64,
        min_samples: spec.min_samples,
        compared: compared as i64,
        disagreement: (compared > 0).then(|| stable.disagreed as f64 / compared as f64),
        error_rate: candidate.error_rate(),
        stable_error_rate: stable.error_rate(),
        p99_latency_ratio: p99.and_then(|(c, s)| (s > 0.0).then(|| c / s)),
    };

    let deadline = Duration::from_secs(u64::try_from(spec.deadline_seconds).unwrap_or(0));
    let waiting = |what: String| {
        let mut message = format!(
            "waiting: {} of {} samples{what}",
            measured.samples, spec.min_samples
        );
        if elapsed >= deadline {
            message.push_str(&format!(
                "; the analysis deadline of {} s has passed, but a candidate is never promoted \
                 on fewer samples: send traffic, or change spec.rollout.analysis",
                spec.deadline_seconds
            ));
        }
        Verdict::Waiting {
            measured: measured.clone(),
            message,
        }
    };
    if measured.samples < spec.min_samples {
        return waiting(String::new());
    }
    // Enough samples, but a threshold that cannot be measured yet is not a pass.
    if spec.max_disagreement.is_some() && compared == 0 {
        return waiting(" (no shadow copy compared yet)".into());
    }
    if spec.max_p99_latency_ratio.is_some() && measured.p99_latency_ratio.is_none() {
        return waiting(" (no stable latency to compare with yet)".into());
    }

    let checks = [
        (
            reason::DISAGREEMENT_TOO_HIGH,
            measured.disagreement,
            spec.max_disagreement,
        ),
        (
            reason::ERROR_RATE_TOO_HIGH,
            measured.error_rate,
            spec.max_error_rate,
        ),
        (
            reason::LATENCY_TOO_HIGH,
            measured.p99_latency_ratio,
            spec.max_p99_latency_ratio,
        ),
    ];
    let failed = checks.iter().find_map(|&(reason, value, limit)| {
        matches!((value, limit), (Some(v), Some(l)) if v > l).then_some(reason)
    });
    let figures = figures(spec, &measured);
    match failed {
        Some(reason) => Verdict::Fail {
            reason,
            message: format!("candidate failed the analysis on {figures}"),
            measured,
        },
        None => Verdict::Pass {
            message: format!("candidate passed the analysis on {figures}"),
            measured,
        },
    }
}

/// Shadow copies compared on the stable side.
fn candidate_compared(stable: &Samples) -> u64 {
    stable.agreed + stable.disagreed
}

/// `N samples: disagreement … (maxDisagreement …), error rate … (…), p99 latency … (…)`: every
/// measured figure with its threshold (`not checked` when the spec sets none).
pub fn figures(spec: &AnalysisSpec, m: &Measured) -> String {
    let limit = |l: Option<f64>, name: &str, digits: usize| match l {
        Some(l) => format!("{name} {l:.digits$}"),
        None => format!("{name} not checked"),
    };
    let value = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:.digits$}"),
        None => "n/a".to_string(),
    };
    format!(
        "{} samples: disagreement {} on {} compared predictions ({}), error rate {} against \
         stable {} ({}), p99 latency {}× stable ({})",
        m.samples,
        value(m.disagreement, 4),
        m.compared,
        limit(spec.max_disagreement, "maxDisagreement", 4),
        value(m.error_rate, 4),
        value(m.stable_error_rate, 4),
        limit(spec.max_error_rate, "maxErrorRate", 4),
        value(m.p99_latency_ratio, 2),
        limit(spec.max_p99_latency_ratio, "maxP99LatencyRatio", 2),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AnalysisSpec {
        AnalysisSpec {
            min_samples: 100,
            max_disagreement: Some(0.05),
            max_error_rate: Some(0.01),
            max_p99_latency_ratio: Some(1.5),
            deadline_seconds: 600,
        }
    }

    /// `n` observations in the bucket ending at `bound` (of the predictor's buckets).
    fn latency(observations: &[(f64, u64)]) -> Histogram {
        let bounds = [0.001, 0.0025, 0.005, 0.01, f64::INFINITY];
        let mut cumulative = 0;
        Histogram {
            buckets: bounds
                .iter()
                .map(|&b| {
                    cumulative += observations
                        .iter()
                        .filter(|(o, _)| *o == b)
                        .map(|(_, n)| n)
                        .sum::<u64>();
                    (b, cumulative)
                })
                .collect(),
        }
    }

    fn stable() -> Samples {
        Samples {
            requests: 1000,
            errors: 0,
            latency: latency(&[(0.001, 1000)]),
            agreed: 195,
            disagreed: 5,
        }
    }

    fn candidate(requests: u64) -> Samples {
        Samples {
            requests,
            errors: 0,
            latency: latency(&[(0.001, requests)]),
            ..Samples::default()
        }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        let h = latency(&[(0.001, 90), (0.005, 10)]);
        // Rank 99 of 100 falls in (0.0025, 0.005], 9 of its 10 observations in.
        assert!((h.quantile(0.99).unwrap() - 0.00475).abs() < 1e-12);
        assert!((h.quantile(0.5).unwrap() - 0.0005555555555555556).abs() < 1e-12);
        // Beyond the last finite bound: that bound.
        assert_eq!(latency(&[(f64::INFINITY, 3)]).quantile(0.99), Some(0.01));
        assert_eq!(Histogram::default().quantile(0.99), None);
        // Pods merge bucket by bucket.
        let mut sum = latency(&[(0.001, 1)]);
        sum.merge(&latency(&[(0.01, 2)]));
        assert_eq!(sum, latency(&[(0.001, 1), (0.01, 2)]));
    }

    #[test]
    fn below_min_samples_it_waits_even_past_the_deadline() {
        let Verdict::Waiting {
            mut measured,
            message,
        } = judge(&spec(), &stable(), &candidate(12), MINUTE)
        else {
            panic!("not waiting")
        };
        // Same buckets on both sides: a ratio of 1 up to rounding.
        let ratio = measured.p99_latency_ratio.take().unwrap();
        assert!((ratio - 1.0).abs() < 1e-9, "{ratio}");
        assert_eq!(message, "waiting: 12 of 100 samples");
        assert_eq!(
            measured,
            Measured {
                samples: 12,
                min_samples: 100,
                compared: 200,
                disagreement: Some(0.025),
                error_rate: Some(0.0),
                stable_error_rate: Some(0.0),
                p99_latency_ratio: None,
            }
        );
        let late = judge(&spec(), &stable(), &candidate(12), 10 * MINUTE);
        assert_eq!(late.reason(), reason::WAITING_FOR_SAMPLES);
        assert_eq!(
            late.message(),
            "waiting: 12 of 100 samples; the analysis deadline of 600 s has passed, but a \
             candidate is never promoted on fewer samples: send traffic, or change \
             spec.rollout.analysis"
        );
        // No traffic at all: still waiting, never a pass.
        let idle = judge(&spec(), &Samples::default(), &Samples::default(), MINUTE);
        assert_eq!(idle.message(), "waiting: 0 of 100 samples");
        // A candidate that fails every request is not rolled back on 3 samples either.
        let few = Samples {
            errors: 3,
            ..candidate(3)
        };
        assert_eq!(
            judge(&spec(), &stable(), &few, MINUTE).reason(),
            reason::WAITING_FOR_SAMPLES
        );
    }

    #[test]
    fn enough_good_samples_pass_with_every_figure_in_the_message() {
        let v = judge(&spec(), &stable(), &candidate(150), MINUTE);
        assert_eq!(
            v.message(),
            "candidate passed the analysis on 150 samples: disagreement 0.0250 on 200 compared \
             predictions (maxDisagreement 0.0500), error rate 0.0000 against stable 0.0000 \
             (maxErrorRate 0.0100), p99 latency 1.00× stable (maxP99LatencyRatio 1.50)"
        );
        assert!(matches!(v, Verdict::Pass { .. }));
    }

    #[test]
    fn each_threshold_fails_on_its_own_with_its_reason() {
        let mut disagreeing = stable();
        disagreeing.disagreed = 84;
        disagreeing.agreed = 116;
        let v = judge(&spec(), &disagreeing, &candidate(150), MINUTE);
        assert_eq!(v.reason(), reason::DISAGREEMENT_TOO_HIGH);
        assert_eq!(
            v.message(),
            "candidate failed the analysis on 150 samples: disagreement 0.4200 on 200 compared \
             predictions (maxDisagreement 0.0500), error rate 0.0000 against stable 0.0000 \
             (maxErrorRate 0.0100), p99 latency 1.00× stable (maxP99LatencyRatio 1.50)"
        );

        let failing = Samples {
            errors: 3,
            ..candidate(150)
        };
        let v = judge(&spec(), &stable(), &failing, MINUTE);
        assert_eq!(v.reason(), reason::ERROR_RATE_TOO_HIGH);
        assert_eq!(v.measured().error_rate, Some(0.02));

        let slow = Samples {
            latency: latency(&[(0.005, 150)]),
            ..candidate(150)
        };
        let v = judge(&spec(), &stable(), &slow, MINUTE);
        assert_eq!(v.reason(), reason::LATENCY_TOO_HIGH);
        // Candidate p99 0.004975 s against stable 0.00099 s.
        let ratio = v.measured().p99_latency_ratio.unwrap();
        assert!((ratio - 0.004975 / 0.00099).abs() < 1e-9, "{ratio}");
        assert!(
            v.message()
                .contains("p99 latency 5.03× stable (maxP99LatencyRatio 1.50)")
        );

        // At the threshold is a pass; an unset threshold is not checked.
        let mut lenient = spec();
        lenient.max_p99_latency_ratio = None;
        lenient.max_error_rate = Some(0.02);
        let both = Samples {
            errors: 3,
            latency: latency(&[(0.005, 150)]),
            ..candidate(150)
        };
        let v = judge(&lenient, &stable(), &both, MINUTE);
        assert!(matches!(v, Verdict::Pass { .. }), "{v:?}");
        assert!(v.message().contains("(maxP99LatencyRatio not checked)"));
    }

    #[test]
    fn a_threshold_that_cannot_be_measured_yet_keeps_it_waiting() {
        let no_copies = Samples {
            agreed: 0,
            disagreed: 0,
            ..stable()
        };
        assert_eq!(
            judge(&spec(), &no_copies, &candidate(150), MINUTE).message(),
            "waiting: 150 of 100 samples (no shadow copy compared yet)"
        );
        let no_stable_latency = Samples {
            latency: Histogram::default(),
            ..stable()
        };
        assert_eq!(
            judge(&spec(), &no_stable_latency, &candidate(150), MINUTE).message(),
            "waiting: 150 of 100 samples (no stable latency to compare with yet)"
        );
        // Without those thresholds the same figures pass.
        let mut errors_only = spec();
        errors_only.max_disagreement = None;
        errors_only.max_p99_latency_ratio = None;
        let v = judge(&errors_only, &no_copies, &candidate(150), MINUTE);
        assert!(matches!(v, Verdict::Pass { .. }), "{v:?}");
        assert!(v.message().contains("disagreement n/a on 0 compared"));
    }
}
