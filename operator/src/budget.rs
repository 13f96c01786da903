//! The operator's in-flight memory budget: every body it reads from a URL (model and data
//! downloads, model decodes, quality-gate scoring, canary `/metrics` scrapes, registry answers)
//! first reserves what it may hold in memory from one shared semaphore, so however many Predictors
//! point at whatever URLs, their reads together stay within `--memory-budget-mib` (what the
//! Deployment's memory limit is sized for: `config/manager/deployment.yaml`). A read that needs
//! more than the whole budget is refused at once; others wait for their turn.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's unit: reservations are rounded up to whole KiB (a semaphore counts in `u32`).
const UNIT: u64 = 1 << 10;

/// One process's budget. Cheap to share by reference (it lives in the reconcile context).
#[derive(Debug)]
pub struct Budget {
    permits: Arc<Semaphore>,
    total_units: u32,
}

/// Memory reserved until dropped (owned: a blocking thread can hold it to its end).
pub type Reserved = OwnedSemaphorePermit;

impl Budget {
    /// A budget of `bytes` (rounded down to whole KiB; at most 4 TiB).
    pub fn new(bytes: u64) -> Self {
        let total_units = u32::try_from(bytes / UNIT).unwrap_or(u32::MAX);
        Self {
            permits: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
        }
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> u64 {
        u64::from(self.total_units) * UNIT
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }

    /// Reserves `bytes` for `what`, waiting while other reads hold the budget; refuses (at once,
    /// with a reason naming both sizes) more than the whole budget.
    pub async fn reserve(&self, bytes: u64, what: &str) -> Result<Reserved, String> {
        let units = bytes.div_ceil(UNIT).max(1);
        if units > u64::from(self.total_units) {
            return Err(format!(
                "{what} needs {} MiB of memory, more than the operator's whole in-flight budget of \
                 {} MiB (--memory-budget-mib)",
                bytes.div_ceil(1 << 20),
                self.total() >> 20
            ));
        }
        Ok(self
            .permits
            .clone()
            .acquire_many_owned(units as u32)
            .await
            .expect("the budget's semaphore is never closed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn more_than_the_whole_budget_is_refused_and_the_rest_waits_its_turn() {
        let budget = Arc::new(Budget::new(10 << 20));
        let err = budget.reserve(11 << 20, "model m").await.unwrap_err();
        assert_eq!(
            err,
            "model m needs 11 MiB of memory, more than the operator's whole in-flight budget of \
             10 MiB (--memory-budget-mib)"
        );
        // Eight readers of 4 MiB each against 10 MiB: never more than two hold memory at once.
        let (held, peak) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let (budget, held, peak) = (budget.clone(), held.clone(), peak.clone());
                tokio::spawn(async move {
                    let _reserved = budget.reserve(4 << 20, "read").await.unwrap();
                    let now = held.fetch_add(4 << 20, Ordering::SeqCst) + (4 << 20);
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    held.fetch_sub(4 << 20, Ordering::SeqCst);
                })
            })
            .collect();
        for reader in readers {
            reader.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 8 << 20);
        assert_eq!(budget.available(), 10 << 20);
    }
}
