//! A team names URLs the operator reads: read as a hostile team member would, through the real
//! model checker and quality gate against loopback servers.
//!
//! - Nothing a URL answers is echoed: a cluster-internal service answering a secret-looking line
//!   (as a CSV header, as a model file, as an HTTP, S3 or registry error body, in a status line or
//!   a header) shows in no ModelCheck or QualityCheck message, status, Event or metric. Digests,
//!   sizes, statuses and the redacted URL only.
//! - `file://` and bare paths are refused before anything is read, from the spec and from the
//!   `MODEL_URL` a Deployment says it serves (a Deployment edited by hand).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use predictor::s3::S3Settings;
use predictor::source::StoreAccess;
use predictor::testing::{FileServer, trained_model};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::crd::{DataSpec, ModelSpec, PredictorSpec, ValidationSpec};
use crate::fixtures::{SHA_A, deployment_of, predictor, resolved, time};
use crate::metrics::Metrics;
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
}

impl Internal {
    async fn start(answers: Vec<(String, Vec<u8>)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, answers)
    }

    fn start_on(listener: tokio::net::TcpListener, answers: Vec<(String, Vec<u8>)>) -> Self {
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let answers = Arc::new(answers);
        tokio::spawn(async move {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(answer(socket, Arc::clone(&answers)));
            }
        });
        Self { addr, connections }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn answer(mut socket: tokio::net::TcpStream, answers: Arc<Vec<(String, Vec<u8>)>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
        match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
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
    QualityGate::new(1 << 24, DATA_MAX_BYTES, Duration::from_secs(5)).unwrap()
}

fn checker() -> ModelChecker {
    ModelChecker::new(true, 1 << 24, Duration::from_secs(5)).unwrap()
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
    let before = Observed {
        deployment: Some(&d),
        model: ModelCheck::Verified,
        quality: QualityCheck::Off,
        image: resolved(&p),
        pull_failure: None,
        invalid: None,
        autoscaler: None,
    };
    p.status = Some(compute_status(&p, &before, &time(0)));
    let after = Observed {
        deployment: Some(&d),
        model,
        quality,
        image: resolved(&p),
        pull_failure: None,
        invalid: None,
        autoscaler: None,
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

    // The answer as the CSV header, pinned (the digest is what the status showed first).
    for (path, body) in [
        ("/header.csv", header_line.clone()),
        ("/one-column.csv", format!("text\n{SECRET}\n")),
    ] {
        let data = DataSpec {
            url: internal.url(path),
            sha256: sha(body.as_bytes()),
        };
        let check = gate()
            .check(
                &gated(&good.model, &data, None),
                &ModelCheck::Verified,
                None,
                &StoreAccess::default(),
                &metrics,
            )
            .await;
        let (reason, message) = failed(check.clone());
        assert_eq!(reason, reason::VALIDATION_DATA_INVALID, "{message}");
        assert!(message.contains("no `"), "{message}");
        assert_no_echo(&message);
        assert_status_and_events_clean(ModelCheck::Verified, check);
    }

    // An error answer: status, header and JSON body all say it.
    let data = DataSpec {
        url: internal.url("/denied.csv"),
        sha256: SHA_A.into(),
    };
    let check = gate()
        .check(
            &gated(&good.model, &data, None),
            &ModelCheck::Verified,
            None,
            &StoreAccess::default(),
            &metrics,
        )
        .await;
    let (reason, message) = failed(check.clone());
    assert_eq!(reason, reason::VALIDATION_DATA_UNAVAILABLE);
    assert!(message.contains("HTTP 403"), "{message}");
    assert_no_echo(&message);
    assert_status_and_events_clean(ModelCheck::Verified, check);
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
        .check(
            &spec,
            &ModelCheck::Verified,
            Some(&serving(&over_http)),
            &StoreAccess::default(),
            &metrics,
        )
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
            .check(
                &spec,
                &ModelCheck::Verified,
                Some(&serving(&url)),
                &StoreAccess::default(),
                &metrics,
            )
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
                .check(
                    &gated(&good.model, &data, None),
                    &ModelCheck::Verified,
                    None,
                    &StoreAccess::default(),
                    &metrics,
                )
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
