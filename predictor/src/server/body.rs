//! Reading a request body within its limits: [`MAX_BODY_BYTES`] and the request timeout.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};

use super::MAX_BODY_BYTES;

/// Most bytes of an oversized body read and thrown away before its 413 is sent, and for how long at most.
/// A client still sending when the server closes would get its connection reset (EPIPE, or an RST that
/// discards the answer) and never read the 413: this is nginx's "lingering close", bounded.
const DISCARD_MAX_BYTES: usize = 8 << 20;
const DISCARD_TIME: Duration = Duration::from_secs(2);

/// `work` (reading a request body) to its end within `limit`, or `None`. The timer is armed only when the
/// first poll is pending: a body that came with its head, the usual case, is read without one.
pub(super) async fn within<F: Future>(limit: Duration, work: F) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    if let Poll::Ready(done) = futures::poll!(work.as_mut()) {
        return Some(done);
    }
    tokio::time::timeout(limit, work).await.ok()
}

/// How reading a request body ended.
pub(super) enum BodyRead {
    /// The whole body, at most [`MAX_BODY_BYTES`].
    Whole(Bytes),
    /// Larger (declared or not), or the client broke off.
    TooLarge,
    /// Not all there within the request timeout.
    TooSlow,
}

/// Reads the request body within `limit`. What is left of a body over [`MAX_BODY_BYTES`] is read and
/// discarded within the bounds above, never kept; a body declared larger than [`DISCARD_MAX_BYTES`] is
/// refused without reading any of it.
pub(super) async fn read_body(body: Body, limit: Duration) -> BodyRead {
    use futures::StreamExt;
    let declared = body.size_hint().lower();
    if declared > DISCARD_MAX_BYTES as u64 {
        // Too large to be worth reading even to throw away: refused before a byte is read.
        return BodyRead::TooLarge;
    }
    let mut stream = body.into_data_stream();
    if declared <= MAX_BODY_BYTES as u64 {
        let read = within(limit, async {
            let mut kept = Vec::new();
            loop {
                match stream.next().await {
                    None => return Some(Bytes::from(kept)),
                    Some(Err(_)) => return None,
                    Some(Ok(chunk)) if kept.len() + chunk.len() > MAX_BODY_BYTES => return None,
                    Some(Ok(chunk)) => kept.extend_from_slice(&chunk),
                }
            }
        });
        match read.await {
            None => return BodyRead::TooSlow,
            Some(Some(whole)) => return BodyRead::Whole(whole),
            Some(None) => {}
        }
    }
    let mut discarded = 0;
    let _ = tokio::time::timeout(DISCARD_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            discarded += chunk.len();
            if discarded > DISCARD_MAX_BYTES {
                break;
            }
        }
    })
    .await;
    BodyRead::TooLarge
}

#[cfg(test)]
mod tests {
    //! The body limit, through the router.

    use axum::http::{Method, StatusCode};

    use super::*;
    use crate::server::fixtures::{error, post, ready, send};

    #[tokio::test]
    async fn a_body_over_1_mib_is_413_and_closes_the_connection() {
        let text = "y".repeat(MAX_BODY_BYTES);
        let body = serde_json::json!({ "text": text }).to_string();
        assert!(body.len() > MAX_BODY_BYTES);
        let (status, connection, json) = send(ready(), Method::POST, "/api/american", body).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            error(&json),
            format!("request body is larger than {MAX_BODY_BYTES} bytes")
        );
        assert_eq!(connection.as_deref(), Some("close"));
        // Without a declared length (a stream), the limit holds while reading.
        let chunks: Vec<Result<Bytes, std::io::Error>> = (0..=MAX_BODY_BYTES / 4096)
            .map(|_| Ok(Bytes::from(vec![b' '; 4096])))
            .collect();
        let streamed = Body::from_stream(futures::stream::iter(chunks));
        let (status, _, json) = send(ready(), Method::POST, "/api/american", streamed).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(error(&json).starts_with("request body is larger than"));
        // Exactly the limit is not refused for its size (it is all spaces: not JSON).
        let (status, json) = post(ready(), " ".repeat(MAX_BODY_BYTES)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    }
}
