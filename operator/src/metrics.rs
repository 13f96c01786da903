//! The operator's own metrics, kept and rendered by `prometheus-client` in the OpenMetrics text
//! format (which escapes label values, so no label can break the exposition).

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 8] = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// The content type of [`Metrics::render`]'s output: the predictor's, same encoder.
pub use predictor::metrics::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabels {
    namespace: String,
    name: String,
    signal: String,
}

/// Counters and gauges of one operator process.
pub struct Metrics {
    registry: Registry,
    reconcile_duration: Histogram,
    reconcile_errors: Family<ErrorLabel, Counter>,
    model_checks: Family<ResultLabel, Counter>,
    image_checks: Family<ResultLabel, Counter>,
    quality_checks: Family<ResultLabel, Counter>,
    writes: Family<KindLabel, Counter>,
    canary_verdicts: Family<ResultLabel, Counter>,
    drift_psi: Family<DriftLabels, Gauge<f64, AtomicU64>>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconcile_duration = Histogram::new(BUCKETS);
        let reconcile_errors = Family::<ErrorLabel, Counter>::default();
        let model_checks = Family::<ResultLabel, Counter>::default();
        let image_checks = Family::<ResultLabel, Counter>::default();
        let quality_checks = Family::<ResultLabel, Counter>::default();
        let writes = Family::<KindLabel, Counter>::default();
        let canary_verdicts = Family::<ResultLabel, Counter>::default();
        let drift_psi = Family::<DriftLabels, Gauge<f64, AtomicU64>>::default();
        let leader = Gauge::default();
        let mut registry = Registry::default();
        // NB: counters are registered without `_total`: the OpenMetrics encoder appends it.
        registry.register(
            "predictor_operator_reconcile_duration_seconds",
            "Time spent in one reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "predictor_operator_reconcile_errors",
            "Failed reconciles by error kind",
            reconcile_errors.clone(),
        );
        registry.register(
            "predictor_operator_model_checks",
            "Pre-flight model checks that downloaded a model, by result",
            model_checks.clone(),
        );
        registry.register(
            "predictor_operator_image_checks",
            "Pre-flight image checks that asked a registry for a tag's digest, by result",
            image_checks.clone(),
        );
        registry.register(
            "predictor_operator_quality_checks",
            "Offline quality gate runs that scored a new model or failed to, by result",
            quality_checks.clone(),
        );
        registry.register(
            "predictor_operator_writes",
            "Writes to the apiserver by kind of object",
            writes.clone(),
        );
        registry.register(
            "predictor_operator_canary_verdicts",
            "Canary analyses that ended, by result (promoted, or the reason of the rollback)",
            canary_verdicts.clone(),
        );
        registry.register(
            "predictor_operator_drift_psi",
            "PSI of a drift signal of a Predictor's live answers against its model file's reference, over its window (while spec.monitoring.drift is set and there is a verdict)",
            drift_psi.clone(),
        );
        registry.register(
            "predictor_operator_leader",
            "1 when this replica holds the leader Lease",
            leader.clone(),
        );
        Self {
            registry,
            reconcile_duration,
            reconcile_errors,
            model_checks,
            image_checks,
            quality_checks,
            writes,
            canary_verdicts,
            drift_psi,
            leader,
        }
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("leader", &self.is_leader())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// One reconcile finished after `took`.
    pub fn reconciled(&self, took: Duration) {
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// One reconcile failed with an error of kind `label`.
    pub fn reconcile_failed(&self, label: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabel {
                error: label.into(),
            })
            .inc();
    }

    /// One image check that asked a registry ended with `result` (`resolved` or an error label).
    pub fn image_check(&self, result: &str) {
        self.image_checks
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    /// One model check ended with `result` (`verified` or an error label).
    pub fn model_check(&self, result: &str) {
        self.model_checks
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    /// One quality gate run ended with `result` (`passed`, `below_gate` or an error label).
    pub fn quality_check(&self, result: &str) {
        self.quality_checks
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    /// A canary analysis ended with `result` (`promoted`, or the CamelCase reason of a rollback).
    pub fn canary_verdict(&self, result: &str) {
        self.canary_verdicts
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    /// One write of kind `what` (`deployment`, `service`, `status`, `event`) went to the apiserver.
    pub fn wrote(&self, what: &str) {
        self.writes
            .get_or_create(&KindLabel { kind: what.into() })
            .inc();
    }

    /// Predictor `namespace/name`'s PSI per signal name; the signals without one lose their series.
    pub fn drift(&self, namespace: &str, name: &str, psi: &std::collections::BTreeMap<&str, f64>) {
        for signal in predictor::drift::Signal::ALL {
            let labels = DriftLabels {
                namespace: namespace.into(),
                name: name.into(),
                signal: signal.name().into(),
            };
            match psi.get(signal.name()) {
                Some(value) => {
                    self.drift_psi.get_or_create(&labels).set(*value);
                }
                None => {
                    self.drift_psi.remove(&labels);
                }
            }
        }
    }

    /// Removes Predictor `namespace/name`'s drift series (drift turned off, or it was deleted).
    pub fn forget_drift(&self, namespace: &str, name: &str) {
        self.drift(namespace, name, &Default::default());
    }

    /// This replica became (or stopped being) the leader.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Whether this replica currently leads.
    pub fn is_leader(&self) -> bool {
        self.leader.get() == 1
    }

    /// Everything, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        predictor::metrics::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openmetrics_parser::{OpenMetricsType, OpenMetricsValue};

    #[test]
    fn renders_openmetrics_that_a_parser_reads_back() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(20));
        m.reconciled(Duration::from_secs(2));
        m.reconcile_failed("kube");
        m.model_check("verified");
        m.model_check("verified");
        m.quality_check("below_gate");
        m.canary_verdict("DisagreementTooHigh");
        // A label value that would break a hand-written renderer: quotes, backslash, newline.
        m.wrote("odd \"kind\" \\ with\nnewline");
        m.wrote("status");
        m.set_leader(true);
        let psi = [("known", 0.41), ("length", 0.02)].into_iter().collect();
        m.drift("team-a", "american", &psi);
        m.drift("team-b", "gone", &psi);
        m.forget_drift("team-b", "gone");
        let text = m.render();
        let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&text)
            .unwrap_or_else(|e| panic!("unparsable exposition ({e:?}):\n{text}"));
        let family = |name: &str| {
            parsed
                .families
                .get(name)
                .unwrap_or_else(|| panic!("no family {name} in\n{text}"))
        };
        let counter = |name: &str, label: &str| {
            let f = family(name);
            assert_eq!(f.family_type, OpenMetricsType::Counter, "{name}");
            match &f
                .get_sample_by_label_values(&[label.to_string()])
                .unwrap_or_else(|| panic!("no {name}{{{label:?}}} in\n{text}"))
                .value
            {
                OpenMetricsValue::Counter(c) => c.value.as_f64(),
                other => panic!("{name} is {other:?}"),
            }
        };
        assert_eq!(counter("predictor_operator_reconcile_errors", "kube"), 1.0);
        assert_eq!(counter("predictor_operator_model_checks", "verified"), 2.0);
        assert_eq!(counter("predictor_operator_writes", "status"), 1.0);
        assert_eq!(
            counter("predictor_operator_quality_checks", "below_gate"),
            1.0
        );
        assert_eq!(
            counter("predictor_operator_canary_verdicts", "DisagreementTooHigh"),
            1.0
        );
        assert_eq!(
            counter("predictor_operator_writes", "odd \"kind\" \\ with\nnewline"),
            1.0
        );

        let leader = family("predictor_operator_leader");
        assert_eq!(leader.family_type, OpenMetricsType::Gauge);
        let value = &leader.iter_samples().next().expect("one sample").value;
        assert!(
            matches!(value, OpenMetricsValue::Gauge(n) if n.as_f64() == 1.0),
            "{value:?}"
        );

        let drift = family("predictor_operator_drift_psi");
        assert_eq!(drift.family_type, OpenMetricsType::Gauge);
        let mut series: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("predictor_operator_drift_psi{"))
            .map(String::from)
            .collect();
        series.sort();
        assert_eq!(
            series,
            [
                "predictor_operator_drift_psi{namespace=\"team-a\",name=\"american\",signal=\"known\"} 0.41",
                "predictor_operator_drift_psi{namespace=\"team-a\",name=\"american\",signal=\"length\"} 0.02",
            ]
        );

        let duration = family("predictor_operator_reconcile_duration_seconds");
        assert_eq!(duration.family_type, OpenMetricsType::Histogram);
        let OpenMetricsValue::Histogram(h) =
            &duration.iter_samples().next().expect("one sample").value
        else {
            panic!("not a histogram")
        };
        assert_eq!(h.count, Some(2));
        let sum = h.sum.map(|s| s.as_f64()).unwrap_or(f64::NAN);
        assert!((sum - 2.02).abs() < 1e-9, "{sum}");
        let bounds: Vec<f64> = h.buckets.iter().map(|b| b.upper_bound).collect();
        let mut expected = BUCKETS.to_vec();
        expected.push(f64::INFINITY);
        assert_eq!(bounds, expected);
        let cumulative: Vec<f64> = h.buckets.iter().map(|b| b.count.as_f64()).collect();
        assert_eq!(cumulative, [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
        // The series names the cluster tests and the scale bench read stay as they were.
        for line in [
            "predictor_operator_leader 1",
            "predictor_operator_reconcile_duration_seconds_count 2",
            "predictor_operator_reconcile_errors_total{error=\"kube\"} 1",
            "predictor_operator_quality_checks_total{result=\"below_gate\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
