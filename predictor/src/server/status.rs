//! What the server says about itself: `/readyz` and `/metrics`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Shared;

pub(super) async fn readyz(State(state): State<Shared>) -> Response {
    match state.readiness() {
        Ok(served) => axum::Json(serde_json::json!({
            "status": "ready",
            "version": state.version,
            "model_sha256": served.sha256,
            "model_date": served.model.model_date(),
        }))
        .into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "not ready", "reason": reason })),
        )
            .into_response(),
    }
}

pub(super) async fn metrics(State(state): State<Shared>) -> Response {
    let mut response = state
        .metrics
        .render(state.readiness().is_ok())
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    //! Readiness and the drift signals on `/metrics`, through the router.

    use axum::http::Method;

    use super::*;
    use crate::drift::{Profile, Signal, live_metric};
    use crate::metrics::Metrics;
    use crate::server::AppState;
    use crate::server::app;
    use crate::server::fixtures::{
        MODEL_V1, config, error, get_text, not_ready, post, ready_state, sample_model, send,
        serving,
    };

    /// Texts whose answers fall in different bins: both classes, unknown words, no text, long text.
    const TEXTS: [&str; 5] = [
        "#covid19 new york",
        "Cheers mate, off to the pub in London",
        "y'all in Texas",
        "",
        "zqxj wvut qqq",
    ];

    /// Asks `state`'s router each of [`TEXTS`] alone, then all of them and a long one as a batch,
    /// then a request it refuses (422: not an answer). The profile of the texts answered, as the
    /// served model's own [`crate::model::Model::predict_observed`] sees them, and `/metrics`.
    async fn answer_texts(state: &std::sync::Arc<AppState>) -> (Profile, String) {
        let router = app(state.clone(), &config());
        let long = "go yankees ".repeat(30);
        let mut answered: Vec<&str> = TEXTS.to_vec();
        for text in TEXTS {
            let body = serde_json::json!({ "text": text }).to_string();
            assert_eq!(post(router.clone(), body).await.0, StatusCode::OK);
        }
        let mut batch = TEXTS.to_vec();
        batch.push(&long);
        let body = serde_json::json!({ "texts": batch }).to_string();
        assert_eq!(post(router.clone(), body).await.0, StatusCode::OK);
        answered.extend(batch);
        let refused = post(router.clone(), r#"{"text": 42}"#).await.0;
        assert_eq!(refused, StatusCode::UNPROCESSABLE_ENTITY);

        let model = &state.served().unwrap().model;
        let mut expected = Profile::empty();
        answered
            .iter()
            .for_each(|text| expected.observe(&model.predict_observed(text).1));
        let (status, text) = get_text(router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        (expected, text)
    }

    /// `(le, value)` of every line of `text` that starts with `prefix` then `le="…"}`.
    fn by_le(text: &str, prefix: &str) -> Vec<(String, u64)> {
        text.lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(prefix)?.strip_prefix("le=\"")?;
                let (le, value) = rest.split_once("\"} ")?;
                Some((le.to_string(), value.parse().unwrap()))
            })
            .collect()
    }

    /// Running totals of `counts`.
    fn cumulative(counts: &[u64]) -> Vec<u64> {
        counts
            .iter()
            .scan(0, |total, c| {
                *total += c;
                Some(*total)
            })
            .collect()
    }

    #[tokio::test]
    async fn every_answer_is_counted_into_the_drift_histograms_beside_the_reference() {
        let state = ready_state();
        let (expected, text) = answer_texts(&state).await;
        assert_eq!(expected.rows, 11);
        let reference = state.served().unwrap().model.reference().unwrap().clone();
        assert!(reference.rows > 0);
        for signal in Signal::ALL {
            let name = live_metric(signal);
            let buckets = by_le(&text, &format!("{name}_bucket{{"));
            let reference_series = by_le(
                &text,
                &format!("predictor_drift_reference{{signal=\"{}\",", signal.name()),
            );
            // The live buckets are the signal's bins, `+Inf` last, with the model's own counts.
            let (les, counts): (Vec<String>, Vec<u64>) = buckets.into_iter().unzip();
            assert_eq!(
                counts,
                cumulative(expected.counts(signal)),
                "{name}\n{text}"
            );
            assert_eq!(les.len(), signal.bounds().len(), "{name}");
            assert_eq!(les.last().map(String::as_str), Some("+Inf"));
            assert!(text.contains(&format!("{name}_count 11\n")), "{text}");
            // The reference: the same `le` text, the file's counts.
            let (reference_les, reference_counts): (Vec<String>, Vec<u64>) =
                reference_series.into_iter().unzip();
            assert_eq!(reference_les, les, "{name}");
            assert_eq!(reference_counts, cumulative(reference.counts(signal)));
        }
        // The bounds as written, for one signal of each kind.
        assert!(
            text.contains("predictor_drift_length_bucket{le=\"280.0\"} 10\n"),
            "{text}"
        );
        assert!(
            text.contains("predictor_drift_positive_bucket{le=\"0.0\"} "),
            "{text}"
        );
        assert!(
            text.contains("predictor_drift_probability_bucket{le=\"0.1\"} "),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_format_1_model_serves_with_live_histograms_and_no_reference() {
        let state = serving(MODEL_V1, Metrics::default());
        assert!(state.served().unwrap().model.reference().is_none());
        let (expected, text) = answer_texts(&state).await;
        for signal in Signal::ALL {
            let buckets = by_le(&text, &format!("{}_bucket{{", live_metric(signal)));
            let counts: Vec<u64> = buckets.into_iter().map(|(_, n)| n).collect();
            assert_eq!(counts, cumulative(expected.counts(signal)));
        }
        assert!(!text.contains("predictor_drift_reference{"), "{text}");
    }

    #[tokio::test]
    async fn with_drift_signals_off_there_is_no_drift_series() {
        let state = serving(sample_model(), Metrics::new(false));
        let (_, text) = answer_texts(&state).await;
        assert!(!text.contains("predictor_drift"), "{text}");
        assert!(text.contains("predictor_predictions_total 11\n"), "{text}");
    }

    #[tokio::test]
    async fn readyz_is_503_with_the_reason_while_not_ready() {
        // NB: /readyz is a status document, not an error: `{"status": "not ready", "reason": …}`.
        let (status, _, json) = send(not_ready(), Method::GET, "/readyz", "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            json,
            serde_json::json!({
                "status": "not ready",
                "reason": "the model has not been fetched yet"
            })
        );
        // A prediction meanwhile is a 503 with the same reason as its error.
        let (status, json) = post(not_ready(), r#"{"text": "hi"}"#).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            error(&json),
            "not ready: the model has not been fetched yet"
        );
        // Ready, then draining: 503 "shutting down", and every answer closes its connection.
        let state = ready_state();
        let router = app(state.clone(), &config());
        let (status, connection, json) = send(router.clone(), Method::GET, "/readyz", "").await;
        assert_eq!(
            (status, json["status"].as_str()),
            (StatusCode::OK, Some("ready"))
        );
        assert_eq!(connection, None);
        state.start_draining();
        let (status, connection, json) = send(router, Method::GET, "/readyz", "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json["reason"], "shutting down");
        assert_eq!(connection.as_deref(), Some("close"));
    }
}
