//! Prometheus metrics of the server: prometheus-client counters, a latency histogram and gauges, encoded in
//! the OpenMetrics text format on `/metrics`; with drift signals on, a histogram per drift signal over
//! the answers and the model file's reference beside them ([`crate::drift`]).

use crate::drift::{self, Observation, Profile, Signal};
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// The `Content-Type` of what [`encode`] (and so [`Metrics::render`]) returns; the operator's
/// `/metrics` too.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `registry` in the OpenMetrics text format ([`CONTENT_TYPE`]), for this crate's and the operator's
/// `/metrics`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail, and every label value encodes.
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("metrics encode into a String");
    out
}

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// The server's route labels ("other": anything unrouted, last). No `/drain`: over TCP it is an unknown
/// path like any other (the drain is served only on its Unix socket, see `server::DrainSocket`).
const ROUTES: [&str; 6] = [
    "/api/american",
    "/healthz",
    "/readyz",
    "/metrics",
    "/",
    "other",
];

/// A request's route label, found once per request: one of [`ROUTES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route(usize);

impl Route {
    /// The route of a request path; "other" when no route has it (the routes have no parameters).
    pub fn of(path: &str) -> Self {
        Self(
            ROUTES
                .iter()
                .position(|r| *r == path)
                .unwrap_or(ROUTES.len() - 1),
        )
    }

    /// Its label value.
    pub fn label(self) -> &'static str {
        ROUTES[self.0]
    }
}

/// Labels of `predictor_http_requests_total`. Borrowed route and numeric status: counting a request
/// allocates nothing once its label set has been seen.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

/// Labels of `predictor_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

/// What became of one shadow copy (`predictor_shadow_requests_total{result=…}`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ShadowResult {
    /// The candidate answered with the live `is_american`.
    Agree,
    /// The candidate answered with the other `is_american`.
    Disagree,
    /// The candidate gave no usable answer (connection, timeout, non-200, not the contract).
    Error,
    /// Not sent: too many copies already in flight.
    Dropped,
}

impl ShadowResult {
    /// The `result` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Agree => "agree",
            Self::Disagree => "disagree",
            Self::Error => "error",
            Self::Dropped => "dropped",
        }
    }
}

/// Labels of `predictor_shadow_requests_total`: the result, and the candidate's version and
/// model (first 12 hex digits) as it answered them, so an analysis counts only the copies its
/// own candidate answered (the counters of a stable pod outlive candidates). Empty when the
/// candidate did not answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    result: &'static str,
    version: String,
    model: String,
}

/// The shadow counters and the candidate-latency histogram: cheap clones of the registered
/// metrics, for the tasks that send the copies.
#[derive(Clone)]
pub struct ShadowMetrics {
    requests: Family<ShadowLabels, Counter>,
    duration: Histogram,
}

impl ShadowMetrics {
    /// Counts one copy; `version` and `model` are what the candidate answered ("" if nothing).
    pub fn count(&self, result: ShadowResult, version: &str, model: &str) {
        self.requests
            .get_or_create(&ShadowLabels {
                result: result.label(),
                version: version.into(),
                model: model.into(),
            })
            .inc();
    }

    /// Records how long the candidate took to answer one copy.
    pub fn observe(&self, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
    }
}

/// A bin's upper bound as a label value, written as a histogram writes its `le`: prometheus-client's
/// own number label, or `+Inf`.
#[derive(Clone, Copy, Debug)]
struct Le(f64);

impl EncodeLabelValue for Le {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        if self.0 == f64::INFINITY {
            "+Inf".encode(encoder)
        } else {
            self.0.encode(encoder)
        }
    }
}

/// Labels of [`drift::REFERENCE_METRIC`].
#[derive(Clone, Debug, EncodeLabelSet)]
struct ReferenceLabels {
    signal: &'static str,
    le: Le,
}

/// The model's reference as gauges, in the order of [`Signal::ALL`] and of each signal's bins (`+Inf`
/// last), as a histogram lists its buckets: a `Family` would list them in hash order. Empty (not even
/// the family's `# TYPE` line) until a model with a reference is set.
#[derive(Clone, Debug, Default)]
struct ReferenceGauges(Arc<RwLock<Vec<(ReferenceLabels, i64)>>>);

impl ReferenceGauges {
    /// Replaces the gauges with `reference`'s cumulative counts (none: no series).
    fn set(&self, reference: Option<&Profile>) {
        let mut series = Vec::new();
        for (signal, counts) in reference
            .iter()
            .flat_map(|r| Signal::ALL.map(|s| (s, r.counts(s))))
        {
            let mut cumulative = 0u64;
            for (&bound, &count) in signal.bounds().iter().zip(counts) {
                cumulative = cumulative.saturating_add(count);
                let labels = ReferenceLabels {
                    signal: signal.name(),
                    le: Le(bound),
                };
                series.push((labels, i64::try_from(cumulative).unwrap_or(i64::MAX)));
            }
        }
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = series;
    }
}

impl EncodeMetric for ReferenceGauges {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, value) in self.0.read().unwrap_or_else(|e| e.into_inner()).iter() {
            encoder.encode_family(labels)?.encode_gauge(value)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
}

/// A histogram over a drift signal's fixed bins, counted with atomics: prometheus-client's `Histogram`
/// takes a mutex per observation (its source says as much: "Consider using atomics"), and an answer
/// makes four observations, one per signal, from every serving thread; with them the batch row of
/// `bench/serve_bench.py` ran at 0.58x the tweets/s of drift off. The sum is kept in millionths, an
/// integer add (the signals are shares in [0, 1] or whole characters).
///
/// The counts are sharded: a serving thread adds to its own shard (threads take shards in turn), on cache
/// lines no other shard uses, and a scrape adds the shards up. With one set of atomics shared by the serving
/// threads, batches of 100 answers ran at 0.83x the tweets/s of drift off (docs/serving.md, 2026-12-07): the
/// threads fought over the same cache lines eight times per answer.
#[derive(Clone, Debug)]
struct BinHistogram(Arc<BinCounts>);

/// Shards per histogram: more than the serving threads of any machine we run on; a thread past them shares.
const SHARDS: usize = 8;

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard, taken in turn at its first observation.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

#[derive(Debug)]
struct BinCounts {
    signal: Signal,
    /// Words from one shard's start to the next: its bins and its sum, rounded up to whole 128-byte
    /// stretches, plus one stretch, so two shards never share a cache line however the words are aligned.
    stride: usize,
    /// [`SHARDS`] × `stride` words: shard `s`'s count per bin of `signal` (not cumulative) from `s × stride`,
    /// its sum in millionths right after them.
    words: Box<[AtomicU64]>,
}

impl BinHistogram {
    fn new(signal: Signal) -> Self {
        const WORDS_PER_STRETCH: usize = 128 / std::mem::size_of::<AtomicU64>();
        let stride = (signal.bounds().len() + 1).div_ceil(WORDS_PER_STRETCH) * WORDS_PER_STRETCH
            + WORDS_PER_STRETCH;
        Self(Arc::new(BinCounts {
            signal,
            stride,
            words: (0..SHARDS * stride).map(|_| AtomicU64::new(0)).collect(),
        }))
    }

    fn observe(&self, value: f64) {
        let counts = &self.0;
        let shard = SHARD.with(|s| *s) * counts.stride;
        counts.words[shard + counts.signal.bin(value)].fetch_add(1, Ordering::Relaxed);
        // `as` saturates (NaN: 0); the signals are never negative.
        let millionths = (value.max(0.0) * 1e6).round() as u64;
        counts.words[shard + counts.signal.bounds().len()].fetch_add(millionths, Ordering::Relaxed);
    }

    /// Word `i` of every shard, added up.
    fn total(&self, i: usize) -> u64 {
        let counts = &self.0;
        (0..SHARDS)
            .map(|s| counts.words[s * counts.stride + i].load(Ordering::Relaxed))
            .sum()
    }
}

impl EncodeMetric for BinHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let bounds = self.0.signal.bounds();
        // Relaxed loads one after another: a scrape during answers may see a bin and the sum a few
        // answers apart, as with any histogram read while it is written; the count is the bins' sum.
        let buckets: Vec<(f64, u64)> = bounds
            .iter()
            .enumerate()
            .map(|(i, &bound)| (bound, self.total(i)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.total(bounds.len()) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The drift signals: a histogram per signal over the answers, and the model's reference.
struct DriftMetrics {
    /// In [`Signal::ALL`]'s order.
    live: [BinHistogram; 4],
    reference: ReferenceGauges,
}

impl DriftMetrics {
    fn register(registry: &mut Registry) -> Self {
        let live = Signal::ALL.map(|signal| {
            let histogram = BinHistogram::new(signal);
            let help = match signal {
                Signal::Probability => "Predicted probability of the US class, per answer",
                Signal::Known => "Share of the text's n-grams the vocabulary knows, per answer",
                Signal::Length => "Length of the text in characters, per answer",
                Signal::Positive => "Predicted class (1: US), per answer",
            };
            registry.register(drift::live_metric(signal), help, histogram.clone());
            histogram
        });
        let reference = ReferenceGauges::default();
        registry.register(
            drift::REFERENCE_METRIC,
            "The model file's drift reference (its training rows): rows at or below each bound, by signal",
            reference.clone(),
        );
        Self { live, reference }
    }
}

/// Labels of the `predictor_model_info` gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelInfo {
    pub version: String,
    pub sha256: String,
    pub model_date: String,
}

/// Request counts by route and status, a latency histogram per route, predictions, readiness and the model.
pub struct Metrics {
    registry: Registry,
    /// The series of 200 answers on each of [`ROUTES`], resolved at their first use: the usual answer
    /// skips the families' lock and label hashing (a lock word every serving thread would write).
    ok: [OnceLock<(Counter, Histogram)>; ROUTES.len()],
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    predictions: Counter,
    ready: Gauge,
    model_info: Family<ModelInfo, Gauge>,
    shadow: ShadowMetrics,
    /// `None` with drift signals off.
    drift: Option<DriftMetrics>,
}

impl Default for Metrics {
    /// Every metric, drift signals on.
    fn default() -> Self {
        Self::new(true)
    }
}

impl Metrics {
    /// Every metric; the drift signals only if `drift_signals` (off: no `predictor_drift_*` family, and
    /// nothing per answer).
    pub fn new(drift_signals: bool) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS));
        let predictions = Counter::default();
        let ready = Gauge::default();
        let model_info = Family::<ModelInfo, Gauge>::default();
        let shadow = ShadowMetrics {
            requests: Family::default(),
            duration: Histogram::new(BUCKETS),
        };
        let mut registry = Registry::default();
        // NB: prometheus-client appends `_total` to counters.
        registry.register(
            "predictor_http_requests",
            "HTTP requests by route and status code",
            requests.clone(),
        );
        // NB: the unit is in the name rather than a `# UNIT` line, which some parsers refuse on histograms.
        registry.register(
            "predictor_http_request_duration_seconds",
            "Time to answer, by route",
            durations.clone(),
        );
        registry.register(
            "predictor_predictions",
            "Texts classified",
            predictions.clone(),
        );
        registry.register(
            "predictor_ready",
            "Whether a verified model is loaded and the server accepts traffic",
            ready.clone(),
        );
        registry.register(
            "predictor_model_info",
            "The model being served (value 1)",
            model_info.clone(),
        );
        registry.register(
            "predictor_shadow_requests",
            "Copies of live prediction requests sent to the candidate (--shadow-url), by result and by the candidate's version and model",
            shadow.requests.clone(),
        );
        registry.register(
            "predictor_shadow_duration_seconds",
            "Time the candidate took to answer a copy, as this server saw it",
            shadow.duration.clone(),
        );
        let drift = drift_signals.then(|| DriftMetrics::register(&mut registry));
        Self {
            registry,
            ok: Default::default(),
            requests,
            durations,
            predictions,
            ready,
            model_info,
            shadow,
            drift,
        }
    }

    /// Whether answers are to be observed ([`Metrics::observe_answer`] does nothing otherwise).
    pub fn drift_signals(&self) -> bool {
        self.drift.is_some()
    }

    /// Counts one answer into the drift histograms (with drift signals on). Allocates nothing.
    pub fn observe_answer(&self, observation: &Observation) {
        if let Some(drift) = &self.drift {
            for (signal, histogram) in Signal::ALL.into_iter().zip(&drift.live) {
                histogram.observe(observation.value(signal));
            }
        }
    }

    /// Exports the served model's reference (none: a format-1 file), replacing any earlier one.
    pub fn set_reference(&self, reference: Option<&Profile>) {
        if let Some(drift) = &self.drift {
            drift.reference.set(reference);
        }
    }

    /// Records one finished request.
    pub fn observe(&self, route: Route, status: u16, elapsed: Duration) {
        let resolve = || {
            let route = route.label();
            (
                self.requests
                    .get_or_create(&RequestLabels { route, status })
                    .clone(),
                self.durations.get_or_create(&RouteLabels { route }).clone(),
            )
        };
        let resolved;
        let (count, duration) = if status == 200 {
            self.ok[route.0].get_or_init(resolve)
        } else {
            resolved = resolve();
            &resolved
        };
        count.inc();
        duration.observe(elapsed.as_secs_f64());
    }

    /// Counts answered predictions (a batch counts each text).
    pub fn add_predictions(&self, n: u64) {
        self.predictions.inc_by(n);
    }

    /// Names the model being served (`predictor_model_info`, value 1); replaces any earlier one.
    pub fn set_model(&self, info: ModelInfo) {
        self.model_info.clear();
        self.model_info.get_or_create(&info).set(1);
    }

    /// The shadow counters, for the tasks that send copies.
    pub fn shadow(&self) -> ShadowMetrics {
        self.shadow.clone()
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`]), with `predictor_ready` set to `ready`.
    pub fn render(&self, ready: bool) -> String {
        self.ready.set(i64::from(ready));
        encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openmetrics_parser::{MetricFamily, MetricNumber, OpenMetricsType, OpenMetricsValue};

    type Family = MetricFamily<OpenMetricsType, OpenMetricsValue>;

    /// The value of the sample of `family` whose labels are exactly `labels`.
    fn sample<'a>(family: &'a Family, labels: &[(&str, &str)]) -> &'a OpenMetricsValue {
        family
            .iter_samples()
            .find(|s| {
                let set = s.get_labelset().unwrap();
                set.iter().count() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| set.get_label_value(k) == Some(*v))
            })
            .map(|s| &s.value)
            .unwrap_or_else(|| panic!("no sample {labels:?} in {}", family.family_name))
    }

    fn number(n: &MetricNumber) -> f64 {
        match n {
            MetricNumber::Float(f) => *f,
            MetricNumber::Int(i) => *i as f64,
        }
    }

    #[test]
    fn a_path_is_its_route_or_other() {
        let labels = [
            "/api/american",
            "/api/american/",
            "/healthz",
            "/",
            "/drain",
            "/nope",
            "",
        ]
        .map(|path| Route::of(path).label());
        assert_eq!(
            labels,
            [
                "/api/american",
                "other",
                "/healthz",
                "/",
                "other",
                "other",
                "other"
            ]
        );
    }

    #[test]
    fn exposition_parses_with_names_labels_and_values() {
        let m = Metrics::default();
        m.observe(Route::of("/api/american"), 200, Duration::from_micros(300));
        m.observe(Route::of("/api/american"), 200, Duration::from_millis(3));
        m.observe(Route::of("/api/american"), 400, Duration::from_micros(50));
        m.observe(Route::of("/healthz"), 200, Duration::from_secs(2));
        m.add_predictions(5);
        // A version label with every character the format escapes.
        let version = "0.2 \"beta\" C:\\x\nnext";
        m.set_model(ModelInfo {
            version: version.into(),
            sha256: "ab".repeat(32),
            model_date: "2026-11-24T00:00:00Z".into(),
        });
        let text = m.render(true);
        assert!(text.ends_with("# EOF\n"), "{text}");
        let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&text)
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        let family = |name: &str| {
            parsed
                .families
                .get(name)
                .unwrap_or_else(|| panic!("no family {name} in {text}"))
        };

        let requests = family("predictor_http_requests");
        assert_eq!(requests.family_type, OpenMetricsType::Counter);
        let count = |route, status| match sample(requests, &[("route", route), ("status", status)])
        {
            OpenMetricsValue::Counter(c) => number(&c.value),
            other => panic!("{other:?}"),
        };
        assert_eq!(count("/api/american", "200"), 2.0);
        assert_eq!(count("/api/american", "400"), 1.0);
        assert_eq!(count("/healthz", "200"), 1.0);
        assert_eq!(requests.iter_samples().count(), 3);

        let durations = family("predictor_http_request_duration_seconds");
        assert_eq!(durations.family_type, OpenMetricsType::Histogram);
        let OpenMetricsValue::Histogram(h) = sample(durations, &[("route", "/api/american")])
        else {
            panic!("not a histogram")
        };
        assert_eq!(h.count, Some(3));
        assert!((number(h.sum.as_ref().unwrap()) - 0.00335).abs() < 1e-9);
        let bounds: Vec<f64> = h.buckets.iter().map(|b| b.upper_bound).collect();
        assert_eq!(bounds[..BUCKETS.len()], BUCKETS);
        assert_eq!(bounds.last(), Some(&f64::INFINITY));
        // Cumulative: 50 µs in every bucket, 300 µs from 0.0005 on, 3 ms from 0.005 on.
        let cumulative: Vec<f64> = h.buckets.iter().map(|b| number(&b.count)).collect();
        assert_eq!(
            cumulative,
            [
                1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0
            ]
        );
        let OpenMetricsValue::Histogram(slow) = sample(durations, &[("route", "/healthz")]) else {
            panic!("not a histogram")
        };
        assert_eq!(number(&slow.buckets[BUCKETS.len() - 1].count), 0.0);
        assert_eq!(number(&slow.buckets[BUCKETS.len()].count), 1.0);

        let predictions = family("predictor_predictions");
        assert_eq!(predictions.family_type, OpenMetricsType::Counter);
        match sample(predictions, &[]) {
            OpenMetricsValue::Counter(c) => assert_eq!(number(&c.value), 5.0),
            other => panic!("{other:?}"),
        }

        let ready = family("predictor_ready");
        assert_eq!(ready.family_type, OpenMetricsType::Gauge);
        assert!(matches!(sample(ready, &[]), OpenMetricsValue::Gauge(n) if number(n) == 1.0));

        let info = family("predictor_model_info");
        assert_eq!(info.family_type, OpenMetricsType::Gauge);
        let sha = "ab".repeat(32);
        let value = sample(
            info,
            &[
                ("version", version),
                ("sha256", &sha),
                ("model_date", "2026-11-24T00:00:00Z"),
            ],
        );
        assert!(matches!(value, OpenMetricsValue::Gauge(n) if number(n) == 1.0));
    }

    /// The lines of `text` about drift.
    fn drift_lines(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.contains("predictor_drift"))
            .collect()
    }

    #[test]
    fn a_histogram_adds_up_the_shards_every_thread_counted_into() {
        let histogram = BinHistogram::new(Signal::Length);
        // More threads than shards: some share one, and nothing is lost either way.
        std::thread::scope(|s| {
            for t in 0..SHARDS + 3 {
                let histogram = &histogram;
                s.spawn(move || {
                    for _ in 0..1000 {
                        histogram.observe(if t % 2 == 0 { 30.0 } else { 300.0 });
                    }
                });
            }
        });
        let threads = (SHARDS + 3) as u64;
        let (short, long) = (threads.div_ceil(2), threads / 2);
        let bins = Signal::Length.bounds().len();
        let counts: Vec<u64> = (0..bins).map(|i| histogram.total(i)).collect();
        assert_eq!(counts.iter().sum::<u64>(), threads * 1000);
        assert_eq!(counts[Signal::Length.bin(30.0)], short * 1000);
        assert_eq!(counts[Signal::Length.bin(300.0)], long * 1000);
        assert_eq!(
            histogram.total(bins),
            (short * 30 + long * 300) * 1000 * 1_000_000
        );
        // No two shards share a cache line: a stride of whole 128-byte stretches, one more than the words.
        let stride = histogram.0.stride;
        assert!(
            stride.is_multiple_of(16) && stride >= bins + 1 + 16,
            "{stride}"
        );
    }

    #[test]
    fn drift_signals_are_histograms_of_the_answers_beside_the_reference_gauges() {
        let m = Metrics::new(true);
        assert!(m.drift_signals());
        let answer = |probability, known, ngrams, length, is_american| Observation {
            probability,
            known,
            ngrams,
            length,
            is_american,
        };
        m.observe_answer(&answer(0.95, 3, 4, 30, true));
        m.observe_answer(&answer(0.05, 0, 0, 300, false));
        let mut reference = Profile::empty();
        reference.observe(&answer(0.35, 1, 2, 15, false));
        m.set_reference(Some(&reference));
        let text = m.render(true);
        openmetrics_parser::openmetrics::parse_openmetrics(&text)
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        let bucket = |name: &str, le: &str, n: u64| format!("{name}_bucket{{le=\"{le}\"}} {n}");
        let mut expected = Vec::new();
        // Per signal: its help, its buckets (the bins, `+Inf` last: cumulative), sum and count.
        for (signal, help, sum, counts) in [
            (
                "probability",
                "Predicted probability of the US class, per answer",
                "1.0",
                [1, 1, 1, 1, 1, 1, 1, 1, 1, 2].as_slice(),
            ),
            (
                "known",
                "Share of the text's n-grams the vocabulary knows, per answer",
                "0.75",
                &[1, 1, 1, 1, 1, 1, 1, 2, 2, 2],
            ),
            (
                "length",
                "Length of the text in characters, per answer",
                "330.0",
                &[0, 0, 1, 1, 1, 1, 1, 1, 1, 2],
            ),
            (
                "positive",
                "Predicted class (1: US), per answer",
                "1.0",
                &[1, 2],
            ),
        ] {
            let name = format!("predictor_drift_{signal}");
            expected.push(format!("# HELP {name} {help}."));
            expected.push(format!("# TYPE {name} histogram"));
            expected.push(format!("{name}_sum {sum}"));
            expected.push(format!("{name}_count 2"));
            let signal = Signal::from_name(signal).unwrap();
            for (bound, n) in signal.bounds().iter().zip(counts) {
                let le = if bound.is_infinite() {
                    "+Inf".to_string()
                } else {
                    format!("{bound:?}")
                };
                expected.push(bucket(&name, &le, *n));
            }
        }
        expected.push(
            "# HELP predictor_drift_reference The model file's drift reference (its training rows): \
             rows at or below each bound, by signal."
                .into(),
        );
        expected.push("# TYPE predictor_drift_reference gauge".into());
        // 0.35 (bin 0.4), 1 of 2 known (0.5), 15 characters (20.0), not US (0.0).
        for (signal, first) in [
            ("probability", 3),
            ("known", 4),
            ("length", 1),
            ("positive", 0),
        ] {
            let signal = Signal::from_name(signal).unwrap();
            for (i, bound) in signal.bounds().iter().enumerate() {
                let le = if bound.is_infinite() {
                    "+Inf".to_string()
                } else {
                    format!("{bound:?}")
                };
                expected.push(format!(
                    "predictor_drift_reference{{signal=\"{}\",le=\"{le}\"}} {}",
                    signal.name(),
                    u8::from(i >= first)
                ));
            }
        }
        assert_eq!(drift_lines(&text), expected, "{text}");

        // A model without a reference: no reference family at all; off: no drift family at all.
        m.set_reference(None);
        let text = m.render(true);
        assert!(!text.contains("predictor_drift_reference"), "{text}");
        assert_eq!(drift_lines(&text).len(), 4 * 4 + 10 * 3 + 2, "{text}");
        let off = Metrics::new(false);
        off.observe_answer(&answer(0.5, 1, 1, 1, true));
        off.set_reference(Some(&reference));
        assert!(!off.drift_signals());
        assert_eq!(drift_lines(&off.render(true)), Vec::<&str>::new());
    }

    #[test]
    fn readiness_follows_the_render_argument_and_one_model_is_named() {
        let m = Metrics::default();
        assert!(!m.render(false).contains("predictor_model_info{"));
        let info = |sha: &str| ModelInfo {
            version: "0.1".into(),
            sha256: sha.into(),
            model_date: "d".into(),
        };
        m.set_model(info("aa"));
        m.set_model(info("bb"));
        let text = m.render(false);
        let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&text).unwrap();
        let ready = &parsed.families["predictor_ready"];
        assert!(matches!(sample(ready, &[]), OpenMetricsValue::Gauge(n) if number(n) == 0.0));
        let models = &parsed.families["predictor_model_info"];
        assert_eq!(models.iter_samples().count(), 1, "{text}");
        sample(
            models,
            &[("version", "0.1"), ("sha256", "bb"), ("model_date", "d")],
        );
    }
}
