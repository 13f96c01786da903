//! The window of live answers of one Predictor: per pod, timestamped cumulative profiles (one per
//! reading), and the window as the difference between a pod's latest and the newest one at or
//! before `now − window` (or its first, when the pod has been read for less than the window).
//!
//! Bounded: a pod keeps the snapshots of one window plus the one before it, at most
//! [`MAX_SNAPSHOTS`] (readings come every window/10 at most: see [`super::read_every`]); a pod no
//! longer read is dropped; a reset counter (the pod's server restarted) restarts its history.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use predictor::drift::Profile;

/// Most snapshots kept of one pod, whatever the cadence: a window read every window/10 needs 12.
pub const MAX_SNAPSHOTS: usize = 16;

/// What one pod had answered so far at one moment.
#[derive(Clone, Debug, PartialEq)]
struct Snapshot {
    at: Instant,
    live: Profile,
}

/// The snapshots of one pod, oldest first, all under one reference.
#[derive(Clone, Debug, Default, PartialEq)]
struct PodHistory {
    reference: Option<Profile>,
    snapshots: VecDeque<Snapshot>,
}

/// One pod's answers in the window, and the reference it answered under.
#[derive(Clone, Debug, PartialEq)]
pub struct PodWindow {
    pub reference: Option<Profile>,
    pub answers: Profile,
}

/// The pods of one Predictor.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pods: BTreeMap<String, PodHistory>,
}

impl History {
    /// Records what pod `pod` answered at `at`: a snapshot, or a fresh start when its counters
    /// went down (a restart) or it serves another reference. Older snapshots than the window
    /// needs are dropped.
    pub fn record(
        &mut self,
        pod: &str,
        at: Instant,
        live: Profile,
        reference: Option<Profile>,
        window: Duration,
    ) {
        let history = self.pods.entry(pod.to_string()).or_default();
        let restarted = history
            .snapshots
            .back()
            .is_some_and(|last| live.since(&last.live).is_none());
        if restarted || history.reference != reference {
            *history = PodHistory {
                reference,
                snapshots: VecDeque::new(),
            };
        }
        history.snapshots.push_back(Snapshot { at, live });
        trim(&mut history.snapshots, at, window);
    }

    /// Forgets the pods not in `pods` (gone, no longer ready, or no longer read).
    pub fn keep_only<'a>(&mut self, pods: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::BTreeSet<&str> = pods.into_iter().collect();
        self.pods.retain(|name, _| keep.contains(name.as_str()));
    }

    /// Each pod's answers in the window ending at `now`.
    pub fn windows(&self, now: Instant, window: Duration) -> Vec<PodWindow> {
        let start = now.checked_sub(window);
        self.pods
            .values()
            .filter_map(|h| {
                let latest = h.snapshots.back()?;
                let baseline = start
                    .and_then(|start| h.snapshots.iter().rev().find(|s| s.at <= start))
                    .or(h.snapshots.front())?;
                Some(PodWindow {
                    reference: h.reference.clone(),
                    answers: latest.live.since(&baseline.live)?,
                })
            })
            .collect()
    }

    /// Whether no pod's history reaches back a whole window before `now` (just after the operator
    /// started, or only new pods): a window that looks short may be short of history, not of
    /// answers.
    pub fn is_partial(&self, now: Instant, window: Duration) -> bool {
        let Some(start) = now.checked_sub(window) else {
            return true;
        };
        !self
            .pods
            .values()
            .any(|h| h.snapshots.front().is_some_and(|s| s.at <= start))
    }

    /// Snapshots held, over all pods (for tests and the memory bound).
    pub fn snapshots(&self) -> usize {
        self.pods.values().map(|h| h.snapshots.len()).sum()
    }
}

/// Drops the snapshots older than the newest one at or before `now − window` (the baseline), and
/// the oldest beyond [`MAX_SNAPSHOTS`].
fn trim(snapshots: &mut VecDeque<Snapshot>, now: Instant, window: Duration) {
    if let Some(start) = now.checked_sub(window) {
        while snapshots.len() > 1 && snapshots[1].at <= start {
            snapshots.pop_front();
        }
    }
    while snapshots.len() > MAX_SNAPSHOTS {
        snapshots.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::exposition::tests::profile_of;

    const WINDOW: Duration = Duration::from_secs(600);

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    /// `rows` answers, all in the first bin of each signal.
    fn low(rows: u64) -> Profile {
        profile_of(rows, |_, i| u64::from(i == 0))
    }

    #[test]
    fn a_window_is_the_latest_minus_the_snapshot_a_window_ago() {
        let t0 = Instant::now();
        let mut h = History::default();
        // Read every 60 s: 100 answers a minute.
        for minute in 0..=15 {
            h.record("a", at(t0, minute * 60), low(minute * 100), None, WINDOW);
        }
        // At 15 min: the baseline is the snapshot at 5 min (500): 1,000 answers.
        let w = h.windows(at(t0, 900), WINDOW);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].answers.rows, 1000);
        assert_eq!(w[0].answers.probability[0], 1000);
        // It keeps that window and the baseline, no more.
        assert_eq!(h.snapshots(), 11);
        assert!(!h.is_partial(at(t0, 900), WINDOW));
    }

    #[test]
    fn a_young_pod_counts_from_its_first_snapshot() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record("a", at(t0, 0), low(40), None, WINDOW);
        h.record("a", at(t0, 120), low(90), None, WINDOW);
        let w = h.windows(at(t0, 120), WINDOW);
        assert_eq!(w[0].answers.rows, 50);
        assert!(h.is_partial(at(t0, 120), WINDOW));
    }

    #[test]
    fn a_reset_counter_restarts_the_pods_baseline() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record("a", at(t0, 0), low(500), None, WINDOW);
        h.record("a", at(t0, 60), low(700), None, WINDOW);
        // The server restarted: its counters start again from 30.
        h.record("a", at(t0, 120), low(30), None, WINDOW);
        assert_eq!(h.snapshots(), 1);
        assert_eq!(h.windows(at(t0, 120), WINDOW)[0].answers.rows, 0);
        h.record("a", at(t0, 180), low(80), None, WINDOW);
        assert_eq!(h.windows(at(t0, 180), WINDOW)[0].answers.rows, 50);
        // Another reference (another model file) also starts afresh.
        let reference = Some(low(10));
        h.record("a", at(t0, 240), low(90), reference.clone(), WINDOW);
        let w = h.windows(at(t0, 240), WINDOW);
        assert_eq!((w[0].answers.rows, &w[0].reference), (0, &reference));
    }

    #[test]
    fn gone_pods_are_forgotten_and_memory_stays_bounded() {
        let t0 = Instant::now();
        let mut h = History::default();
        for i in 0..1000 {
            // Read every second for 1,000 s (faster than any cadence the operator uses).
            h.record("a", at(t0, i), low(i), None, WINDOW);
            h.record("b", at(t0, i), low(2 * i), None, WINDOW);
        }
        assert_eq!(h.snapshots(), 2 * MAX_SNAPSHOTS);
        h.keep_only(["b"]);
        assert_eq!(h.windows(at(t0, 999), WINDOW).len(), 1);
        assert_eq!(h.snapshots(), MAX_SNAPSHOTS);
        h.keep_only([]);
        assert_eq!(h, History::default());
    }
}
