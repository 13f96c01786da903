//! The drift signals of one pod's `/metrics` answer (read by [`crate::scrape`]): the four live
//! histograms (`predictor_drift_<signal>`) and the model file's reference gauges
//! (`predictor_drift_reference{signal,le}`), each turned from cumulative counts per bound into a
//! [`Profile`] of counts per bin. Anything malformed or inconsistent is refused as a whole, never
//! guessed at: a pod runs an image its team chose, and its answer is only ever counted, never
//! quoted.

use predictor::drift::{Profile, REFERENCE_METRIC, Signal, live_metric};

use crate::scrape::parse_line;

/// What one pod's answer says of drift.
#[derive(Clone, Debug, PartialEq)]
pub enum PodSignals {
    /// No live drift histogram at all (a predictor older than the signals).
    None,
    /// The live answers so far (cumulative) and, when the model file has one, its reference.
    Read {
        live: Profile,
        reference: Option<Profile>,
    },
    /// Present but malformed: fixed wording of what was wrong (never the pod's text).
    Unreadable(&'static str),
}

/// Largest count believed: beyond 2^53 a float no longer holds every integer.
const MAX_COUNT: f64 = 9_007_199_254_740_992.0;

/// The cumulative counts of one signal, one slot per bound of [`Signal::bounds`].
struct Cumulative {
    counts: Vec<Option<u64>>,
    /// The histogram's `_count`, when given.
    total: Option<u64>,
    seen: bool,
}

impl Cumulative {
    fn new(signal: Signal) -> Self {
        Self {
            counts: vec![None; signal.bounds().len()],
            total: None,
            seen: false,
        }
    }

    /// Records the count at bound `le`; an unknown bound or a second value for one is refused.
    fn set(&mut self, signal: Signal, le: &str, count: u64) -> Result<(), &'static str> {
        self.seen = true;
        let bound = match le {
            "+Inf" => f64::INFINITY,
            le => le.parse().map_err(|_| "a bucket bound is not a number")?,
        };
        let slot = signal
            .bounds()
            .iter()
            .position(|b| *b == bound)
            .ok_or("a bucket bound is not one of the signal's bins")?;
        match &mut self.counts[slot] {
            Some(_) => Err("a bucket appears twice"),
            empty => {
                *empty = Some(count);
                Ok(())
            }
        }
    }

    /// Counts per bin (the differences of the cumulative counts), and their total; refused when
    /// a bound is missing, a count goes down, or `_count` disagrees with the `+Inf` bucket.
    fn bins(&self) -> Result<(Vec<u64>, u64), &'static str> {
        let mut bins = Vec::with_capacity(self.counts.len());
        let mut below = 0;
        for count in &self.counts {
            let count = count.ok_or("a bucket is missing")?;
            bins.push(
                count
                    .checked_sub(below)
                    .ok_or("the cumulative counts go down")?,
            );
            below = count;
        }
        if self.total.is_some_and(|t| t != below) {
            return Err("the count differs from the +Inf bucket");
        }
        Ok((bins, below))
    }
}

/// A sample value as a count: a finite, non-negative integer below 2^53.
fn count(value: f64) -> Result<u64, &'static str> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= MAX_COUNT {
        Ok(value as u64)
    } else {
        Err("a count is not a non-negative integer")
    }
}

/// Reads the drift signals of `text`. Lines of other metrics are skipped without being parsed.
pub fn parse(text: &str) -> PodSignals {
    match read(text) {
        Ok(signals) => signals,
        Err(why) => PodSignals::Unreadable(why),
    }
}

fn read(text: &str) -> Result<PodSignals, &'static str> {
    let mut live = Signal::ALL.map(Cumulative::new);
    let mut reference = Signal::ALL.map(Cumulative::new);
    let live_names = Signal::ALL.map(live_metric);
    for line in text.lines() {
        // Only the drift families are parsed (a cheap prefix test first).
        if !line.trim_start().starts_with("predictor_drift_") {
            continue;
        }
        let Some((name, labels, value)) = parse_line(line) else {
            continue;
        };
        let label = |key: &str| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if name == REFERENCE_METRIC {
            let signal = label("signal")
                .and_then(Signal::from_name)
                .ok_or("a reference sample names no known signal")?;
            let le = label("le").ok_or("a reference sample has no bound")?;
            reference[index(signal)].set(signal, le, count(value)?)?;
            continue;
        }
        for (i, family) in live_names.iter().enumerate() {
            let Some(suffix) = name.strip_prefix(family.as_str()) else {
                continue;
            };
            let signal = Signal::ALL[i];
            match suffix {
                "_bucket" => {
                    let le = label("le").ok_or("a bucket has no bound")?;
                    live[i].set(signal, le, count(value)?)?;
                }
                "_count" => {
                    if live[i].total.replace(count(value)?).is_some() {
                        return Err("a histogram has two counts");
                    }
                    live[i].seen = true;
                }
                _ => {}
            }
        }
    }
    if live.iter().all(|c| !c.seen) {
        return Ok(PodSignals::None);
    }
    let live = profile(&live, Rows::Least)?;
    let reference = if reference.iter().all(|c| !c.seen) {
        None
    } else {
        Some(profile(&reference, Rows::Same)?)
    };
    Ok(PodSignals::Read { live, reference })
}

/// How a profile's row count follows from its signals' totals.
enum Rows {
    /// The live histograms are four metrics read one after the other while answers come in: a
    /// total may be ahead of another by the answers in flight. The rows are the least.
    Least,
    /// The reference is fixed: every signal counts every row, or it is refused.
    Same,
}

fn profile(cumulative: &[Cumulative; 4], rows: Rows) -> Result<Profile, &'static str> {
    let mut profile = Profile::empty();
    let mut totals = Vec::with_capacity(4);
    for (signal, c) in Signal::ALL.into_iter().zip(cumulative) {
        let (bins, total) = c.bins()?;
        match signal {
            Signal::Probability => profile.probability = bins,
            Signal::Known => profile.known = bins,
            Signal::Length => profile.length = bins,
            Signal::Positive => profile.positive = bins,
        }
        totals.push(total);
    }
    let least = totals.iter().copied().min().unwrap_or(0);
    if matches!(rows, Rows::Same) && totals.iter().any(|t| *t != least) {
        return Err("the reference's signals count different rows");
    }
    profile.rows = least;
    Ok(profile)
}

fn index(signal: Signal) -> usize {
    Signal::ALL
        .iter()
        .position(|s| *s == signal)
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `le` as prometheus-client writes it: `0.1`, `10.0`, `+Inf`.
    fn le(bound: f64) -> String {
        if bound.is_infinite() {
            "+Inf".into()
        } else if bound.fract() == 0.0 {
            format!("{bound:.1}")
        } else {
            format!("{bound}")
        }
    }

    /// The `/metrics` text a predictor exports for the per-bin counts `live` (and `reference`),
    /// in the shape prometheus-client renders: a histogram per signal (`_sum`, `_count`, then the
    /// cumulative `_bucket`s, `+Inf` last) and a gauge family for the reference.
    pub(crate) fn exposition(live: &Profile, reference: Option<&Profile>) -> String {
        let mut text = String::from(
            "# HELP predictor_http_requests Requests\n# TYPE predictor_http_requests counter\n\
             predictor_http_requests_total{route=\"/api/american\",status=\"200\"} 7\n",
        );
        for signal in Signal::ALL {
            let name = live_metric(signal);
            let total: u64 = live.counts(signal).iter().sum();
            text += &format!(
                "# HELP {name} Drift signal.\n# TYPE {name} histogram\n{name}_sum 1.5\n{name}_count {total}\n"
            );
            let mut cumulative = 0;
            for (bound, n) in signal.bounds().iter().zip(live.counts(signal)) {
                cumulative += n;
                text += &format!("{name}_bucket{{le=\"{}\"}} {cumulative}\n", le(*bound));
            }
        }
        if let Some(reference) = reference {
            text +=
                &format!("# HELP {REFERENCE_METRIC} Reference.\n# TYPE {REFERENCE_METRIC} gauge\n");
            for signal in Signal::ALL {
                let mut cumulative = 0;
                for (bound, n) in signal.bounds().iter().zip(reference.counts(signal)) {
                    cumulative += n;
                    text += &format!(
                        "{REFERENCE_METRIC}{{signal=\"{}\",le=\"{}\"}} {cumulative}.0\n",
                        signal.name(),
                        le(*bound)
                    );
                }
            }
        }
        text + "# EOF\n"
    }

    /// A profile of `rows` answers spread over the bins as `shape` says (bin → weight).
    pub(crate) fn profile_of(rows: u64, shape: impl Fn(Signal, usize) -> u64) -> Profile {
        let mut p = Profile::empty();
        for signal in Signal::ALL {
            let weights: Vec<u64> = (0..signal.bounds().len())
                .map(|i| shape(signal, i))
                .collect();
            let sum: u64 = weights.iter().sum();
            let mut counts: Vec<u64> = weights.iter().map(|w| rows * w / sum).collect();
            let short = rows - counts.iter().sum::<u64>();
            let last = counts.len() - 1;
            counts[last] += short;
            match signal {
                Signal::Probability => p.probability = counts,
                Signal::Known => p.known = counts,
                Signal::Length => p.length = counts,
                Signal::Positive => p.positive = counts,
            }
        }
        p.rows = rows;
        p
    }

    fn even(rows: u64) -> Profile {
        profile_of(rows, |_, _| 1)
    }

    #[test]
    fn cumulative_buckets_read_back_as_counts_per_bin() {
        let live = profile_of(120, |_, i| i as u64 + 1);
        let reference = even(1000);
        let text = exposition(&live, Some(&reference));
        assert_eq!(
            parse(&text),
            PodSignals::Read {
                live: live.clone(),
                reference: Some(reference)
            }
        );
        // Worked by hand for one signal: weights 1..=2 of 120 rows over positive's two bins.
        assert_eq!(live.positive, [40, 80]);
        assert!(text.contains("predictor_drift_positive_bucket{le=\"0.0\"} 40\n"));
        assert!(text.contains("predictor_drift_positive_bucket{le=\"+Inf\"} 120\n"));
        // Format-1 model files have no reference.
        assert_eq!(
            parse(&exposition(&live, None)),
            PodSignals::Read {
                live,
                reference: None
            }
        );
        // An older predictor: no drift family at all.
        assert_eq!(
            parse("predictor_http_requests_total{route=\"/\"} 3\n# EOF\n"),
            PodSignals::None
        );
    }

    #[test]
    fn malformed_or_inconsistent_signals_are_unreadable() {
        let good = exposition(&even(100), Some(&even(50)));
        let edit = |from: &str, to: &str| {
            assert!(good.contains(from), "{from}");
            parse(&good.replacen(from, to, 1))
        };
        let cases = [
            (
                edit(
                    "predictor_drift_known_bucket{le=\"0.2\"} 20",
                    "predictor_drift_known_bucket{le=\"0.2\"} 5",
                ),
                "the cumulative counts go down",
            ),
            (
                edit(
                    "predictor_drift_known_count 100",
                    "predictor_drift_known_count 99",
                ),
                "the count differs from the +Inf bucket",
            ),
            (
                edit(
                    "predictor_drift_length_bucket{le=\"10.0\"}",
                    "predictor_drift_length_bucket{le=\"11.0\"}",
                ),
                "a bucket bound is not one of the signal's bins",
            ),
            (
                edit("predictor_drift_length_bucket{le=\"10.0\"} 10\n", ""),
                "a bucket is missing",
            ),
            (
                edit(
                    "predictor_drift_probability_bucket{le=\"0.1\"} 10",
                    "predictor_drift_probability_bucket{le=\"0.1\"} -1",
                ),
                "a count is not a non-negative integer",
            ),
            (
                edit(
                    "predictor_drift_probability_bucket{le=\"0.1\"} 10",
                    "predictor_drift_probability_bucket{le=\"0.1\"} 2.5",
                ),
                "a count is not a non-negative integer",
            ),
            (
                edit(
                    "predictor_drift_reference{signal=\"known\",le=\"+Inf\"} 50.0",
                    "predictor_drift_reference{signal=\"known\",le=\"+Inf\"} 51.0",
                ),
                "the reference's signals count different rows",
            ),
            (
                edit("signal=\"known\"", "signal=\"unknown\""),
                "a reference sample names no known signal",
            ),
        ];
        for (parsed, why) in cases {
            assert_eq!(parsed, PodSignals::Unreadable(why));
        }
        // A bucket repeated (say, a label the operator does not expect splitting the series).
        let twice = good.replacen(
            "predictor_drift_known_count 100\n",
            "predictor_drift_known_count 100\npredictor_drift_known_bucket{le=\"0.1\",worker=\"2\"} 1\n",
            1,
        );
        assert_eq!(
            parse(&twice),
            PodSignals::Unreadable("a bucket appears twice")
        );
        // Three of the four histograms: not guessed at.
        let without_length: String = good
            .lines()
            .filter(|l| !l.contains("predictor_drift_length"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            parse(&without_length),
            PodSignals::Unreadable("a bucket is missing")
        );
    }

    /// The biggest body the scrape lets through (4 MiB), made of drift lines that are each
    /// valid but could grow a parser's state: it is refused at the first unknown bound, and the
    /// state kept is the fixed slots of four signals whatever the body.
    #[test]
    fn a_hostile_body_within_the_limit_is_refused_without_growing() {
        let mut body = exposition(&even(10), None);
        let line = "predictor_drift_probability_bucket{le=\"0.123\"} 1\n";
        while body.len() + line.len() < crate::scrape::MAX_BYTES as usize {
            body += line;
        }
        assert_eq!(
            parse(&body),
            PodSignals::Unreadable("a bucket bound is not one of the signal's bins")
        );
        // Millions of other series (not drift's): skipped, and the signals still read.
        let mut noisy = String::new();
        while noisy.len() < (crate::scrape::MAX_BYTES as usize) / 2 {
            noisy += "other_metric{a=\"b\"} 1\n";
        }
        noisy += &exposition(&even(10), None);
        assert!(matches!(parse(&noisy), PodSignals::Read { .. }));
    }
}
