//! The operator's small HTTP server: `/healthz` for the kubelet and `/metrics` for Prometheus.
//!
//! Two routes on hyper's HTTP/1.1, with no web framework: [`respond`] is all of the routing (pure,
//! tested without a socket) and [`serve`] the accept loop. NB: the operator links no server of the
//! predictor's (axum, its engine); hyper is already in its tree through the Kubernetes client.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Longest a client may take to send a request head: a connection that sends nothing is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors, say) before accepting again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The answer to `method` on `path`: `/healthz` and `/metrics` answer GET and HEAD, other methods
/// get a 405 naming those, any other path a 404.
pub fn respond(metrics: &Metrics, method: &Method, path: &str) -> Response<String> {
    let content_type = match path {
        "/healthz" => "text/plain; charset=utf-8",
        "/metrics" => crate::metrics::CONTENT_TYPE,
        _ => return empty(StatusCode::NOT_FOUND),
    };
    if method != Method::GET && method != Method::HEAD {
        let mut refused = empty(StatusCode::METHOD_NOT_ALLOWED);
        refused
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET,HEAD"));
        return refused;
    }
    let body = match path {
        "/healthz" => "ok\n".to_string(),
        _ => metrics.render(),
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn empty(status: StatusCode) -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = status;
    response
}

/// Serves [`respond`] on `listener` until `shutdown`; then accepts no more connections, lets each
/// open one finish the request it is on, and returns.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let response = respond(&metrics, request.method(), request.uri().path());
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "metrics connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> (StatusCode, String) {
        let response = respond(&Metrics::default(), &Method::GET, path);
        (response.status(), response.into_body())
    }

    #[test]
    fn healthz_and_metrics_answer() {
        assert_eq!(get("/healthz"), (StatusCode::OK, "ok\n".into()));
        let (status, body) = get("/metrics");
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("predictor_operator_leader 0"), "{body}");
        assert!(
            body.ends_with("# EOF\n"),
            "OpenMetrics ends with # EOF: {body}"
        );
        assert_eq!(get("/nope").0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn other_methods_are_refused_naming_the_allowed_ones() {
        let refused = respond(&Metrics::default(), &Method::POST, "/metrics");
        assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(refused.headers()[ALLOW], "GET,HEAD");
        let head = respond(&Metrics::default(), &Method::HEAD, "/healthz");
        assert_eq!(head.status(), StatusCode::OK);
    }

    /// Over a real loopback socket: answers, then stops accepting when shut down.
    #[tokio::test]
    async fn serves_on_a_socket_until_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            Arc::new(Metrics::default()),
            shutdown.clone(),
        ));
        let at = addr.clone();
        let got =
            tokio::task::spawn_blocking(move || model_store::testing::http_get(&at, "/metrics"))
                .await
                .unwrap();
        let (code, body) = got.expect("an answer");
        assert_eq!(code, 200);
        assert!(body.contains("predictor_operator_leader 0"), "{body}");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server stops")
            .unwrap();
        assert!(std::net::TcpStream::connect(&addr).is_err());
    }
}
