//! The answers to client mistakes: a status and `{"error": message}`, never a 500.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::MAX_BODY_BYTES;
use super::body::within;

/// A client-facing error: status and `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// Answer with `Connection: close`: the request's body was left unread, so the connection cannot
    /// carry another request (saying so keeps keep-alive clients from writing into a closed socket).
    close: bool,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            close: status == StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error for a request nothing here handles. Its body (up to the usual limit) is read first:
    /// hyper closes a connection whose request body was left unread, which a keep-alive client only
    /// notices when its next request fails.
    pub(super) async fn unrouted(
        status: StatusCode,
        message: &str,
        body: Body,
        limit: Duration,
    ) -> Self {
        let read = within(limit, axum::body::to_bytes(body, MAX_BODY_BYTES)).await;
        Self {
            close: !matches!(read, Some(Ok(_))),
            ..Self::new(status, message)
        }
    }

    /// A body that did not arrive within the request timeout: 408, and the connection closes.
    pub(super) fn too_slow(limit: Duration) -> Self {
        Self {
            close: true,
            ..Self::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body did not arrive within {limit:?}"),
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
