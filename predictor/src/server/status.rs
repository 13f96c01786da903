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
    //! Readiness through the router.

    use axum::http::Method;

    use super::*;
    use crate::server::app;
    use crate::server::fixtures::{config, error, not_ready, post, ready_state, send};

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
