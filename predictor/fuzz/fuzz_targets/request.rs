//! `POST /api/american` through the real router, in-process: any body gets a JSON answer whose status is
//! the one the general reader predicts (200, 400 or 422), never a 5xx, never a panic; every answer carries a
//! probability in [0, 1] and a batch answers each text. Whenever the usual reader reads a body, the general
//! reader reads the same request from it.
#![no_main]

use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use predictor::server::{self, AppState, PredictRequest, ServeConfig, ServedModel};
use serde_json::Value;
use tower::ServiceExt;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: server::App,
}

/// A server state holding a model trained on the built-in sample.
static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let (train, _) = predictor::sample::split();
    let settings = predictor::train::TrainSettings::default();
    let bytes = predictor::train::train_from_bytes(
        train.as_bytes(),
        "sample.csv",
        &settings,
        "2026-11-25T00:00:00Z",
    )
    .and_then(|file| file.to_bytes())
    .expect("the sample trains");
    let model = predictor::Model::from_bytes(&bytes).expect("the sample model loads");
    let state = AppState::new("fuzz");
    state.set_model(ServedModel {
        model,
        sha256: predictor::model::sha256_hex(&bytes),
    });
    let config = ServeConfig::new("unused.bin", "0".repeat(64), "fuzz");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    Fixture {
        runtime,
        router: server::app(state, &config),
    }
});

fn assert_answer(answer: &Value) {
    assert!(
        answer["is_american"] == 0 || answer["is_american"] == 1,
        "{answer}"
    );
    let p = answer["probability"].as_f64();
    assert!(p.is_some_and(|p| (0.0..=1.0).contains(&p)), "{answer}");
}

fuzz_target!(|body: &[u8]| {
    let fixture = &*FIXTURE;
    let request = Request::post("/api/american")
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request");
    let (status, json) = fixture.runtime.block_on(async {
        let response = fixture
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the answer's body");
        let json: Value = serde_json::from_slice(&bytes).expect("every answer is JSON");
        (status, json)
    });
    assert!(!status.is_server_error(), "{status}: {json}");

    let parsed = server::parse_body(body);
    let expected = match &parsed {
        Err(e) => Err(e.status()),
        Ok(value) => PredictRequest::from_json(value).map_err(|e| e.status()),
    };
    if let Some(usual) = PredictRequest::usual(body) {
        assert_eq!(expected.as_ref().ok(), Some(&usual), "the readers disagree");
    }
    match expected {
        Err(expected) => {
            assert_eq!(status, expected, "{json}");
            assert!(json["error"].is_string(), "{json}");
        }
        Ok(PredictRequest::One(_)) => {
            assert_eq!(status, StatusCode::OK, "{json}");
            assert_answer(&json);
        }
        Ok(PredictRequest::Many(texts)) => {
            assert_eq!(status, StatusCode::OK, "{json}");
            let answers = json.as_array().expect("a batch answers with a list");
            assert_eq!(answers.len(), texts.len());
            answers.iter().for_each(assert_answer);
        }
    }
});
