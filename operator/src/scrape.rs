//! Reading a canary analysis' samples from the predictor pods themselves: which pods are stable
//! and which run the candidate, `GET /metrics` of each (behind [`PodMetrics`], so reconcile tests
//! fake it), and the few series the analysis needs parsed out of the exposition.

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::analysis::{Histogram, Samples};
use crate::crd::Candidate;
use crate::error::{Error, Result};
use crate::resources::{CONTAINER, ENV_MODEL_SHA256, TRACK_CANARY, TRACK_LABEL};

/// Where the metrics of a pod come from.
pub trait PodMetrics: Send + Sync {
    /// The OpenMetrics text of the predictor at `address` (`ip:port`), or why not.
    fn fetch<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<String, String>>;
}

/// Longest `/metrics` answer read from a pod: a predictor's is a few KiB, and a pod runs an image
/// its team chose, so what it answers is bounded like any other body the operator reads (the
/// reconcile reserves this much of the memory budget around each scrape).
pub const MAX_BYTES: u64 = 4 << 20;

/// [`PodMetrics`] over HTTP: `GET http://<pod ip>:<port>/metrics`, bounded in time (the client's
/// timeout covers the whole answer, body included) and in size ([`MAX_BYTES`]).
pub struct HttpPodMetrics {
    client: reqwest::Client,
}

impl HttpPodMetrics {
    /// A client whose every request ends within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self> {
        let client = model_store::tls::bounded_client(timeout, timeout)
            .build()
            .map_err(|e| Error::Scrape {
                pod: "(client)".into(),
                reason: e.to_string(),
            })?;
        Ok(Self { client })
    }
}

impl PodMetrics for HttpPodMetrics {
    fn fetch<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let response = self
                .client
                .get(format!("http://{address}/metrics"))
                .send()
                .await
                .map_err(|e| model_store::transport::describe_reqwest(&e))?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status().as_u16()));
            }
            read_text(response, MAX_BYTES).await
        })
    }
}

/// The body of `response` as text, refused (with a size, never its content) past `max_bytes`:
/// before reading when the answer states its length, else as soon as it passes the limit.
async fn read_text(mut response: reqwest::Response, max_bytes: u64) -> Result<String, String> {
    let too_large = |len| {
        format!(
            "the /metrics answer is too large: {}",
            model_store::transport::too_large(len, max_bytes)
        )
    };
    if let Some(len) = response.content_length().filter(|&len| len > max_bytes) {
        return Err(too_large(Some(len)));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| model_store::transport::describe_reqwest(&e))?
    {
        if body.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(too_large(None));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| "the /metrics answer is not UTF-8 text".into())
}

/// The ready pods to measure, as `ip:port`: the stable ones, and the canary ones that run
/// `candidate` (a canary pod of an earlier candidate, still terminating, is not counted).
pub fn targets(pods: &[Pod], port: i32, candidate: &Candidate) -> (Vec<String>, Vec<String>) {
    let mut stable = Vec::new();
    let mut canary = Vec::new();
    for pod in pods.iter().filter(|p| is_ready(p)) {
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()) else {
            continue;
        };
        let address = format!("{ip}:{port}");
        if pod.labels().get(TRACK_LABEL).map(String::as_str) != Some(TRACK_CANARY) {
            stable.push(address);
        } else if runs(pod, candidate) {
            canary.push(address);
        }
    }
    (stable, canary)
}

/// The pods whose drift signals are read, as `(pod name, ip:port)`: Predictor `name`'s ready
/// stable pods in `namespace` (by the labels the operator sets on them; never a pod of another
/// namespace), at most [`crate::drift::MAX_PODS`], first by name.
pub fn drift_targets<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    namespace: &str,
    name: &str,
    port: i32,
) -> Vec<(String, String)> {
    let mut targets: Vec<(String, String)> = pods
        .into_iter()
        .filter(|pod| crate::status::is_ready_stable_pod(pod, namespace, name))
        .filter_map(|pod| {
            let ip = pod.status.as_ref()?.pod_ip.as_deref()?;
            Some((pod.name_any(), format!("{ip}:{port}")))
        })
        .collect();
    targets.sort();
    targets.truncate(crate::drift::MAX_PODS);
    targets
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether `pod`'s predictor container runs `candidate`'s image and model.
fn runs(pod: &Pod, candidate: &Candidate) -> bool {
    let Some(container) = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == CONTAINER))
    else {
        return false;
    };
    let model = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == ENV_MODEL_SHA256)
        .and_then(|e| e.value.as_deref());
    container.image.as_deref() == Some(candidate.image.as_str())
        && model == Some(candidate.model_sha256.as_str())
}

/// The route whose requests are the samples.
const ROUTE: &str = "/api/american";

/// What one predictor's `/metrics` says about `POST /api/american` and, on a stable pod, about
/// the shadow copies `candidate` answered (matched by the version and model it answered with).
/// Lines it does not need, or cannot read, are skipped.
pub fn parse(text: &str, candidate: &Candidate) -> Samples {
    let model = crate::status::short(&candidate.model_sha256);
    let mut samples = Samples::default();
    let mut buckets = Histogram::default();
    for (name, labels, value) in text.lines().filter_map(parse_line) {
        let label = |key: &str| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        // Counters are integers; a float read is rounded, a negative or NaN one counts 0.
        let count = value.max(0.0).round() as u64;
        match name.as_str() {
            "predictor_http_requests_total" if label("route") == Some(ROUTE) => {
                samples.requests += count;
                let status: u16 = label("status").and_then(|s| s.parse().ok()).unwrap_or(0);
                if status >= 500 || status == 408 {
                    samples.errors += count;
                }
            }
            "predictor_http_request_duration_seconds_bucket" if label("route") == Some(ROUTE) => {
                let bound = match label("le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(le) => match le.parse() {
                        Ok(b) => b,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                buckets.buckets.push((bound, count));
            }
            "predictor_shadow_requests_total"
                if label("version") == Some(candidate.version.as_str())
                    && label("model") == Some(model) =>
            {
                match label("result") {
                    Some("agree") => samples.agreed += count,
                    Some("disagree") => samples.disagreed += count,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    samples.latency.merge(&buckets);
    samples
}

/// The `key="value"` pairs of one sample line, in order.
type Labels = Vec<(String, String)>;

/// One sample line of the text format: `name{key="value",…} value`; `None` for comments, blank
/// lines and anything malformed.
pub(crate) fn parse_line(line: &str) -> Option<(String, Labels, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inside) => parse_labels(inside)?,
        None => (Vec::new(), rest),
    };
    // The value, then possibly a timestamp or an exemplar: only the first field matters.
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name.to_string(), labels, value))
}

/// `key="value",…}` → the pairs and what follows the `}`. Values unescape `\\`, `\"` and `\n`.
fn parse_labels(mut s: &str) -> Option<(Labels, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches(',');
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_string(), value));
        s = &rest[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn candidate() -> Candidate {
        Candidate {
            image: "r/p:0.3@sha256:1".into(),
            model_sha256: crate::fixtures::SHA_B.into(),
            version: "0.3".into(),
        }
    }

    /// What a stable predictor's `/metrics` looks like (encoded by the predictor crate itself).
    #[test]
    fn a_real_exposition_reads_back() {
        use predictor::metrics::Route;
        let metrics = predictor::metrics::Metrics::default();
        for (status, micros) in [(200, 300), (200, 3000), (503, 50), (400, 50)] {
            metrics.observe(
                Route::of("/api/american"),
                status,
                Duration::from_micros(micros),
            );
        }
        metrics.observe(Route::of("/healthz"), 200, Duration::from_secs(2));
        let shadow = metrics.shadow();
        let model = &crate::fixtures::SHA_B[..12];
        shadow.count(predictor::metrics::ShadowResult::Agree, "0.3", model);
        shadow.count(predictor::metrics::ShadowResult::Agree, "0.3", model);
        shadow.count(predictor::metrics::ShadowResult::Disagree, "0.3", model);
        // Another candidate's copies, and unattributable errors: not this analysis'.
        shadow.count(predictor::metrics::ShadowResult::Disagree, "0.2", model);
        shadow.count(predictor::metrics::ShadowResult::Error, "", "");
        let samples = parse(&metrics.render(true), &candidate());
        assert_eq!(
            (
                samples.requests,
                samples.errors,
                samples.agreed,
                samples.disagreed
            ),
            (4, 1, 2, 1)
        );
        assert_eq!(samples.latency.count(), 4);
        // 50 µs twice (≤ 0.0001), 300 µs (≤ 0.0005), 3 ms (≤ 0.005).
        assert_eq!(samples.latency.buckets[0], (0.0001, 2));
        assert_eq!(samples.latency.buckets[2], (0.0005, 3));
        assert_eq!(samples.latency.buckets[5], (0.005, 4));
    }

    /// A predictor serving a model trained on `csv` at a loopback address, copying to `shadow`
    /// if given: (its `ip:port`, the model's sha256). Returns once it is ready.
    async fn serve(
        store: &model_store::testing::FileServer,
        name: &str,
        csv: &str,
        version: &str,
        shadow: Option<predictor::shadow::ShadowConfig>,
    ) -> (String, String) {
        let (bytes, sha) =
            predictor::testing::trained_model(csv.as_bytes(), "2026-11-25T00:00:00Z");
        let mut config =
            predictor::server::ServeConfig::new(store.put(name, bytes), sha.clone(), version);
        config.shadow = shadow;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(predictor::server::run(
            listener,
            config,
            std::future::pending::<Duration>(),
        ));
        let client = reqwest::Client::new();
        for _ in 0..100 {
            let ready = client
                .get(format!("http://{address}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return (address, sha);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the predictor at {address} never became ready");
    }

    /// Real predictors on loopback: a stable one copying every request to a candidate. What the
    /// operator reads from their `/metrics` feeds the analysis: a model trained on shuffled labels
    /// is caught disagreeing; the same model agrees on every copy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_predictors_feed_the_analysis() {
        use crate::analysis::{Verdict, judge};
        let sample = predictor::sample::SAMPLE_CSV;
        let store = model_store::testing::FileServer::start();
        let metrics = HttpPodMetrics::new(Duration::from_secs(2)).unwrap();
        let texts: Vec<&str> = sample
            .lines()
            .skip(1)
            .filter_map(|l| l.rsplit_once(',').map(|(text, _)| text))
            .take(60)
            .collect();
        let spec = crate::crd::AnalysisSpec {
            min_samples: 50,
            max_disagreement: Some(0.05),
            max_error_rate: Some(0.01),
            max_p99_latency_ratio: None,
            deadline_seconds: 600,
        };
        let shuffled = crate::fixtures::shuffled_labels(sample, 7);
        for (candidate_csv, expect_pass) in [(shuffled.as_str(), false), (sample, true)] {
            let (candidate_at, candidate_sha) =
                serve(&store, "/candidate.model", candidate_csv, "0.3", None).await;
            let shadow =
                predictor::shadow::ShadowConfig::new(format!("http://{candidate_at}"), 100);
            let (stable_at, _) = serve(&store, "/stable.model", sample, "0.2", Some(shadow)).await;
            let client = predictor::client::http_client(Duration::from_secs(5)).unwrap();
            for text in &texts {
                let (status, _) = predictor::client::predict_remote(
                    &client,
                    &format!("http://{stable_at}"),
                    text,
                )
                .await
                .unwrap();
                assert_eq!(status, 200);
            }
            let candidate = Candidate {
                image: String::new(),
                model_sha256: candidate_sha,
                version: "0.3".into(),
            };
            // The copies run apart from the answers: wait (at most 5 s) until all are counted.
            let mut stable = Samples::default();
            for _ in 0..100 {
                stable = parse(&metrics.fetch(&stable_at).await.unwrap(), &candidate);
                if stable.agreed + stable.disagreed == texts.len() as u64 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(stable.requests, texts.len() as u64);
            assert_eq!(stable.agreed + stable.disagreed, texts.len() as u64);
            let canary = parse(&metrics.fetch(&candidate_at).await.unwrap(), &candidate);
            assert_eq!(canary.requests, texts.len() as u64, "every copy reached it");
            assert_eq!(canary.latency.count(), texts.len() as u64);
            let verdict = judge(&spec, &stable, &canary, Duration::ZERO);
            match (expect_pass, &verdict) {
                (true, Verdict::Pass { measured, .. }) => {
                    assert_eq!(measured.disagreement, Some(0.0))
                }
                (false, Verdict::Fail { reason, .. }) => {
                    assert_eq!(*reason, crate::analysis::reason::DISAGREEMENT_TOO_HIGH)
                }
                _ => panic!("{verdict:?}"),
            }
        }
        // A pod that does not answer: an error, not a panic.
        assert!(metrics.fetch("127.0.0.1:9").await.is_err());
    }

    /// A pod answering `/metrics` with far more than [`MAX_BYTES`] (64 MiB, no length stated): the
    /// scrape stops at the limit with a reason that names sizes, not content; one that states its
    /// length is refused before reading.
    #[tokio::test]
    async fn an_oversized_metrics_answer_is_refused_as_too_large() {
        let junk = model_store::testing::JunkServer::start(Some(64 << 20));
        let address = junk.url.trim_start_matches("http://").to_string();
        let metrics = HttpPodMetrics::new(Duration::from_secs(10)).unwrap();
        let reason = metrics.fetch(&address).await.unwrap_err();
        assert_eq!(
            reason,
            "the /metrics answer is too large: more than the 4194304-byte limit"
        );
        // It read no more than the limit and what the sockets buffer.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            junk.sent() < MAX_BYTES + (16 << 20),
            "{} bytes sent",
            junk.sent()
        );

        let store = model_store::testing::FileServer::start();
        store.put("/metrics", vec![b'#'; (MAX_BYTES + 1) as usize]);
        let reason = metrics
            .fetch(&format!("127.0.0.1:{}", store.port))
            .await
            .unwrap_err();
        assert_eq!(
            reason,
            "the /metrics answer is too large: 4194305 bytes is more than the 4194304-byte limit"
        );
    }

    #[test]
    fn label_values_unescape_and_junk_is_skipped() {
        assert_eq!(
            parse_line(r#"m_total{a="x\"y",b="c\\d\ne"} 3 1700000000"#),
            Some((
                "m_total".into(),
                vec![("a".into(), "x\"y".into()), ("b".into(), "c\\d\ne".into())],
                3.0
            ))
        );
        assert_eq!(parse_line("plain 1.5"), Some(("plain".into(), vec![], 1.5)));
        for junk in [
            "# TYPE x counter",
            "",
            "x{a=\"1\"",
            "x{a=\"1\"} notanumber",
            "x",
        ] {
            assert_eq!(parse_line(junk), None, "{junk:?}");
        }
    }

    fn pod(name: &str, canary: bool, ready: bool, image: &str, model: &str) -> Pod {
        let mut labels = json!({"app.kubernetes.io/instance": "american"});
        if canary {
            labels["mlops.dev/track"] = json!("canary");
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "team-a", "labels": labels},
            "spec": {"containers": [{"name": "predictor", "image": image,
                "env": [{"name": "MODEL_SHA256", "value": model}]}]},
            "status": {
                "podIP": format!("10.0.0.{}", name.len()),
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn drift_reads_only_the_predictors_ready_stable_pods_in_its_namespace() {
        let p = crate::fixtures::predictor("american", "team-a");
        let d = crate::fixtures::deployment_of(&p).rolled_out(2);
        let pod = |name: &str, ip: &str| {
            let mut pod = crate::fixtures::ready_pod(&d, name, "node-a");
            pod.status.as_mut().unwrap().pod_ip = Some(ip.into());
            pod
        };
        let mut canary = pod("american-canary-1", "10.0.0.3");
        canary
            .labels_mut()
            .insert(TRACK_LABEL.into(), TRACK_CANARY.into());
        let mut elsewhere = pod("american-x", "10.0.9.9");
        elsewhere.metadata.namespace = Some("team-b".into());
        let mut not_ready = pod("american-y", "10.0.0.5");
        not_ready.status.as_mut().unwrap().conditions = None;
        let mut other = pod("other-1", "10.0.0.6");
        other
            .labels_mut()
            .insert("app.kubernetes.io/instance".into(), "other".into());
        let no_ip = {
            let mut p = pod("american-z", "");
            p.status.as_mut().unwrap().pod_ip = None;
            p
        };
        let pods = [
            pod("american-b", "10.0.0.2"),
            pod("american-a", "10.0.0.1"),
            canary,
            elsewhere,
            not_ready,
            other,
            no_ip,
        ];
        assert_eq!(
            drift_targets(&pods, "team-a", "american", 5008),
            [
                ("american-a".to_string(), "10.0.0.1:5008".to_string()),
                ("american-b".to_string(), "10.0.0.2:5008".to_string())
            ]
        );
        // A Predictor of many pods: a bounded sample.
        let many: Vec<Pod> = (0..100)
            .map(|i| pod(&format!("american-{i:03}"), &format!("10.1.0.{i}")))
            .collect();
        let targets = drift_targets(&many, "team-a", "american", 5008);
        assert_eq!(targets.len(), crate::drift::MAX_PODS);
        assert_eq!(targets[0].0, "american-000");
    }

    #[test]
    fn ready_pods_split_into_stable_and_the_candidates_canary() {
        let c = candidate();
        let pods = [
            pod("s", false, true, "r/p:0.2@sha256:0", crate::fixtures::SHA_A),
            pod(
                "s-not-ready",
                false,
                false,
                "r/p:0.2@sha256:0",
                crate::fixtures::SHA_A,
            ),
            pod("can", true, true, &c.image, &c.model_sha256),
            // An earlier candidate's canary pod, still there.
            pod("cana", true, true, "r/p:0.25@sha256:9", &c.model_sha256),
        ];
        let (stable, canary) = targets(&pods, 5008, &c);
        assert_eq!(stable, ["10.0.0.1:5008"]);
        assert_eq!(canary, ["10.0.0.3:5008"]);
    }
}
