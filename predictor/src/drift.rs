//! Drift: is the model still asked the kind of question it was trained on? Fixed-bin profiles of
//! what a model was asked and answered (the training set's, kept in the model file as its reference,
//! and the live answers', exported by the server on `/metrics`), and their divergence (PSI).
//!
//! Every profile uses the same fixed bins ([`Signal::bounds`]), so profiles add up, and a window of
//! live answers is the difference of two cumulative profiles. `docs/drift.md` says what each signal
//! means for a text model and works an example of the math.

use serde::{Deserialize, Serialize};

/// What drift is measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// The predicted probability of the US class.
    Probability,
    /// The share of a text's n-grams that the vocabulary knows (0 for a text with none).
    Known,
    /// The text's length in characters.
    Length,
    /// The predicted class: a 2-bin distribution (not US, US), its positive share.
    Positive,
}

impl Signal {
    pub const ALL: [Signal; 4] = [
        Signal::Probability,
        Signal::Known,
        Signal::Length,
        Signal::Positive,
    ];

    /// Its name in the CRD (`spec.monitoring.drift.thresholds`), the status, metrics and messages.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Probability => "probability",
            Signal::Known => "known",
            Signal::Length => "length",
            Signal::Positive => "positive",
        }
    }

    pub fn from_name(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The bins' inclusive upper bounds, the last one open (`+Inf`): a value goes to the first bin
    /// whose bound is at or above it (the `le` of an OpenMetrics histogram). For `Positive`, 0 and 1.
    pub fn bounds(self) -> &'static [f64] {
        match self {
            Signal::Probability | Signal::Known => &UNIT_BOUNDS,
            Signal::Length => &LENGTH_BOUNDS,
            Signal::Positive => &[0.0, f64::INFINITY],
        }
    }

    /// The bin of `value` (NaN goes to the last bin: a model keeps its features finite, so it is
    /// never seen, and it is counted rather than dropped).
    pub fn bin(self, value: f64) -> usize {
        let bounds = self.bounds();
        bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(bounds.len() - 1)
    }
}

/// The live histogram of `signal` on the server's `/metrics`: an OpenMetrics histogram named
/// `predictor_drift_<signal>` whose buckets (`le`) are [`Signal::bounds`], over every answered request.
pub fn live_metric(signal: Signal) -> String {
    format!("predictor_drift_{}", signal.name())
}

/// The model file's reference on the server's `/metrics`, when its model file has one: a gauge
/// family `predictor_drift_reference{signal="<signal>",le="<bound>"}` holding, like a histogram's
/// buckets, the cumulative count of reference rows at or below each bound (`+Inf`: all rows).
pub const REFERENCE_METRIC: &str = "predictor_drift_reference";

/// Ten bins of 0.1 over [0, 1].
const UNIT_BOUNDS: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, f64::INFINITY];
/// Characters: a tweet is at most 280.
const LENGTH_BOUNDS: [f64; 10] = [
    10.0,
    20.0,
    40.0,
    60.0,
    80.0,
    100.0,
    140.0,
    200.0,
    280.0,
    f64::INFINITY,
];

/// Counts per bin of every signal over a set of answers: the model file's reference, or the live
/// answers of a server (cumulative), or a window (the difference of two).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Answers (rows) it counts.
    pub rows: u64,
    pub probability: Vec<u64>,
    pub known: Vec<u64>,
    pub length: Vec<u64>,
    /// [not US, US] predictions.
    pub positive: Vec<u64>,
}

/// One answer as drift sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    pub probability: f64,
    /// Known n-grams of the text, and all its n-grams.
    pub known: u32,
    pub ngrams: u32,
    /// Characters.
    pub length: usize,
    pub is_american: bool,
}

impl Observation {
    /// The value of `signal` for this answer.
    pub fn value(&self, signal: Signal) -> f64 {
        match signal {
            Signal::Probability => self.probability,
            Signal::Known if self.ngrams == 0 => 0.0,
            Signal::Known => f64::from(self.known) / f64::from(self.ngrams),
            Signal::Length => self.length as f64,
            Signal::Positive => f64::from(u8::from(self.is_american)),
        }
    }
}

impl Profile {
    /// An empty profile with every signal's bins.
    pub fn empty() -> Profile {
        let zeros = |s: Signal| vec![0; s.bounds().len()];
        Profile {
            rows: 0,
            probability: zeros(Signal::Probability),
            known: zeros(Signal::Known),
            length: zeros(Signal::Length),
            positive: zeros(Signal::Positive),
        }
    }

    pub fn counts(&self, signal: Signal) -> &[u64] {
        match signal {
            Signal::Probability => &self.probability,
            Signal::Known => &self.known,
            Signal::Length => &self.length,
            Signal::Positive => &self.positive,
        }
    }

    fn counts_mut(&mut self, signal: Signal) -> &mut Vec<u64> {
        match signal {
            Signal::Probability => &mut self.probability,
            Signal::Known => &mut self.known,
            Signal::Length => &mut self.length,
            Signal::Positive => &mut self.positive,
        }
    }

    /// Counts one answer (on a profile made by [`Profile::empty`]).
    pub fn observe(&mut self, o: &Observation) {
        self.rows += 1;
        for s in Signal::ALL {
            let bin = s.bin(o.value(s));
            self.counts_mut(s)[bin] += 1;
        }
    }

    /// Adds `other`'s counts (profiles of the same bins: another worker's, another pod's).
    pub fn merge(&mut self, other: &Profile) {
        self.rows += other.rows;
        for s in Signal::ALL {
            for (a, b) in self.counts_mut(s).iter_mut().zip(other.counts(s)) {
                *a += b;
            }
        }
    }

    /// `self - earlier` bin by bin: the answers between two cumulative profiles. None when a count went
    /// down (a counter was reset: the server restarted in between).
    pub fn since(&self, earlier: &Profile) -> Option<Profile> {
        let mut window = Profile {
            rows: self.rows.checked_sub(earlier.rows)?,
            ..Profile::empty()
        };
        for s in Signal::ALL {
            let (now, then) = (self.counts(s), earlier.counts(s));
            if now.len() != then.len() {
                return None;
            }
            for (w, (a, b)) in window.counts_mut(s).iter_mut().zip(now.iter().zip(then)) {
                *w = a.checked_sub(*b)?;
            }
        }
        Some(window)
    }

    /// Whether every signal has its bins (a decoded file or a scrape may say otherwise).
    pub fn is_well_formed(&self) -> bool {
        Signal::ALL
            .iter()
            .all(|s| self.counts(*s).len() == s.bounds().len())
    }
}

/// Share of an empty bin added to every bin before PSI is taken ("add-half" smoothing): PSI divides
/// by each bin's share, so an empty bin on one side would make it infinite.
pub const SMOOTHING: f64 = 0.5;

/// Population Stability Index of `actual` against `expected` (counts per bin, the same bins):
/// Σ (aᵢ − eᵢ) · ln(aᵢ / eᵢ) over the bins' shares, each count smoothed by [`SMOOTHING`].
/// 0 for the same distribution; by the usual reading, below 0.1 no shift, 0.1–0.25 a moderate one,
/// above 0.25 a large one. None when either side counts nothing, or the bins differ.
pub fn psi(expected: &[u64], actual: &[u64]) -> Option<f64> {
    if expected.len() != actual.len() || expected.is_empty() {
        return None;
    }
    let (e_total, a_total) = (
        expected.iter().sum::<u64>() as f64,
        actual.iter().sum::<u64>() as f64,
    );
    if e_total == 0.0 || a_total == 0.0 {
        return None;
    }
    let bins = expected.len() as f64;
    let share = |count: u64, total: f64| (count as f64 + SMOOTHING) / (total + SMOOTHING * bins);
    Some(
        expected
            .iter()
            .zip(actual)
            .map(|(&e, &a)| {
                let (e, a) = (share(e, e_total), share(a, a_total));
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_inclusive_upper_bounds_and_the_last_is_open() {
        assert_eq!(Signal::Probability.bin(0.0), 0);
        assert_eq!(Signal::Probability.bin(0.1), 0);
        assert_eq!(Signal::Probability.bin(0.1000001), 1);
        assert_eq!(Signal::Probability.bin(1.0), 9);
        assert_eq!(Signal::Length.bin(280.0), 8);
        assert_eq!(Signal::Length.bin(281.0), 9);
        assert_eq!(Signal::Positive.bin(0.0), 0);
        assert_eq!(Signal::Positive.bin(1.0), 1);
        assert_eq!(Signal::Known.bin(f64::NAN), 9);
        for s in Signal::ALL {
            assert_eq!(Signal::from_name(s.name()), Some(s));
        }
    }

    #[test]
    fn psi_of_a_distribution_against_itself_is_zero_and_of_a_scaled_copy_too() {
        assert_eq!(psi(&[10, 20, 70], &[10, 20, 70]), Some(0.0));
        let scaled = psi(&[10, 20, 70], &[100, 200, 700]).unwrap();
        // Smoothing adds the same half count to both: the shares differ by a hair, not more.
        assert!(scaled.abs() < 1e-3, "{scaled}");
    }

    #[test]
    fn psi_worked_by_hand() {
        // Shares with add-half smoothing over 2 bins: expected (50.5/101, 50.5/101) = (0.5, 0.5);
        // actual (90.5/101, 10.5/101) = (0.896040, 0.103960).
        // PSI = (0.896040 − 0.5)·ln(0.896040/0.5) + (0.103960 − 0.5)·ln(0.103960/0.5)
        //     = 0.396040·0.583374 + (−0.396040)·(−1.570589) = 0.231039 + 0.622016 = 0.853055.
        let value = psi(&[50, 50], &[90, 10]).unwrap();
        assert!((value - 0.853055).abs() < 1e-5, "{value}");
    }

    #[test]
    fn psi_with_empty_bins_is_finite_and_small_samples_swing_it() {
        // A bin empty on one side: smoothed, not infinite. Expected (0.5, 0.5) as above; actual
        // (0.5/11, 10.5/11) = (0.045455, 0.954545): PSI = (−0.454545)·ln(0.090909) + 0.454545·ln(1.909091)
        // = 1.089952 + 0.293921 = 1.383873.
        let value = psi(&[50, 50], &[0, 10]).unwrap();
        assert!((value - 1.383873).abs() < 1e-5, "{value}");
        // Ten answers from the reference's own distribution can still look shifted: why a minimum
        // sample count comes before any verdict.
        let few = psi(&[500, 500], &[7, 3]).unwrap();
        assert!(few > 0.1, "{few}");
        assert_eq!(psi(&[0, 0], &[1, 2]), None);
        assert_eq!(psi(&[1, 2], &[0, 0]), None);
        assert_eq!(psi(&[1, 2], &[1, 2, 3]), None);
    }

    #[test]
    fn observed_profiles_merge_and_a_window_is_their_difference() {
        let o = |probability: f64, known, ngrams, length, is_american| Observation {
            probability,
            known,
            ngrams,
            length,
            is_american,
        };
        let mut first = Profile::empty();
        first.observe(&o(0.95, 3, 4, 30, true));
        first.observe(&o(0.05, 0, 0, 5, false));
        assert_eq!(first.rows, 2);
        assert_eq!(first.probability, [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        // 3 of 4 known → 0.75 (bin 0.8); none of none → 0.
        assert_eq!(first.known, [1, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(first.length, [1, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(first.positive, [1, 1]);
        assert!(first.is_well_formed());

        let mut later = first.clone();
        later.observe(&o(0.5, 1, 1, 300, false));
        let window = later.since(&first).unwrap();
        assert_eq!(window.rows, 1);
        assert_eq!(window.probability, [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(window.length, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(first.since(&later), None, "a reset counter is no window");

        let mut both = first.clone();
        both.merge(&window);
        assert_eq!(both, later);
    }
}
