//! Prometheus metrics of the server, kept in atomics and rendered as text on `/metrics`.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// Request counts by route and status, and a latency histogram per route.
#[derive(Default)]
pub struct Metrics {
    routes: Mutex<Vec<RouteMetrics>>,
    model_info: Mutex<Option<ModelInfo>>,
    predictions: AtomicU64,
}

/// Labels of the `predictor_model_info` gauge.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub version: String,
    pub sha256: String,
    pub model_date: String,
}

struct RouteMetrics {
    route: &'static str,
    by_status: Vec<(u16, u64)>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, route: &'static str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let index = match routes.iter().position(|r| r.route == route) {
            Some(i) => i,
            None => {
                routes.push(RouteMetrics {
                    route,
                    by_status: Vec::new(),
                    buckets: [0; BUCKETS.len()],
                    count: 0,
                    sum_seconds: 0.0,
                });
                routes.len() - 1
            }
        };
        let r = &mut routes[index];
        match r.by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => r.by_status.push((status, 1)),
        }
        for (bound, bucket) in BUCKETS.iter().zip(r.buckets.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        r.count += 1;
        r.sum_seconds += seconds;
    }

    /// Counts answered predictions (a batch counts each text).
    pub fn add_predictions(&self, n: u64) {
        self.predictions.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_model(&self, info: ModelInfo) {
        *self.model_info.lock().unwrap_or_else(|e| e.into_inner()) = Some(info);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, ready: bool) -> String {
        let mut out = String::new();
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str(
            "# HELP predictor_http_requests_total HTTP requests by route and status code.\n",
        );
        out.push_str("# TYPE predictor_http_requests_total counter\n");
        for r in routes.iter() {
            for (status, n) in &r.by_status {
                let _ = writeln!(
                    out,
                    "predictor_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    r.route
                );
            }
        }
        out.push_str("# HELP predictor_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE predictor_http_request_duration_seconds histogram\n");
        for r in routes.iter() {
            for (bound, n) in BUCKETS.iter().zip(r.buckets) {
                let _ = writeln!(
                    out,
                    "predictor_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{bound}\"}} {n}",
                    r.route
                );
            }
            let _ = writeln!(
                out,
                "predictor_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}",
                r.route, r.count
            );
            let _ = writeln!(
                out,
                "predictor_http_request_duration_seconds_sum{{route=\"{}\"}} {}",
                r.route, r.sum_seconds
            );
            let _ = writeln!(
                out,
                "predictor_http_request_duration_seconds_count{{route=\"{}\"}} {}",
                r.route, r.count
            );
        }
        drop(routes);
        out.push_str("# HELP predictor_predictions_total Texts classified.\n# TYPE predictor_predictions_total counter\n");
        let _ = writeln!(
            out,
            "predictor_predictions_total {}",
            self.predictions.load(Ordering::Relaxed)
        );
        out.push_str("# HELP predictor_ready Whether a verified model is loaded and the server accepts traffic.\n");
        out.push_str("# TYPE predictor_ready gauge\n");
        let _ = writeln!(out, "predictor_ready {}", u8::from(ready));
        if let Some(info) = self
            .model_info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            out.push_str("# HELP predictor_model_info The model being served.\n# TYPE predictor_model_info gauge\n");
            let _ = writeln!(
                out,
                "predictor_model_info{{version=\"{}\",sha256=\"{}\",model_date=\"{}\"}} 1",
                escape(&info.version),
                escape(&info.sha256),
                escape(&info.model_date)
            );
        }
        out
    }
}

/// Escapes a Prometheus label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_histogram_and_model_info() {
        let m = Metrics::default();
        m.observe("/api/american", 200, Duration::from_micros(300));
        m.observe("/api/american", 200, Duration::from_millis(3));
        m.observe("/api/american", 400, Duration::from_micros(50));
        m.set_model(ModelInfo {
            version: "0.2".into(),
            sha256: "ab".into(),
            model_date: "2026-11-24T00:00:00Z".into(),
        });
        let text = m.render(true);
        assert!(
            text.contains(
                "predictor_http_requests_total{route=\"/api/american\",status=\"200\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "predictor_http_requests_total{route=\"/api/american\",status=\"400\"} 1\n"
            )
        );
        assert!(text.contains("predictor_http_request_duration_seconds_bucket{route=\"/api/american\",le=\"0.0005\"} 2\n"));
        assert!(text.contains("le=\"+Inf\"} 3\n"));
        assert!(text.contains("predictor_model_info{version=\"0.2\",sha256=\"ab\",model_date=\"2026-11-24T00:00:00Z\"} 1"));
        assert!(text.contains("predictor_ready 1"));
    }
}
