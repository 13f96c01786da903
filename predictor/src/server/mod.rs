//! `predictor serve`: the HTTP service. [`app`] builds the service (router and layers) from an [`AppState`];
//! [`run`] fetches and verifies the model in the background, serves on one single-threaded runtime per
//! serving thread, and shuts down gracefully.
//!
//! Routes: `POST /api/american` (the contract in DESIGN.md, plus `probability`, plus `{"texts": [...]}`
//! batches), `/healthz` (alive), `/readyz` (verified model loaded and not draining), `/metrics`
//! (Prometheus), `/` (a page to try it). Client mistakes get 4xx with `{"error": "…"}`, never a 500.
//! `POST /drain` (`predictor drain`, a pod's preStop hook: start draining now) is served only on a Unix
//! socket ([`DrainSocket`], `--drain-socket`), never over TCP: no network peer can drain a pod.
//! With a [`ShadowConfig`], a sample of answered single-text predictions is copied to a candidate
//! ([`crate::shadow`]) without delaying or changing the live answer.
//!
//! One job a module: `state` (what the handlers share), `predict` (`POST /api/american`), `request` (what
//! its body asks for), `answer` (what it answers), `routes` (predictions past the router), `status`
//! (`/readyz`, `/metrics`), `api_error` (the 4xx answers), `body` (reading a body within its limits),
//! `track` (counting answers, `Connection: close`, when a connection waits for a head), `drain` (the drain
//! socket), `loader` (fetching the model at start) and `connections` (accepting, serving threads, the
//! header and drain timeouts). This file: the settings, [`app`] and [`run`].

mod answer;
mod api_error;
mod body;
mod connections;
mod drain;
#[cfg(test)]
mod fixtures;
mod loader;
mod predict;
mod request;
mod routes;
mod state;
mod status;
mod track;

pub use api_error::ApiError;
pub use drain::{DrainSocket, drain_app, request_drain};
pub use loader::load_model;
pub use request::{PredictRequest, parse_body};
pub use routes::Routes;
pub use state::{AppState, ServedModel, Shared};
pub use track::{Connection, Track, Tracked};

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::limit::ConcurrencyLimit;

use connections::{Connections, Limits, accept, start_workers};
use predict::american;
use status::{metrics, readyz};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::shadow::ShadowConfig;

/// Largest request body accepted (a tweet is at most a few KB; batches fit easily).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Most texts in one `{"texts": [...]}` request.
pub const MAX_BATCH: usize = 1000;
/// Largest model file the server downloads.
pub const MAX_MODEL_BYTES: u64 = 512 << 20;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where the model is (path, file://, http(s)://).
    pub model_url: String,
    /// The sha256 the model file must have (64 hex digits).
    pub model_sha256: String,
    /// Reported in every answer (the code version; the image tag in Kubernetes).
    pub version: String,
    /// Longest time in-flight requests get to finish once the listener is closed.
    pub drain_timeout: Duration,
    /// Longest time a client gets to send a request's head, and then its body (408).
    pub request_timeout: Duration,
    /// Requests handled at once (shared evenly among the serving threads); more wait.
    pub max_concurrency: usize,
    /// First and longest pause between attempts to fetch the model.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Where to copy a sample of live requests to (a canary's candidate), if anywhere.
    pub shadow: Option<ShadowConfig>,
    /// After this long, a connection's next answer closes it (`Connection: close`), so keep-alive
    /// clients reconnect and kube-proxy spreads them again over the Service's current endpoints:
    /// new replicas (a canary, a scale-up) get their share instead of only new clients. `None`: never.
    pub max_connection_age: Option<Duration>,
    /// Threads accepting and serving connections, each with its own single-threaded runtime (see [`run`]).
    pub threads: usize,
    /// Where to answer `POST /drain` (a Unix socket, see [`DrainSocket`]); `None`: nowhere.
    pub drain_socket: Option<PathBuf>,
    /// Whether every answer is counted into the drift histograms, and the model's reference exported
    /// beside them on `/metrics` ([`crate::drift`]). Off only to measure what they cost.
    pub drift_signals: bool,
}

impl ServeConfig {
    /// Defaults for everything but what the caller must say.
    pub fn new(
        model_url: impl Into<String>,
        model_sha256: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        Self {
            model_url: model_url.into(),
            model_sha256: model_sha256.into(),
            version: version.into(),
            drain_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            max_concurrency: 1024,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            shadow: None,
            max_connection_age: Some(Duration::from_secs(5)),
            threads: 1,
            drain_socket: None,
            drift_signals: true,
        }
    }

    /// Checks what can be checked before starting: the digest must be 64 hex digits.
    pub fn validate(&self) -> Result<()> {
        let sha = &self.model_sha256;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Settings(format!(
                "model sha256 must be 64 hex digits, got {sha:?}"
            )));
        }
        model_store::Location::parse(&self.model_url)?;
        if self.threads == 0 {
            return Err(Error::Settings("serving threads must be at least 1".into()));
        }
        if let Some(shadow) = &self.shadow {
            shadow.validate()?;
        }
        Ok(())
    }
}

/// The whole HTTP service: [`Track`] (metrics, a debug line per answer, `Connection: close`) around the
/// concurrency limit around [`Routes`] (predictions straight to their handler, the rest through the
/// router). The request timeout bounds what waits on the client: the body reads (see [`within`](body::within)).
pub type App = Track<ConcurrencyLimit<Routes>>;

/// The service. Pure construction: no I/O. The layers wrap the router once, as concrete types: applied
/// with `Router::layer` each would box its service per route and its future per request.
pub fn app(state: Arc<AppState>, config: &ServeConfig) -> App {
    let shared = Shared(Arc::new(state));
    let timeout = config.request_timeout;
    let router = Router::new()
        .route(
            routes::PREDICT,
            post(move |state, body| american(state, body, timeout)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(|| async { Html(PAGE) }))
        .fallback(move |body: Body| not_found(body, timeout))
        .method_not_allowed_fallback(move |body: Body| {
            ApiError::unrouted(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed here; POST /api/american with {\"text\": \"…\"}",
                body,
                timeout,
            )
        })
        .with_state(shared.clone());
    let routes = Routes {
        router,
        state: shared.clone(),
        timeout,
    };
    let inner = tower::ServiceBuilder::new()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            config.max_concurrency,
        ))
        .service(routes);
    Track {
        inner,
        state: shared,
        max_connection_age: config.max_connection_age,
        connection: None,
    }
}

const PAGE: &str = include_str!("../page.html");

/// The answer to an unknown route (`/drain` over TCP included: it is served only on the drain socket).
async fn not_found(body: Body, limit: Duration) -> ApiError {
    ApiError::unrouted(
        StatusCode::NOT_FOUND,
        "no such route; try POST /api/american",
        body,
        limit,
    )
    .await
}

/// Serves on `listener` until `shutdown` resolves, then drains: readiness false at once, then the delay the
/// shutdown future returned (SIGTERM: `shutdown_delay`, so endpoints are removed while we still answer;
/// Ctrl-C: none), then the listener closes and in-flight requests get up to `drain_timeout`.
///
/// The calling runtime fetches the model, waits for `shutdown`, accepts and serves; with
/// [`ServeConfig::threads`] above 1, it hands accepted connections in turn to the other threads, each
/// running a single-threaded runtime. A connection stays on its thread: no wake-ups or work stealing
/// between threads per request (nginx's worker model, with connections dealt evenly).
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = Duration> + Send + 'static,
) -> Result<()> {
    config.validate()?;
    // First: a drain socket that cannot be bound is a start-up error, before anything is served.
    let drain_socket = config
        .drain_socket
        .as_deref()
        .map(DrainSocket::bind)
        .transpose()?;
    let state = AppState::with_metrics(config.version.clone(), Metrics::new(config.drift_signals));
    if let Some(shadow) = &config.shadow {
        state.set_shadow(shadow)?;
        tracing::info!(url = %model_store::redact(&shadow.url), percent = shadow.percent, "copying live requests to a shadow candidate");
    }
    // Each thread its own service and share of the concurrency limit: no counters shared per request.
    let per_thread = ServeConfig {
        max_concurrency: config.max_concurrency.div_ceil(config.threads),
        ..config.clone()
    };
    let limits = Limits {
        header_timeout: config.request_timeout,
        drain_timeout: config.drain_timeout,
    };
    let (workers, threads) = start_workers(
        config.threads - 1,
        || app(state.clone(), &per_thread),
        limits,
    )?;
    let drain_task = drain_socket.map(|socket| {
        tracing::info!(path = %socket.path.display(), "POST /drain served on this socket only");
        let app = drain_app(state.clone(), &config);
        tokio::spawn(socket.serve(app, config.request_timeout))
    });
    let loader = tokio::spawn(load_model(state.clone(), config.clone()));
    let close_listener = CancellationToken::new();
    let signal = tokio::spawn({
        let (state, close_listener) = (state.clone(), close_listener.clone());
        async move {
            let delay = shutdown.await;
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "shutting down: readiness is now false"
            );
            state.start_draining();
            tokio::time::sleep(delay).await;
            tracing::info!("closing the listener; draining in-flight requests");
            close_listener.cancel();
        }
    });
    let connections = Connections::new(app(state.clone(), &per_thread), limits);
    accept(listener, &connections, workers, close_listener).await;
    connections.drain().await;
    for thread in threads {
        // Each drains within the same timeout once the accept loop has stopped handing it connections.
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    loader.abort();
    signal.abort();
    if let Some(task) = drain_task {
        // Dropping the socket removes its file.
        task.abort();
        let _ = task.await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The router's own answers: routes it does not have, methods it does not take.

    use axum::http::Method;

    use super::fixtures::{error, ready, send};
    use super::*;

    #[tokio::test]
    async fn wrong_method_is_405() {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let (status, _, json) = send(ready(), method.clone(), "/api/american", "").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(
                error(&json),
                "method not allowed here; POST /api/american with {\"text\": \"…\"}"
            );
        }
        let (status, _, json) = send(ready(), Method::POST, "/healthz", "{}").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(error(&json).starts_with("method not allowed here"));
    }

    #[tokio::test]
    async fn unknown_route_is_404() {
        for (method, uri) in [
            (Method::GET, "/nope"),
            (Method::POST, "/api/american/extra"),
            (Method::POST, "/api"),
        ] {
            let (status, _, json) = send(ready(), method, uri, "{}").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(error(&json), "no such route; try POST /api/american");
        }
    }
}
