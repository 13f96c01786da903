//! Read-your-writes for the operator's status writes.
//!
//! A reconcile reads its Predictor from the controller's cache, which shows the operator's own
//! status write only once the write's watch event arrives. A reconcile started in between (by a
//! child's watch event) sees the version the write replaced and would write the same status again:
//! a quarter of the new Predictors in the scale bench did. The write's resourceVersion
//! precondition makes the apiserver refuse such a write, but only after it has done most of the
//! work of an apply (386 refused applies at 1,000 Predictors). So the operator remembers, per
//! Predictor, the version its last status write replaced: a reconcile that still sees that version
//! leaves the status alone, and the write's own watch event brings the next reconcile.
//!
//! NB: kube-runtime's controller has no such memory (its `Config::debounce` only merges triggers
//! that come close together, and a child's events come at any time), so it is kept here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::crd::Predictor;

/// After this long the watch event of a write has surely arrived; a version remembered longer is
/// forgotten, so a Predictor deleted in between is not remembered for ever.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Per Predictor: the resourceVersion its last status write replaced, and when.
#[derive(Default)]
pub struct OwnWrites {
    replaced: Mutex<HashMap<ObjectRef<Predictor>, (String, Instant)>>,
}

impl OwnWrites {
    /// After a status write computed from `predictor` that the apiserver answered with `written`:
    /// the version read is now out of date. A write that changed nothing keeps its version and
    /// brings no watch event, so it is not remembered (else the Predictor's status would stay
    /// unwritten until [`FORGET_AFTER`], and then until the next resync).
    pub fn wrote(&self, predictor: &Predictor, written: &Predictor) {
        let Some(version) = predictor.resource_version() else {
            return;
        };
        if written.resource_version().as_ref() == Some(&version) {
            return;
        }
        let now = Instant::now();
        let mut replaced = self.replaced.lock().unwrap_or_else(|e| e.into_inner());
        replaced.retain(|_, (_, at)| now.duration_since(*at) < FORGET_AFTER);
        replaced.insert(ObjectRef::from_obj(predictor), (version, now));
    }

    /// Whether `predictor` (as the cache has it) is a version a status write already replaced.
    /// Forgets the Predictor once any other version of it is seen.
    pub fn is_replaced(&self, predictor: &Predictor) -> bool {
        let key = ObjectRef::from_obj(predictor);
        let mut replaced = self.replaced.lock().unwrap_or_else(|e| e.into_inner());
        match replaced.get(&key) {
            Some((version, at))
                if predictor.resource_version().as_ref() == Some(version)
                    && at.elapsed() < FORGET_AFTER =>
            {
                true
            }
            Some(_) => {
                replaced.remove(&key);
                false
            }
            None => false,
        }
    }

    /// How many Predictors are remembered (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.replaced.lock().map(|r| r.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::predictor;

    fn at_version(name: &str, version: &str) -> Predictor {
        let mut p = predictor(name, "team-a");
        p.metadata.resource_version = Some(version.into());
        p
    }

    #[test]
    fn the_version_a_write_replaced_is_stale_until_a_newer_one_is_seen() {
        let writes = OwnWrites::default();
        let before = at_version("american", "7");
        assert!(!writes.is_replaced(&before), "nothing written yet");

        writes.wrote(&before, &at_version("american", "8"));
        assert!(
            writes.is_replaced(&before),
            "the cache has not seen the write"
        );
        assert!(writes.is_replaced(&before), "still not");
        assert!(
            !writes.is_replaced(&at_version("other", "7")),
            "another Predictor"
        );

        // The write's watch event arrived: the newer version is current, and is forgotten.
        assert!(!writes.is_replaced(&at_version("american", "8")));
        assert_eq!(writes.len(), 0);
        assert!(!writes.is_replaced(&before));
    }

    #[test]
    fn an_object_without_a_version_is_never_remembered() {
        let writes = OwnWrites::default();
        let p = predictor("american", "team-a");
        writes.wrote(&p, &at_version("american", "8"));
        assert!(!writes.is_replaced(&p));
        assert_eq!(writes.len(), 0);
    }

    #[test]
    fn a_write_that_changed_nothing_is_not_remembered() {
        // The apiserver answers an apply that changes nothing with the same resourceVersion, and
        // sends no watch event: the next reconcile must not wait for one.
        let writes = OwnWrites::default();
        let same = at_version("american", "7");
        writes.wrote(&same, &same.clone());
        assert!(!writes.is_replaced(&same));
        assert_eq!(writes.len(), 0);
    }
}
