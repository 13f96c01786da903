//! Test fixtures of the server's modules: a config, a ready or not-ready router, one request and its
//! answer.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use super::{App, AppState, ServeConfig, ServedModel, app};
use crate::metrics::Metrics;
use crate::model::{Model, sha256_hex};
use crate::train::{TrainSettings, train_from_bytes};

/// The settings every test starts from.
pub(super) fn config() -> ServeConfig {
    ServeConfig::new("file:///models/american.bin", "0".repeat(64), "0.2")
}

/// A router whose state has no model yet.
pub(super) fn not_ready() -> App {
    app(AppState::new("0.2"), &config())
}

/// A model file trained on the built-in sample (trained once per test binary): the current format,
/// with a reference.
pub(super) fn sample_model() -> &'static [u8] {
    static MODEL: OnceLock<Vec<u8>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let (train, _) = crate::sample::split();
        train_from_bytes(
            train.as_bytes(),
            "sample",
            &TrainSettings::default(),
            "2026-11-24T00:00:00Z",
        )
        .and_then(|file| file.to_bytes())
        .unwrap()
    })
}

/// A format-1 model file (no reference): the one committed for the model file's tests.
pub(super) const MODEL_V1: &[u8] = include_bytes!("../../tests/data/model-v1.bin");

/// State serving the model file `bytes`, counting into `metrics`.
pub(super) fn serving(bytes: &[u8], metrics: Metrics) -> Arc<AppState> {
    let state = AppState::with_metrics("0.2", metrics);
    state.set_model(ServedModel {
        model: Model::from_bytes(bytes).unwrap(),
        sha256: sha256_hex(bytes),
    });
    state
}

/// State serving the sample model, every metric on.
pub(super) fn ready_state() -> Arc<AppState> {
    serving(sample_model(), Metrics::default())
}

/// A router serving the sample model.
pub(super) fn ready() -> App {
    app(ready_state(), &config())
}

/// Sends one request; returns the status, the `Connection` header and the body as JSON.
pub(super) async fn send(
    router: App,
    method: Method,
    uri: &str,
    body: impl Into<Body>,
) -> (StatusCode, Option<String>, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let connection = response
        .headers()
        .get(header::CONNECTION)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
    (status, connection, json)
}

/// GETs `uri`: the status and the body as text.
pub(super) async fn get_text(router: App, uri: &str) -> (StatusCode, String) {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

pub(super) async fn post(router: App, body: impl Into<Body>) -> (StatusCode, Value) {
    let (status, _, json) = send(router, Method::POST, "/api/american", body).await;
    (status, json)
}

/// The `error` message of an error body, which must hold nothing else.
pub(super) fn error(json: &Value) -> &str {
    assert_eq!(json.as_object().map(|o| o.len()), Some(1), "{json}");
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error string: {json}"))
}
