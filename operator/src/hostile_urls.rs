//! A team names URLs the operator reads: read as a hostile team member would, through the real
//! model checker and quality gate against loopback servers.
//!
//! - Nothing a URL answers is echoed: a cluster-internal service answering a secret-looking line
//!   (as a CSV header, as a model file, as an HTTP, S3 or registry error body, in a status line or
//!   a header) shows in no ModelCheck or QualityCheck message, status, Event or metric. Digests,
//!   sizes, statuses and the redacted URL only.
//! - `file://` and bare paths are refused before anything is read, from the spec and from the
//!   `MODEL_URL` a Deployment says it serves (a Deployment edited by hand).
//! - S3 keys of a credentials Secret are never signed for an endpoint the Secret does not name: no
//!   request leaves for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use model_store::StoreAccess;
use model_store::s3::S3Settings;
use model_store::testing::FileServer;
use predictor::testing::trained_model;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::crd::{DataSpec, ModelSpec, PredictorSpec, S3Spec, ValidationSpec};
use crate::fixtures::{SHA_A, deployment_of, observed_of, predictor, time};
use crate::metrics::Metrics;
use crate::model_access::{CONSENT_LABEL, ENDPOINT_KEY, check_model};
use crate::model_check::ModelChecker;
use crate::quality::{DATA_MAX_BYTES, QualityGate};
use crate::resources::Served;
use crate::status::{ModelCheck, Observed, QualityCheck, compute_status, reason, status_events};
use crate::store_url::{DATA_URL, MODEL_URL};

/// What the internal service answers: it must never come back out.
const SECRET: &str = "AKIAEXAMPLEINTERNAL,s3cr3t-internal-token";
/// Connections an [`Internal`] server takes at most (a test makes a handful).
const MAX_CONNECTIONS: usize = 64;

fn assert_no_echo(text: &str) {
    for word in [
        "AKIAEXAMPLEINTERNAL",
        "s3cr3t-internal-token",
        "AKIA",
        "s3cr3t",
    ] {
        assert!(!text.contains(word), "{word:?} echoed in {text:?}");
    }
}

/// A cluster-internal service on loopback: a raw HTTP answer per path (else 404); counts its
/// connections.
struct Internal {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// The request lines it was sent (`GET /path?query HTTP/1.1`).
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Internal {
    async fn start(answers: Vec<(String, Vec<u8>)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, answers)
    }

    fn start_on(listener: tokio::net::TcpListener, answers: Vec<(String, Vec<u8>)>) -> Self {
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::default();
        let (counted, seen) = (Arc::clone(&connections), Arc::clone(&requests));
        let answers = Arc::new(answers);
        tokio::spawn(async move {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(answer(socket, Arc::clone(&answers), Arc::clone(&seen)));
            }
        });
        Self {
            addr,
            connections,
            requests,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn answer(
    mut socket: tokio::net::TcpStream,
    answers: Arc<Vec<(String, Vec<u8>)>>,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
        match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    seen.lock()
        .unwrap()
        .push(head.lines().next().unwrap_or_default().to_string());
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or(target);
    let response = answers
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec());
    let _ = socket.write_all(&response).await;
    let _ = socket.shutdown().await;
}

/// A raw HTTP response: `status` line (e.g. `403 Forbidden`), extra header lines, body.
fn response(status: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status}\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    text.into_bytes()
}

/// An error answer that quotes the secret everywhere it can: its reason phrase, a header and a
/// JSON body.
fn denied() -> Vec<u8> {
    response(
        "403 AKIAEXAMPLEINTERNAL",
        &[
            "x-error: s3cr3t-internal-token",
            "content-type: application/json",
        ],
        &format!(r#"{{"error":"{SECRET}","message":"{SECRET}"}}"#),
    )
}

fn sha(bytes: &[u8]) -> String {
    predictor::model::sha256_hex(bytes)
}

/// The good model and the sample as validation data, from an honest store.
struct Honest {
    _files: FileServer,
    model: ModelSpec,
    data: DataSpec,
}

fn honest() -> Honest {
    let files = FileServer::start();
    let csv = predictor::sample::SAMPLE_CSV;
    let (model_bytes, sha256) = trained_model(csv.as_bytes(), "2026-12-04T00:00:00Z");
    let model = ModelSpec {
        url: files.put("/good.model", model_bytes),
        sha256,
        ..ModelSpec::default()
    };
    let data = DataSpec {
        url: files.put("/eval.csv", csv),
        sha256: sha(csv.as_bytes()),
    };
    Honest {
        _files: files,
        model,
        data,
    }
}

fn gated(model: &ModelSpec, data: &DataSpec, max_drop: Option<f64>) -> PredictorSpec {
    let mut spec = predictor("american", "team-a").spec;
    spec.model = model.clone();
    spec.validation = Some(ValidationSpec {
        data: data.clone(),
        min_accuracy: Some(0.5),
        max_accuracy_drop: max_drop,
    });
    spec
}

fn gate() -> QualityGate {
    QualityGate::new(&checker(), DATA_MAX_BYTES)
}

fn checker() -> ModelChecker {
    crate::fixtures::checker(true, 1 << 24, Duration::from_secs(5))
}

fn failed(check: QualityCheck) -> (String, String) {
    match check {
        QualityCheck::Failed { reason, message } => (reason, message),
        other => panic!("not refused: {other:?}"),
    }
}

fn rejected(check: ModelCheck) -> (String, String) {
    match check {
        ModelCheck::Rejected { reason, message } => (reason, message),
        other => panic!("not refused: {other:?}"),
    }
}

/// The status and Events a Predictor shows for `model` and `quality`: all of it must be clean.
fn assert_status_and_events_clean(model: ModelCheck, quality: QualityCheck) {
    let mut p = predictor("american", "team-a");
    let d = deployment_of(&p).rolled_out(2);
    let before = observed_of(&p, Some(&d));
    p.status = Some(compute_status(&p, &before, &time(0)));
    let after = Observed {
        model,
        quality,
        ..observed_of(&p, Some(&d))
    };
    let status = compute_status(&p, &after, &time(5));
    assert_no_echo(&serde_json::to_string(&status).unwrap());
    let events = status_events(p.status.as_ref().unwrap(), &status);
    assert!(!events.is_empty(), "a refusal is an Event");
    for event in events {
        assert_no_echo(&event.note);
    }
}

#[tokio::test]
async fn nothing_read_from_a_url_is_echoed_by_the_quality_gate() {
    let good = honest();
    let header_line = format!("{SECRET}\n1,2\n");
    let internal = Internal::start(vec![
        ("/header.csv".into(), response("200 OK", &[], &header_line)),
        (
            "/one-column.csv".into(),
            response("200 OK", &[], &format!("text\n{SECRET}\n")),
        ),
        ("/denied.csv".into(), denied()),
    ])
    .await;
    let metrics = Metrics::default();

    // The answer as the CSV header, pinned (the digest is what the status showed first); then an
    // error answer: status, header and JSON body all say it.
    for (path, sha256, expected, says) in [
        (
            "/header.csv",
            sha(header_line.as_bytes()),
            reason::VALIDATION_DATA_INVALID,
            "no `",
        ),
        (
            "/one-column.csv",
            sha(format!("text\n{SECRET}\n").as_bytes()),
            reason::VALIDATION_DATA_INVALID,
            "no `",
        ),
        (
            "/denied.csv",
            SHA_A.into(),
            reason::VALIDATION_DATA_UNAVAILABLE,
            "HTTP 403",
        ),
    ] {
        let data = DataSpec {
            url: internal.url(path),
            sha256,
        };
        let check = gate()
            .check_verified(&gated(&good.model, &data, None), None, &metrics)
            .await;
        let (reason, message) = failed(check.clone());
        assert_eq!(reason, expected, "{message}");
        assert!(message.contains(says), "{message}");
        assert_no_echo(&message);
        assert_status_and_events_clean(ModelCheck::Passed(()), check);
    }
    assert_no_echo(&metrics.render());
    assert!(internal.connections() >= 3, "the service was asked");
}

#[tokio::test]
async fn nothing_read_from_a_url_is_echoed_by_the_model_check() {
    let digest = format!("sha256:{}", "0".repeat(64));
    let registry_error = format!(
        r#"{{"errors":[{{"code":"AKIAEXAMPLEINTERNAL","message":"{SECRET}","detail":"{SECRET}"}}]}}"#
    );
    let s3_error = format!(
        "<?xml version=\"1.0\"?><Error><Code>AKIAEXAMPLEINTERNAL</Code><Message>{SECRET}</Message></Error>"
    );
    // NB: the registry's challenge names the service's own address: bind it first.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap();
    let internal = Internal::start_on(
        listener,
        vec![
            ("/m.model".into(), response("200 OK", &[], SECRET)),
            ("/denied.model".into(), denied()),
            // s3://models/m.bin, path style.
            (
                "/models/m.bin".into(),
                response(
                    "403 Forbidden",
                    &["content-type: application/xml"],
                    &s3_error,
                ),
            ),
            (
                format!("/v2/team/m/manifests/{digest}"),
                response(
                    "500 AKIAEXAMPLEINTERNAL",
                    &["content-type: application/json"],
                    &registry_error,
                ),
            ),
            (
                format!("/v2/auth/m/manifests/{digest}"),
                response(
                    "401 Unauthorized",
                    &[&format!(
                        "www-authenticate: Bearer realm=\"http://{host}/AKIAEXAMPLEINTERNAL/token\",\
                     service=\"s3cr3t-internal-token\""
                    )],
                    SECRET,
                ),
            ),
            // Its token service: the realm's path is the server's own words too.
            ("/AKIAEXAMPLEINTERNAL/token".into(), denied()),
        ],
    );
    let metrics = Metrics::default();
    let anonymous = StoreAccess::default();
    let keyed = StoreAccess {
        s3: S3Settings {
            endpoint: Some(format!("http://{}", internal.addr)),
            access_key_id: Some("AKIDTEAM".into()),
            secret_access_key: Some("team-secret".into()),
            ..S3Settings::default()
        },
        ..StoreAccess::default()
    };
    for (url, sha256, access, expected) in [
        // The answer as the model file, pinned.
        (
            internal.url("/m.model"),
            sha(SECRET.as_bytes()),
            &anonymous,
            reason::NOT_A_MODEL_FILE,
        ),
        (
            internal.url("/denied.model"),
            SHA_A.to_string(),
            &anonymous,
            reason::FETCH_FAILED,
        ),
        (
            "s3://models/m.bin".to_string(),
            SHA_A.to_string(),
            &keyed,
            reason::FETCH_FAILED,
        ),
        (
            format!("oci://{host}/team/m@{digest}"),
            SHA_A.to_string(),
            &anonymous,
            reason::FETCH_FAILED,
        ),
        (
            format!("oci://{host}/auth/m@{digest}"),
            SHA_A.to_string(),
            &anonymous,
            reason::FETCH_FAILED,
        ),
    ] {
        let model = ModelSpec {
            url: url.clone(),
            sha256,
            ..ModelSpec::default()
        };
        let check = checker().check(&model, false, access, &metrics).await;
        let (reason, message) = rejected(check.clone());
        assert_eq!(reason, expected, "{url}: {message}");
        assert_no_echo(&message);
        assert_status_and_events_clean(check, QualityCheck::Off);
    }
    assert_no_echo(&metrics.render());
    assert!(internal.connections() >= 6, "the service was asked");
}

#[tokio::test]
async fn file_urls_and_bare_paths_are_refused_from_the_spec_and_from_a_deployment() {
    let good = honest();
    let metrics = Metrics::default();
    // Another good model (another date, another digest): what the Deployment says it serves. As
    // a file the operator could read, it would be scored and pass; it must be refused unread.
    let (other, other_sha) = trained_model(
        predictor::sample::SAMPLE_CSV.as_bytes(),
        "2026-12-01T00:00:00Z",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serving.model");
    std::fs::write(&path, &other).unwrap();
    let files = FileServer::start();
    let over_http = files.put("/serving.model", other.clone());
    let serving = |url: &str| Served {
        model_url: Some(url.into()),
        model_sha256: Some(other_sha.clone()),
        ..Served::default()
    };
    let spec = gated(&good.model, &good.data, Some(0.2));

    // Served over HTTP, the same file is scored and the candidate judged against it.
    let check = gate()
        .check_verified(&spec, Some(&serving(&over_http)), &metrics)
        .await;
    assert!(matches!(check, QualityCheck::Passed { .. }), "{check:?}");

    for url in [
        format!("file://{}", path.display()),
        path.display().to_string(),
        "file:///etc/hostname".into(),
        "/dev/zero".into(),
    ] {
        // From a Deployment edited by hand: maxAccuracyDrop would compare against it.
        let check = gate()
            .check_verified(&spec, Some(&serving(&url)), &metrics)
            .await;
        let (reason, message) = failed(check);
        assert_eq!(reason, reason::EVALUATION_FAILED, "{url}: {message}");
        assert!(
            message.contains("it is the serving model maxAccuracyDrop compares against")
                && message.contains(&MODEL_URL.message()),
            "{url}: {message}"
        );

        // From the spec (validate() refuses it first; the downloads refuse it too).
        let model = ModelSpec {
            url: url.clone(),
            sha256: other_sha.clone(),
            ..ModelSpec::default()
        };
        let (reason, message) = rejected(
            checker()
                .check(&model, false, &StoreAccess::default(), &metrics)
                .await,
        );
        assert_eq!(reason, reason::FETCH_FAILED, "{url}: {message}");
        assert!(message.contains(&MODEL_URL.message()), "{url}: {message}");
        let data = DataSpec {
            url: url.clone(),
            sha256: good.data.sha256.clone(),
        };
        let (reason, message) = failed(
            gate()
                .check_verified(&gated(&good.model, &data, None), None, &metrics)
                .await,
        );
        assert_eq!(
            reason,
            reason::VALIDATION_DATA_UNAVAILABLE,
            "{url}: {message}"
        );
        assert!(message.contains(&DATA_URL.message()), "{url}: {message}");
    }
}

/// A credentials Secret its owner labelled for Predictors, with S3 keys for `endpoint`.
fn store_keys(endpoint: Option<&str>) -> k8s_openapi::api::core::v1::Secret {
    let mut data = std::collections::BTreeMap::from([
        ("AWS_ACCESS_KEY_ID".to_string(), "AKIDTEAM".to_string()),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            "team-secret".to_string(),
        ),
    ]);
    if let Some(endpoint) = endpoint {
        data.insert(ENDPOINT_KEY.into(), endpoint.into());
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "store-keys", "labels": {CONSENT_LABEL: "true"}},
        "data": data
            .into_iter()
            .map(|(k, v)| (k, base64_of(&v)))
            .collect::<std::collections::BTreeMap<_, _>>(),
    }))
    .unwrap()
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The model check of `model` with `secret` as the apiserver returns it (the controller's step).
async fn checked_with(
    model: &ModelSpec,
    secret: &k8s_openapi::api::core::v1::Secret,
) -> ModelCheck {
    let (client, mut server) = crate::fixtures::apiserver::client();
    let secrets = kube::Api::namespaced(client, "team-a");
    let metrics = Metrics::default();
    let checker = checker();
    let ((check, _access), ()) = tokio::join!(
        check_model(model, false, &secrets, &checker, &metrics),
        async { server.next().await.reply(secret) }
    );
    check
}

#[tokio::test]
async fn s3_keys_are_never_signed_for_an_endpoint_the_secret_did_not_name() {
    let store = Internal::start(vec![]).await;
    let elsewhere = Internal::start(vec![]).await;
    let at = |internal: &Internal| format!("http://{}", internal.addr);
    let model = |endpoint: Option<String>| ModelSpec {
        url: "s3://models/m.bin".into(),
        sha256: SHA_A.into(),
        credentials: Some("store-keys".into()),
        s3: Some(S3Spec {
            endpoint,
            ..S3Spec::default()
        }),
    };

    // The spec names the store; the Secret names another endpoint, or none (AWS keys).
    for secret in [store_keys(Some(&at(&elsewhere))), store_keys(None)] {
        let (reason, message) = rejected(checked_with(&model(Some(at(&store))), &secret).await);
        assert_eq!(reason, reason::CREDENTIALS_UNUSABLE, "{message}");
        assert!(message.contains("spec.model.s3.endpoint"), "{message}");
    }
    assert_eq!(
        store.connections(),
        0,
        "a request left for the spec's endpoint"
    );
    assert_eq!(elsewhere.connections(), 0);

    // The Secret names the store (the spec repeats it, or names none): signed and sent there.
    for spec in [Some(at(&store)), None] {
        let (reason, message) =
            rejected(checked_with(&model(spec), &store_keys(Some(&at(&store)))).await);
        assert_eq!(
            reason,
            reason::FETCH_FAILED,
            "the store has no such object: {message}"
        );
    }
    assert_eq!(store.connections(), 2);
    let requests = store.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .all(|r| r.starts_with("GET /models/m.bin?") && r.contains("X-Amz-Credential=AKIDTEAM")),
        "{requests:?}"
    );
    assert_eq!(elsewhere.connections(), 0);
}
