//! Drift of a Predictor's live answers from its model file's reference (issue 31): what the pods
//! say ([`exposition`]), the window of answers kept per pod ([`window`]), and here the reading
//! that the status is made of ([`DriftReading`]), per Predictor in the [`DriftTracker`] the
//! reconciles share.
//!
//! The tracker is the operator's only memory of drift: per Predictor (by uid) its pods' snapshots
//! and its last reading. An entry is dropped when drift is turned off or the Predictor is deleted
//! ([`DriftTracker::forget`], [`DriftTracker::keep_only`]).

pub mod exposition;
pub mod window;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use predictor::drift::{Profile, Signal, psi};

use exposition::PodSignals;
use window::{History, PodWindow};

/// What one reading found, before any threshold is applied.
#[derive(Clone, Debug, PartialEq)]
pub enum Found {
    /// No stable pod was ready to be read.
    NoPods,
    /// The pods answered, none with drift signals.
    NoSignals,
    /// The pods' drift signals could not be read (no answer, or a malformed one), on this many.
    Unreadable(usize),
    /// Live answers, but their model file has no reference.
    NoReference,
    /// PSI of each signal, in [`Signal::ALL`]'s order (`None`: the reference or the window counts
    /// nothing of it).
    Measured(Vec<(Signal, Option<f64>)>),
}

/// One reading of a Predictor's pods, as the status shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DriftReading {
    /// Answers in the window, of the pods judged (those under the reference most answers were
    /// served under).
    pub samples: u64,
    pub found: Found,
    /// The history of the pods reaches back less than a window (see [`History::is_partial`]).
    pub partial: bool,
    /// When the pods were read.
    pub at: Time,
}

/// What one read of one pod gave: its signals, or why not (fixed wording: never its text).
#[derive(Clone, Debug, PartialEq)]
pub enum PodRead {
    /// Boxed: a read profile is a few hundred bytes, a failure none.
    Signals(Box<PodSignals>),
    Failed,
}

/// How often a Predictor's pods are read: every tenth of the window, so that a window is measured
/// within 10% of its length, and a pod keeps about a dozen snapshots ([`window::MAX_SNAPSHOTS`]);
/// but not more often than every 15 s, however short the window: each read is an HTTP request to
/// every stable pod, and the pods' counters change little in less.
pub fn read_every(window: Duration) -> Duration {
    (window / 10).max(MIN_READ_INTERVAL)
}

/// The shortest time between two reads of one Predictor's pods.
pub const MIN_READ_INTERVAL: Duration = Duration::from_secs(15);

/// Most pods of one Predictor read per reading (a sample of a larger Predictor: the ones first by
/// name). Bounds the requests and the memory per Predictor.
pub const MAX_PODS: usize = 32;

/// Turns one reading's pod reads and the history into a [`DriftReading`].
pub fn judge(
    history: &History,
    reads: &[(String, PodRead)],
    now: Instant,
    window: Duration,
    at: Time,
) -> DriftReading {
    let partial = history.is_partial(now, window);
    let windows = history.windows(now, window);
    let reading = |samples, found| DriftReading {
        samples,
        found,
        partial,
        at: at.clone(),
    };
    if windows.is_empty() {
        let unreadable = reads
            .iter()
            .filter(|(_, r)| {
                matches!(r, PodRead::Failed)
                    || matches!(r, PodRead::Signals(s) if matches!(**s, PodSignals::Unreadable(_)))
            })
            .count();
        let found = if reads.is_empty() {
            Found::NoPods
        } else if unreadable > 0 {
            Found::Unreadable(unreadable)
        } else {
            Found::NoSignals
        };
        return reading(0, found);
    }
    let (reference, answers) = judged(&windows);
    let found = match &reference {
        None => Found::NoReference,
        Some(reference) => Found::Measured(
            Signal::ALL
                .into_iter()
                .map(|s| (s, psi(reference.counts(s), answers.counts(s))))
                .collect(),
        ),
    };
    reading(answers.rows, found)
}

/// The pods' windows under the reference most answers were served under (during a rollout, old
/// and new pods serve different model files), summed; ties go to the first pod's.
fn judged(windows: &[PodWindow]) -> (Option<Profile>, Profile) {
    let mut groups: Vec<(Option<Profile>, Profile)> = Vec::new();
    for w in windows {
        match groups.iter_mut().find(|(r, _)| *r == w.reference) {
            Some((_, sum)) => sum.merge(&w.answers),
            None => groups.push((w.reference.clone(), w.answers.clone())),
        }
    }
    let most = groups.iter().map(|(_, p)| p.rows).max().unwrap_or(0);
    groups
        .into_iter()
        .find(|(_, p)| p.rows == most)
        .unwrap_or((None, Profile::empty()))
}

/// One Predictor's memory.
#[derive(Debug)]
struct Entry {
    namespace: String,
    name: String,
    history: History,
    last: Option<(Instant, DriftReading)>,
}

/// Per Predictor (by uid): its pods' history and its last reading.
#[derive(Debug, Default)]
pub struct DriftTracker {
    entries: Mutex<HashMap<String, Entry>>,
}

impl DriftTracker {
    /// The last reading of Predictor `uid` and how long it stays fresh, when it was made less than
    /// `every` before `now`.
    pub fn fresh(
        &self,
        uid: &str,
        now: Instant,
        every: Duration,
    ) -> Option<(DriftReading, Duration)> {
        let entries = self.lock();
        let (at, reading) = entries.get(uid)?.last.as_ref()?;
        let left = every.checked_sub(now.saturating_duration_since(*at))?;
        (!left.is_zero()).then(|| (reading.clone(), left))
    }

    /// Records a reading of Predictor `uid`'s pods (`reads`, by pod name) made at `now` and returns
    /// what it found.
    pub fn record(
        &self,
        (uid, namespace, name): (&str, &str, &str),
        reads: Vec<(String, PodRead)>,
        now: Instant,
        window: Duration,
        at: Time,
    ) -> DriftReading {
        let mut entries = self.lock();
        let entry = entries.entry(uid.to_string()).or_insert_with(|| Entry {
            namespace: namespace.to_string(),
            name: name.to_string(),
            history: History::default(),
            last: None,
        });
        entry
            .history
            .keep_only(reads.iter().map(|(pod, _)| pod.as_str()));
        for (pod, read) in &reads {
            if let PodRead::Signals(signals) = read
                && let PodSignals::Read { live, reference } = signals.as_ref()
            {
                entry
                    .history
                    .record(pod, now, live.clone(), reference.clone(), window);
            }
        }
        let reading = judge(&entry.history, &reads, now, window, at);
        entry.last = Some((now, reading.clone()));
        reading
    }

    /// Forgets Predictor `uid` (drift turned off); returns its namespace and name if it was known.
    pub fn forget(&self, uid: &str) -> Option<(String, String)> {
        self.lock().remove(uid).map(|e| (e.namespace, e.name))
    }

    /// Forgets every Predictor whose uid is not in `uids` (deleted); returns their namespaces and
    /// names.
    pub fn keep_only(&self, uids: &HashSet<String>) -> Vec<(String, String)> {
        let mut entries = self.lock();
        let gone: Vec<String> = entries
            .keys()
            .filter(|uid| !uids.contains(*uid))
            .cloned()
            .collect();
        gone.iter()
            .filter_map(|uid| entries.remove(uid))
            .map(|e| (e.namespace, e.name))
            .collect()
    }

    /// Predictors remembered, and snapshots held over all of them.
    pub fn size(&self) -> (usize, usize) {
        let entries = self.lock();
        let snapshots = entries.values().map(|e| e.history.snapshots()).sum();
        (entries.len(), snapshots)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// PSI values by signal name, for the metric.
pub fn psi_by_signal(reading: &DriftReading) -> BTreeMap<&'static str, f64> {
    match &reading.found {
        Found::Measured(values) => values
            .iter()
            .filter_map(|(s, v)| Some((s.name(), (*v)?)))
            .collect(),
        _ => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::exposition::tests::profile_of;
    use crate::fixtures::time;

    const WINDOW: Duration = Duration::from_secs(600);

    fn read(live: Profile, reference: Option<Profile>) -> PodRead {
        PodRead::Signals(Box::new(PodSignals::Read { live, reference }))
    }

    fn even(rows: u64) -> Profile {
        profile_of(rows, |_, _| 1)
    }

    #[test]
    fn the_cadence_is_a_tenth_of_the_window_but_not_under_15_s() {
        assert_eq!(
            read_every(Duration::from_secs(600)),
            Duration::from_secs(60)
        );
        assert_eq!(read_every(Duration::from_secs(30)), Duration::from_secs(15));
        assert_eq!(
            read_every(Duration::from_secs(86400)),
            Duration::from_secs(8640)
        );
    }

    #[test]
    fn a_reading_sums_the_pods_and_measures_psi_against_the_reference() {
        let t0 = Instant::now();
        let tracker = DriftTracker::default();
        let key = ("uid-1", "team-a", "american");
        let reference = Some(even(1000));
        let pods = |a: Profile, b: Profile| {
            vec![
                ("american-a".to_string(), read(a, reference.clone())),
                ("american-b".to_string(), read(b, reference.clone())),
            ]
        };
        let first = tracker.record(key, pods(even(100), even(50)), t0, WINDOW, time(0));
        assert_eq!((first.samples, first.partial), (0, true));
        // The same distribution as the reference: PSI 0 on every signal.
        let later = t0 + Duration::from_secs(60);
        let r = tracker.record(key, pods(even(300), even(250)), later, WINDOW, time(60));
        assert_eq!(r.samples, 400);
        let Found::Measured(values) = &r.found else {
            panic!("{r:?}")
        };
        for (signal, value) in values {
            assert!(
                value.is_some_and(|v| v.abs() < 1e-9),
                "{signal:?} {value:?}"
            );
        }
        assert_eq!(
            tracker.fresh(
                "uid-1",
                later + Duration::from_secs(10),
                Duration::from_secs(60)
            ),
            Some((r.clone(), Duration::from_secs(50)))
        );
        assert_eq!(
            tracker.fresh(
                "uid-1",
                later + Duration::from_secs(60),
                Duration::from_secs(60)
            ),
            None
        );
        assert_eq!(tracker.size(), (1, 4));
        assert_eq!(
            tracker.keep_only(&HashSet::new()),
            [("team-a".into(), "american".into())]
        );
        assert_eq!(tracker.size(), (0, 0));
    }

    #[test]
    fn what_the_pods_say_without_a_window() {
        let judge_reads = |reads: Vec<(String, PodRead)>| {
            let mut h = History::default();
            for (pod, r) in &reads {
                if let PodRead::Signals(signals) = r
                    && let PodSignals::Read { live, reference } = signals.as_ref()
                {
                    h.record(pod, Instant::now(), live.clone(), reference.clone(), WINDOW);
                }
            }
            judge(&h, &reads, Instant::now(), WINDOW, time(0)).found
        };
        assert_eq!(judge_reads(vec![]), Found::NoPods);
        assert_eq!(
            judge_reads(vec![(
                "a".into(),
                PodRead::Signals(Box::new(PodSignals::None))
            )]),
            Found::NoSignals
        );
        assert_eq!(
            judge_reads(vec![
                ("a".into(), PodRead::Signals(Box::new(PodSignals::None))),
                ("b".into(), PodRead::Failed),
                (
                    "c".into(),
                    PodRead::Signals(Box::new(PodSignals::Unreadable("x")))
                ),
            ]),
            Found::Unreadable(2)
        );
        assert_eq!(
            judge_reads(vec![("a".into(), read(even(10), None))]),
            Found::NoReference
        );
    }

    #[test]
    fn during_a_rollout_the_reference_most_answers_came_under_is_judged() {
        let t0 = Instant::now();
        let (old, new) = (
            Some(even(100)),
            Some(profile_of(100, |_, i| u64::from(i == 0))),
        );
        let mut h = History::default();
        for (secs, n) in [(0, 0), (60, 1)] {
            let at = t0 + Duration::from_secs(secs);
            h.record("old", at, even(30 * n), old.clone(), WINDOW);
            h.record("new-1", at, even(20 * n), new.clone(), WINDOW);
            h.record("new-2", at, even(20 * n), new.clone(), WINDOW);
        }
        let r = judge(&h, &[], t0 + Duration::from_secs(60), WINDOW, time(60));
        assert_eq!(r.samples, 40);
        // Even answers against a reference all in the first bin: far apart.
        let Found::Measured(values) = r.found else {
            panic!()
        };
        assert!(
            values.iter().all(|(_, v)| v.is_some_and(|v| v > 1.0)),
            "{values:?}"
        );
    }
}
