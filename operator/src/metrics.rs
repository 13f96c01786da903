//! The operator's own metrics, rendered in the Prometheus text format.
//!
//! A handful of counters does not justify a metrics framework: atomics and one small map of labelled
//! counters, rendered on demand by `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 8] = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// Counters and gauges of one operator process.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    /// (metric name, label value) → count.
    labelled: Mutex<BTreeMap<(&'static str, String), u64>>,
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_sum_micros: AtomicU64,
    leader: AtomicBool,
}

impl Metrics {
    fn bump(&self, metric: &'static str, label: &str) {
        *self
            .labelled
            .lock()
            .expect("metrics lock")
            .entry((metric, label.to_string()))
            .or_default() += 1;
    }

    /// One reconcile finished after `took`.
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (bucket, le) in self.duration_buckets.iter().zip(BUCKETS) {
            if secs <= le {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// One reconcile failed with an error of kind `label`.
    pub fn reconcile_failed(&self, label: &str) {
        self.bump("predictor_operator_reconcile_errors_total", label);
    }

    /// One model check ended with `result` (`verified` or an error label).
    pub fn model_check(&self, result: &str) {
        self.bump("predictor_operator_model_checks_total", result);
    }

    /// One write of kind `what` (`deployment`, `service`, `status`, `event`) went to the apiserver.
    pub fn wrote(&self, what: &str) {
        self.bump("predictor_operator_writes_total", what);
    }

    /// This replica became (or stopped being) the leader.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Whether this replica currently leads.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let count = self.reconciles.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP predictor_operator_reconcile_duration_seconds Time spent in one reconcile.\n\
             # TYPE predictor_operator_reconcile_duration_seconds histogram"
        );
        for (bucket, le) in self.duration_buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "predictor_operator_reconcile_duration_seconds_bucket{{le=\"{le}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "predictor_operator_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             predictor_operator_reconcile_duration_seconds_sum {}\n\
             predictor_operator_reconcile_duration_seconds_count {count}",
            self.duration_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let families: [(&str, &str, &str); 3] = [
            (
                "predictor_operator_reconcile_errors_total",
                "Failed reconciles by error kind.",
                "error",
            ),
            (
                "predictor_operator_model_checks_total",
                "Pre-flight model checks that downloaded a model, by result.",
                "result",
            ),
            (
                "predictor_operator_writes_total",
                "Writes to the apiserver by kind of object.",
                "kind",
            ),
        ];
        let labelled = self.labelled.lock().expect("metrics lock");
        for (name, help, label) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((_, value), n) in labelled
                .range((name, String::new())..)
                .take_while(|((m, _), _)| *m == name)
            {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP predictor_operator_leader 1 when this replica holds the leader Lease.\n\
             # TYPE predictor_operator_leader gauge\npredictor_operator_leader {}",
            u8::from(self.is_leader())
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(20));
        m.reconcile_failed("kube");
        m.model_check("verified");
        m.model_check("verified");
        m.set_leader(true);
        let text = m.render();
        for line in [
            "predictor_operator_reconcile_duration_seconds_bucket{le=\"0.01\"} 0",
            "predictor_operator_reconcile_duration_seconds_bucket{le=\"0.05\"} 1",
            "predictor_operator_reconcile_duration_seconds_count 1",
            "predictor_operator_reconcile_errors_total{error=\"kube\"} 1",
            "predictor_operator_model_checks_total{result=\"verified\"} 2",
            "# TYPE predictor_operator_writes_total counter",
            "predictor_operator_leader 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
