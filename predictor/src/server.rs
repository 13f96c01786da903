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

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tower::limit::ConcurrencyLimit;

use crate::error::{Error, Result};
use crate::metrics::{Metrics, ModelInfo, Route};
use crate::model::{Model, sha256_hex};
use crate::shadow::{Shadow, ShadowConfig};

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

/// The model being served, once verified.
#[derive(Debug)]
pub struct ServedModel {
    pub model: Model,
    pub sha256: String,
}

/// Everything the handlers share.
pub struct AppState {
    version: String,
    model: OnceLock<ServedModel>,
    not_ready: Mutex<String>,
    draining: AtomicBool,
    metrics: Metrics,
    /// Copies live requests to a candidate, when configured.
    shadow: OnceLock<Shadow>,
}

impl AppState {
    pub fn new(version: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            version: version.into(),
            model: OnceLock::new(),
            not_ready: Mutex::new("the model has not been fetched yet".into()),
            draining: AtomicBool::new(false),
            metrics: Metrics::default(),
            shadow: OnceLock::new(),
        })
    }

    /// Starts copying a sample of answered predictions to `config`'s candidate, counting into
    /// this server's metrics. Once: a second call changes nothing.
    pub fn set_shadow(&self, config: &ShadowConfig) -> Result<()> {
        let shadow = Shadow::new(config, self.metrics.shadow())?;
        let _ = self.shadow.set(shadow);
        Ok(())
    }

    /// Installs a verified model; the server is ready from then on.
    pub fn set_model(&self, served: ServedModel) {
        self.metrics.set_model(ModelInfo {
            version: self.version.clone(),
            sha256: served.sha256.clone(),
            model_date: served.model.model_date().to_string(),
        });
        let _ = self.model.set(served);
    }

    fn set_not_ready(&self, reason: String) {
        *self.not_ready.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    }

    /// The verified model, or why there is none yet. Requests are answered with it even while draining:
    /// traffic that arrives before the load balancer has noticed must not fail.
    pub fn served(&self) -> Result<&ServedModel, String> {
        self.model.get().ok_or_else(|| {
            self.not_ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        })
    }

    /// What `/readyz` says: `Ok` with the model when ready for new traffic, else why not.
    pub fn readiness(&self) -> Result<&ServedModel, String> {
        if self.draining.load(Ordering::SeqCst) {
            return Err("shutting down".into());
        }
        self.served()
    }

    /// Starts draining: readiness turns false.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

/// One service's handle on the [`AppState`] (each serving thread builds its own [`app`]): the router's
/// `State` and [`Track`] clone it per request, so its count is on this thread's own cache line instead of
/// one every serving thread writes.
#[derive(Clone)]
#[expect(
    clippy::redundant_allocation,
    reason = "the outer count is this service's own, the inner one is shared by all"
)]
pub struct Shared(Arc<Arc<AppState>>);

impl std::ops::Deref for Shared {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

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
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
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
    async fn unrouted(status: StatusCode, message: &str, body: Body, limit: Duration) -> Self {
        let read = within(limit, axum::body::to_bytes(body, MAX_BODY_BYTES)).await;
        Self {
            close: !matches!(read, Some(Ok(_))),
            ..Self::new(status, message)
        }
    }

    /// A body that did not arrive within the request timeout: 408, and the connection closes.
    fn too_slow(limit: Duration) -> Self {
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

/// The contract's answer, plus `probability` and `model` (the first 12 hex digits of the model's sha256,
/// as `kubectl get predictors` shows it: a model-only rollout is visible to clients).
#[derive(Serialize)]
struct Answer<'a> {
    is_american: u8,
    version: &'a str,
    model_date: &'a str,
    model: &'a str,
    probability: f64,
}

/// The whole HTTP service: [`Track`] (metrics, a debug line per answer, `Connection: close`) around the
/// concurrency limit around the router. The request timeout bounds what waits on the client: the body
/// reads (see [`within`]).
pub type App = Track<ConcurrencyLimit<Router>>;

/// The service. Pure construction: no I/O. The layers wrap the router once, as concrete types: applied
/// with `Router::layer` each would box its service per route and its future per request.
pub fn app(state: Arc<AppState>, config: &ServeConfig) -> App {
    let shared = Shared(Arc::new(state));
    let timeout = config.request_timeout;
    let router = Router::new()
        .route(
            "/api/american",
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
    let inner = tower::ServiceBuilder::new()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            config.max_concurrency,
        ))
        .service(router);
    Track {
        inner,
        state: shared,
        max_connection_age: config.max_connection_age,
        connection: None,
    }
}

const PAGE: &str = include_str!("page.html");

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

/// The drain socket's one route.
const DRAIN_PATH: &str = "/drain";

/// The service on the drain socket: `POST /drain` only. Pure construction, like [`app`].
pub fn drain_app(state: Arc<AppState>, config: &ServeConfig) -> Router {
    let timeout = config.request_timeout;
    Router::new()
        .route(DRAIN_PATH, post(drain))
        .fallback(move |body: Body| not_found(body, timeout))
        .with_state(Shared(Arc::new(state)))
}

/// `POST /drain`: start draining now (readiness false, every answer `Connection: close`) while
/// still answering. A pod's preStop hook calls it (`predictor drain`) as soon as the pod is being
/// removed, so clients on kept-alive connections move to a pod that stays at once instead of after
/// the pre-stop pause. Never undone, so only the pod itself may ask: it is routed only on the
/// [`DrainSocket`].
async fn drain(State(state): State<Shared>) -> Response {
    if !state.draining.swap(true, Ordering::SeqCst) {
        tracing::info!("drain requested: readiness is now false, answers close their connections");
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"status": "draining"})),
    )
        .into_response()
}

/// How the drain socket is named in errors: its path and the settings that chose it.
fn drain_socket_named(path: &Path) -> String {
    format!(
        "the drain socket {} (--drain-socket, DRAIN_SOCKET)",
        path.display()
    )
}

/// Where `POST /drain` is served: a Unix socket, which no network peer can reach, whatever address it
/// connects from (a mesh's sidecar proxy forwards the Service's traffic from 127.0.0.6: loopback, but
/// anyone's). In Kubernetes it lives in a pod-local emptyDir, so only the pod's own containers (the
/// preStop hook) see it. The file is removed when this is dropped.
pub struct DrainSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl DrainSocket {
    /// Binds `path` with mode 0600 (only this user may connect). A socket left there by an earlier run
    /// is removed first; anything else there is refused, not deleted. Must run inside a tokio runtime.
    pub fn bind(path: &Path) -> Result<Self> {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let named = || drain_socket_named(path);
        match std::fs::symlink_metadata(path) {
            Ok(found) if found.file_type().is_socket() => {
                std::fs::remove_file(path).map_err(|e| Error::io(named(), e))?;
            }
            Ok(_) => {
                return Err(Error::Settings(format!(
                    "{} exists and is not a socket; remove it or choose another path",
                    named()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(named(), e)),
        }
        let listener = UnixListener::bind(path).map_err(|e| Error::io(named(), e))?;
        // NB: the socket is created with the umask's mode, then narrowed: the pod-local directory is what
        // keeps everyone else out, the mode other users of the pod. Built first: a failure removes it.
        let socket = Self {
            listener,
            path: path.to_owned(),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(named(), e))?;
        Ok(socket)
    }

    /// Serves `app` (see [`drain_app`]) on every connection until dropped.
    pub async fn serve(self, app: Router, header_timeout: Duration) {
        let http = http1_server(header_timeout);
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection on the drain socket");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let served =
                http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
            tokio::spawn(async move {
                if let Err(error) = served.await {
                    tracing::debug!(%error, "drain socket connection ended with an error");
                }
            });
        }
    }
}

impl Drop for DrainSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Asks the server on the drain socket `path` to drain (`predictor drain`): `Ok` once it answered 202,
/// within `timeout`.
pub async fn request_drain(path: &Path, timeout: Duration) -> Result<()> {
    let named = || drain_socket_named(path);
    let asked = async {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| Error::io(named(), e))?;
        let failed = |e: hyper::Error| Error::Failed(format!("{}: {e}", named()));
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(failed)?;
        tokio::spawn(connection);
        let mut request = Request::new(Body::empty());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = Uri::from_static(DRAIN_PATH);
        request
            .headers_mut()
            .insert(header::HOST, HeaderValue::from_static("localhost"));
        let response = sender.send_request(request).await.map_err(failed)?;
        match response.status() {
            StatusCode::ACCEPTED => Ok(()),
            status => Err(Error::Failed(format!(
                "{}: the server answered HTTP {status}, not 202",
                named()
            ))),
        }
    };
    tokio::time::timeout(timeout, asked)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Failed(format!(
                "{}: no answer within {timeout:?}",
                named()
            )))
        })
}

/// The connection a request came on: since when it is open.
#[derive(Clone, Copy, Debug)]
pub struct Connection {
    pub accepted: Instant,
}

/// Counts every request by route and status with its latency (and logs it at debug), and answers
/// `Connection: close` when the server is draining or the request's connection is older than the maximum
/// age. Outermost: whatever the layers inside answer is counted too.
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    state: Shared,
    max_connection_age: Option<Duration>,
    /// Set per accepted connection by [`Connections::serve`]; `None` when the service is called directly.
    connection: Option<Connection>,
}

impl<S> Track<S> {
    /// This service for the requests of one connection.
    fn on(&self, connection: Connection) -> Self
    where
        S: Clone,
    {
        Self {
            connection: Some(connection),
            ..self.clone()
        }
    }
}

impl<S, B> tower::Service<Request<B>> for Track<S>
where
    S: tower::Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = Route::of(request.uri().path());
        let started = Instant::now();
        let mut too_old = false;
        if let Some(connection) = self.connection {
            // The request's start, read once, is also what the connection's age is measured at.
            too_old = self
                .max_connection_age
                .is_some_and(|max| started.saturating_duration_since(connection.accepted) >= max);
        }
        Tracked {
            inner: self.inner.call(request),
            state: self.state.clone(),
            route,
            started,
            too_old,
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Track`]'s future: the inner answer, counted and marked.
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        state: Shared,
        route: Route,
        started: Instant,
        too_old: bool,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Tracked<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = std::task::ready!(this.inner.poll(cx));
        let (status, latency) = (response.status().as_u16(), this.started.elapsed());
        this.state.metrics.observe(*this.route, status, latency);
        tracing::debug!(
            route = this.route.label(),
            status,
            latency_us = latency.as_micros() as u64,
            "answered"
        );
        if *this.too_old || this.state.draining.load(Ordering::SeqCst) {
            // Shutting down: every answer closes its connection, so keep-alive clients reconnect (to a pod
            // that stays) instead of racing the final close of an idle connection. An old connection: so
            // the client reconnects and lands on any of the current endpoints.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
}

async fn readyz(State(state): State<Shared>) -> Response {
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

async fn metrics(State(state): State<Shared>) -> Response {
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

/// What a `POST /api/american` body asks for, borrowing its texts from the parsed JSON.
#[derive(Debug, PartialEq)]
pub enum PredictRequest<'a> {
    /// `{"text": "…"}`: one answer object.
    One(&'a str),
    /// `{"texts": ["…", …]}`: a list of answers, in order.
    Many(Vec<&'a str>),
}

/// Parses a request body as JSON (any Content-Type). A body that is not JSON is the client's mistake: 400.
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body is not valid JSON: {e}"),
        )
    })
}

impl<'a> PredictRequest<'a> {
    /// Reads the request out of a parsed body: pure, and the whole of the request's validation (422s).
    pub fn from_json(request: &'a Value) -> Result<Self, ApiError> {
        let unprocessable = |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
        let Value::Object(fields) = request else {
            return Err(unprocessable(
                "expected a JSON object like {\"text\": \"…\"}",
            ));
        };
        if let Some(text) = fields.get("text") {
            return text
                .as_str()
                .map(Self::One)
                .ok_or_else(|| unprocessable("`text` must be a string"));
        }
        if let Some(texts) = fields.get("texts") {
            let texts = texts
                .as_array()
                .ok_or_else(|| unprocessable("`texts` must be an array of strings"))?;
            if texts.len() > MAX_BATCH {
                return Err(unprocessable(&format!(
                    "`texts` holds {} texts; at most {MAX_BATCH} per request",
                    texts.len()
                )));
            }
            return texts
                .iter()
                .map(|t| {
                    t.as_str()
                        .ok_or_else(|| unprocessable("every item of `texts` must be a string"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Many);
        }
        Err(unprocessable(
            "missing `text` (a string), or `texts` (an array of strings)",
        ))
    }
}

/// Most bytes of an oversized body read and thrown away before its 413 is sent, and for how long at most.
/// A client still sending when the server closes would get its connection reset (EPIPE, or an RST that
/// discards the answer) and never read the 413: this is nginx's "lingering close", bounded.
const DISCARD_MAX_BYTES: usize = 8 << 20;
const DISCARD_TIME: Duration = Duration::from_secs(2);

/// `work` (reading a request body) to its end within `limit`, or `None`. The timer is armed only when the
/// first poll is pending: a body that came with its head, the usual case, is read without one.
async fn within<F: Future>(limit: Duration, work: F) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    if let Poll::Ready(done) = futures::poll!(work.as_mut()) {
        return Some(done);
    }
    tokio::time::timeout(limit, work).await.ok()
}

/// How reading a request body ended.
enum BodyRead {
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
async fn read_body(body: Body, limit: Duration) -> BodyRead {
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

/// `POST /api/american`. The body must be JSON whatever the Content-Type (form-typed clients welcome).
/// Order of checks: size (413), JSON (400), readiness (503), then the request's shape (422).
async fn american(
    State(state): State<Shared>,
    body: Body,
    limit: Duration,
) -> Result<Response, ApiError> {
    let bytes = match read_body(body, limit).await {
        BodyRead::Whole(bytes) => bytes,
        BodyRead::TooLarge => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        BodyRead::TooSlow => return Err(ApiError::too_slow(limit)),
    };
    let request = parse_body(&bytes)?;
    let served = state.served().map_err(|reason| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        )
    })?;
    let answer = |text: &str| {
        let p = served.model.predict(text);
        Answer {
            is_american: p.is_american,
            version: &state.version,
            model_date: served.model.model_date(),
            model: served.sha256.get(..12).unwrap_or(&served.sha256),
            probability: (p.probability * 1e6).round() / 1e6,
        }
    };
    match PredictRequest::from_json(&request)? {
        PredictRequest::One(text) => {
            state.metrics.add_predictions(1);
            let answer = answer(text);
            // After the live answer is computed; `offer` returns at once (the copy runs apart).
            if let Some(shadow) = state.shadow.get() {
                shadow.offer(text, answer.is_american);
            }
            Ok(axum::Json(answer).into_response())
        }
        PredictRequest::Many(texts) => {
            state.metrics.add_predictions(texts.len() as u64);
            let answers: Vec<Answer> = texts.into_iter().map(answer).collect();
            Ok(axum::Json(answers).into_response())
        }
    }
}

/// Fetches, verifies and loads the model, retrying with capped exponential backoff until it succeeds.
/// Nothing unverified is ever installed: a wrong digest or a corrupt file only updates the not-ready reason.
pub async fn load_model(state: Arc<AppState>, config: ServeConfig) {
    let shown = model_store::redact(&config.model_url);
    let expected = config.model_sha256.to_ascii_lowercase();
    let mut pause = config.retry_initial;
    for attempt in 1u64.. {
        let outcome = match model_store::fetch(&config.model_url, MAX_MODEL_BYTES).await {
            Err(e) => Err(e.to_string()),
            Ok(bytes) => {
                let actual = sha256_hex(&bytes);
                if actual != expected {
                    Err(Error::DigestMismatch {
                        location: shown.clone(),
                        expected: expected.clone(),
                        actual,
                    }
                    .to_string())
                } else {
                    Model::from_bytes(&bytes)
                        .map(|model| (model, actual))
                        .map_err(|e| format!("{shown}: {e}"))
                }
            }
        };
        match outcome {
            Ok((model, sha256)) => {
                tracing::info!(url = %shown, %sha256, model_date = model.model_date(), attempt, "model verified and loaded");
                state.set_model(ServedModel { model, sha256 });
                return;
            }
            Err(reason) => {
                tracing::warn!(url = %shown, attempt, retry_in_ms = pause.as_millis() as u64, %reason, "model not loaded");
                state.set_not_ready(format!("attempt {attempt}: {reason}"));
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(config.retry_max);
    }
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
    let state = AppState::new(config.version.clone());
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

/// The connection-level bounds.
#[derive(Clone, Copy)]
struct Limits {
    /// Longest time a client gets to send a request head (slowloris).
    header_timeout: Duration,
    /// Longest time open connections get to finish once the listener is closed.
    drain_timeout: Duration,
}

/// An accepted connection on its way to a serving thread.
type Handed = (std::net::TcpStream, Connection);

/// The serving threads: where to hand them connections, and the threads.
type Workers = (
    Vec<tokio::sync::mpsc::UnboundedSender<Handed>>,
    Vec<std::thread::JoinHandle<()>>,
);

/// Starts `n` serving threads, each a single-threaded runtime serving the connections sent on its channel
/// until the channel closes, then draining them; returns the channels and the threads.
fn start_workers(n: usize, app: impl Fn() -> App, limits: Limits) -> Result<Workers> {
    let (mut senders, mut threads) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 1..=n {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("a serving thread's runtime", e))?;
        let (send, mut handed) = tokio::sync::mpsc::unbounded_channel::<Handed>();
        let connections = Connections::new(app(), limits);
        let thread = std::thread::Builder::new()
            .name(format!("serve-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some((stream, connection)) = handed.recv().await {
                        match TcpStream::from_std(stream) {
                            Ok(stream) => connections.serve(stream, connection),
                            Err(error) => tracing::warn!(%error, "cannot take a connection over"),
                        }
                    }
                    connections.drain().await;
                })
            })
            .map_err(|e| Error::io("a serving thread", e))?;
        senders.push(send);
        threads.push(thread);
    }
    Ok((senders, threads))
}

/// Accepts connections until `close_listener` is cancelled, dealing them in turn to this runtime's
/// `connections` and to `workers`, then closes the listener (dropping `workers` ends their loops).
async fn accept(
    listener: TcpListener,
    connections: &Connections,
    workers: Vec<tokio::sync::mpsc::UnboundedSender<Handed>>,
    close_listener: CancellationToken,
) {
    let mut turn = 0;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = close_listener.cancelled() => break,
        };
        let connection = Connection {
            accepted: Instant::now(),
        };
        turn = (turn + 1) % (workers.len() + 1);
        let Some(worker) = turn.checked_sub(1).and_then(|i| workers.get(i)) else {
            connections.serve(stream, connection);
            continue;
        };
        match stream.into_std() {
            // The thread only stops receiving after this loop ends: the send cannot fail before.
            Ok(stream) => drop(worker.send((stream, connection))),
            Err(error) => tracing::warn!(%error, "cannot hand a connection over"),
        }
    }
}

/// HTTP/1.1 serving settings: a client gets at most `header_timeout` to send a request head (slowloris).
fn http1_server(header_timeout: Duration) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    http
}

/// The connections one runtime serves: HTTP/1.1 with a header-read timeout, each watched for the drain.
/// Unlike `axum::serve`, a client gets at most `header_timeout` to send a request head; its body is bounded
/// by the service (see [`within`]).
struct Connections {
    app: App,
    http: http1::Builder,
    graceful: GracefulShutdown,
    drain_timeout: Duration,
}

impl Connections {
    fn new(app: App, limits: Limits) -> Self {
        Self {
            app,
            http: http1_server(limits.header_timeout),
            graceful: GracefulShutdown::new(),
            drain_timeout: limits.drain_timeout,
        }
    }

    /// Serves `stream` on a task of the current runtime.
    fn serve(&self, stream: TcpStream, connection: Connection) {
        // Answers are written whole; without Nagle's delay the next one never waits for an ACK.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(self.app.on(connection));
        let served = self
            .graceful
            .watch(self.http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = served.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }

    /// Lets every connection finish its current request, then close; at most the drain timeout.
    async fn drain(self) {
        if tokio::time::timeout(self.drain_timeout, self.graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("drain timeout reached; exiting with requests still in flight");
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every client mistake the router answers, straight through `app()` with `oneshot` (no socket).

    use super::*;
    use std::net::SocketAddr;
    use tower::ServiceExt;

    use crate::train::{TrainSettings, train_from_bytes};

    fn config() -> ServeConfig {
        ServeConfig::new("file:///models/american.bin", "0".repeat(64), "0.2")
    }

    /// A router whose state has no model yet.
    fn not_ready() -> App {
        app(AppState::new("0.2"), &config())
    }

    /// State serving a model trained on the built-in sample (trained once per test binary).
    fn ready_state() -> Arc<AppState> {
        static MODEL: OnceLock<Vec<u8>> = OnceLock::new();
        let bytes = MODEL.get_or_init(|| {
            let (train, _) = crate::sample::split();
            train_from_bytes(
                train.as_bytes(),
                "sample",
                &TrainSettings::default(),
                "2026-11-24T00:00:00Z",
            )
            .and_then(|file| file.to_bytes())
            .unwrap()
        });
        let state = AppState::new("0.2");
        state.set_model(ServedModel {
            model: Model::from_bytes(bytes).unwrap(),
            sha256: sha256_hex(bytes),
        });
        state
    }

    /// A router serving the sample model.
    fn ready() -> App {
        app(ready_state(), &config())
    }

    /// Sends one request; returns the status, the `Connection` header and the body as JSON.
    async fn send(
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

    async fn post(router: App, body: impl Into<Body>) -> (StatusCode, Value) {
        let (status, _, json) = send(router, Method::POST, "/api/american", body).await;
        (status, json)
    }

    /// The `error` message of an error body, which must hold nothing else.
    fn error(json: &Value) -> &str {
        assert_eq!(json.as_object().map(|o| o.len()), Some(1), "{json}");
        json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error string: {json}"))
    }

    #[tokio::test]
    async fn bad_json_is_400() {
        for body in ["{\"text\": ", "text=hello", ""] {
            let (status, json) = post(ready(), body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
            assert!(
                error(&json).starts_with("body is not valid JSON: "),
                "{json}"
            );
        }
        // JSON is checked before readiness: a broken body is the client's mistake even now.
        let (status, json) = post(not_ready(), "{").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error(&json).starts_with("body is not valid JSON"));
    }

    #[tokio::test]
    async fn missing_or_non_string_text_is_422() {
        let cases = [
            (
                r#"{"tweet": "hi"}"#,
                "missing `text` (a string), or `texts` (an array of strings)",
            ),
            (r#"{"text": 42}"#, "`text` must be a string"),
            (r#"{"text": null}"#, "`text` must be a string"),
            (r#"{"text": ["a"]}"#, "`text` must be a string"),
            (r#"["hi"]"#, "expected a JSON object like {\"text\": \"…\"}"),
        ];
        for (body, message) in cases {
            let (status, json) = post(ready(), body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(error(&json), message, "{body}");
        }
    }

    #[tokio::test]
    async fn wrong_typed_texts_is_422() {
        let cases = [
            (r#"{"texts": "hi"}"#, "`texts` must be an array of strings"),
            (
                r#"{"texts": {"a": "b"}}"#,
                "`texts` must be an array of strings",
            ),
            (
                r#"{"texts": ["ok", 1]}"#,
                "every item of `texts` must be a string",
            ),
        ];
        for (body, message) in cases {
            let (status, json) = post(ready(), body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(error(&json), message, "{body}");
        }
    }

    #[tokio::test]
    async fn a_batch_over_the_limit_is_422_and_at_the_limit_is_answered() {
        let texts = |n: usize| serde_json::json!({ "texts": vec!["go yankees"; n] }).to_string();
        let (status, json) = post(ready(), texts(MAX_BATCH + 1)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            error(&json),
            format!(
                "`texts` holds {} texts; at most {MAX_BATCH} per request",
                MAX_BATCH + 1
            )
        );
        let (status, json) = post(ready(), texts(MAX_BATCH)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json.as_array().map(Vec::len), Some(MAX_BATCH));
    }

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

    /// `/drain` is no route of the TCP service: whoever calls (no peer address is even looked at), the
    /// answer is an unknown route's, and nothing drains.
    #[tokio::test]
    async fn drain_over_tcp_is_an_unknown_route() {
        let state = ready_state();
        let router = app(state.clone(), &config());
        let unknown = send(router.clone(), Method::POST, "/nope", "").await;
        assert_eq!(unknown.0, StatusCode::NOT_FOUND);
        for method in [Method::POST, Method::GET, Method::PUT] {
            let answer = send(router.clone(), method.clone(), "/drain", "").await;
            assert_eq!(answer, unknown, "{method}");
        }
        assert!(state.readiness().is_ok(), "a TCP request started a drain");
    }

    /// A fresh directory for a test's drain socket.
    fn socket_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[tokio::test]
    async fn the_drain_socket_is_mode_0600_drains_and_goes_with_the_server() {
        use std::os::unix::fs::PermissionsExt;
        let dir = socket_dir();
        let path = dir.path().join("drain.sock");
        let socket = DrainSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let state = ready_state();
        let served = tokio::spawn(socket.serve(
            drain_app(state.clone(), &config()),
            config().request_timeout,
        ));

        assert!(state.readiness().is_ok());
        request_drain(&path, Duration::from_secs(2)).await.unwrap();
        assert_eq!(state.readiness().unwrap_err(), "shutting down");
        // Asked again (a second preStop run): still accepted, still draining.
        request_drain(&path, Duration::from_secs(2)).await.unwrap();
        assert!(state.served().is_ok(), "still answering while draining");

        served.abort();
        let _ = served.await;
        assert!(!path.exists(), "the socket file is removed with the socket");
        let error = request_drain(&path, Duration::from_secs(2))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
    }

    #[tokio::test]
    async fn a_drain_socket_path_that_cannot_be_bound_is_a_clear_error() {
        let dir = socket_dir();
        // No such directory.
        let missing = dir.path().join("no-such-dir/drain.sock");
        let error = DrainSocket::bind(&missing).err().unwrap().to_string();
        assert!(
            error.contains(&format!(
                "the drain socket {} (--drain-socket, DRAIN_SOCKET)",
                missing.display()
            )) && error.contains("No such file or directory"),
            "{error}"
        );
        // Something that is not a socket is refused and left alone.
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "keep me").unwrap();
        let error = DrainSocket::bind(&file).err().unwrap().to_string();
        assert!(error.contains("exists and is not a socket"), "{error}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        // A stale socket (a crashed earlier run's) is replaced.
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(stale.exists());
        let socket = DrainSocket::bind(&stale).unwrap();
        let served = tokio::spawn(socket.serve(
            drain_app(ready_state(), &config()),
            config().request_timeout,
        ));
        request_drain(&stale, Duration::from_secs(2)).await.unwrap();
        served.abort();

        // `run` refuses to start on it: nothing is served, the error comes back at once.
        let mut bad = config();
        bad.drain_socket = Some(missing.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            run(listener, bad, std::future::pending()),
        )
        .await
        .expect("run returns at once");
        let error = outcome.unwrap_err().to_string();
        assert!(error.contains(&missing.display().to_string()), "{error}");
    }

    /// Serves `config` on a loopback port; the sender stops it (after the delay it sends).
    async fn serving(
        config: ServeConfig,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<Duration>,
        tokio::task::JoinHandle<Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<Duration>();
        let server = tokio::spawn(run(listener, config, async move {
            stopped.await.unwrap_or_default()
        }));
        (address, stop, server)
    }

    /// A candidate on a loopback port answering every prediction with `is_american` after `delay`.
    async fn candidate(is_american: u8, delay: Duration) -> SocketAddr {
        let router = Router::new().route(
            "/api/american",
            axum::routing::post(move || async move {
                tokio::time::sleep(delay).await;
                axum::Json(serde_json::json!({
                    "is_american": is_american, "version": "0.3", "model": "c4dd1da7e000"
                }))
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        address
    }

    /// `predictor_shadow_requests_total{<labels>}` as `state` exposes it (0 when absent).
    fn shadow_count(state: &AppState, labels: &str) -> u64 {
        let prefix = format!("predictor_shadow_requests_total{{{labels}}} ");
        state
            .metrics
            .render(true)
            .lines()
            .find_map(|line| line.strip_prefix(&prefix).map(|v| v.parse().unwrap()))
            .unwrap_or(0)
    }

    /// Waits (at most 5 s) until `state` counts `want` copies with `labels`.
    async fn until_counted(state: &AppState, labels: &str, want: u64) {
        for _ in 0..100 {
            if shadow_count(state, labels) >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            shadow_count(state, labels),
            want,
            "{labels}\n{}",
            state.metrics.render(true)
        );
    }

    const TWEET: &str = r##"{"text": "#covid19 new york"}"##;
    const DISAGREE: &str = r#"result="disagree",version="0.3",model="c4dd1da7e000""#;
    const AGREE: &str = r#"result="agree",version="0.3",model="c4dd1da7e000""#;
    const DROPPED: &str = r#"result="dropped",version="",model="""#;
    const ERROR: &str = r#"result="error",version="",model="""#;

    #[tokio::test]
    async fn a_slow_candidate_never_delays_or_changes_the_live_answer() {
        let state = ready_state();
        let live = state
            .served()
            .unwrap()
            .model
            .predict("#covid19 new york")
            .is_american;
        let (_, _, unshadowed) = send(ready(), Method::POST, "/api/american", TWEET).await;
        // The candidate answers the other class, two seconds late; one copy in flight at most.
        let slow = candidate(1 - live, Duration::from_secs(2)).await;
        let mut shadow = ShadowConfig::new(format!("http://{slow}"), 100);
        shadow.max_in_flight = 1;
        shadow.timeout = Duration::from_secs(5);
        state.set_shadow(&shadow).unwrap();
        let router = app(state.clone(), &config());

        for _ in 0..2 {
            let started = Instant::now();
            let (status, _, answer) =
                send(router.clone(), Method::POST, "/api/american", TWEET).await;
            let took = started.elapsed();
            assert_eq!(status, StatusCode::OK);
            assert_eq!(answer, unshadowed, "the copy changes nothing in the answer");
            assert!(
                took < Duration::from_millis(500),
                "live answer took {took:?}"
            );
        }
        // The second copy found the only permit taken: dropped, not queued.
        assert_eq!(shadow_count(&state, DROPPED), 1);
        // The first copy comes back after the candidate's delay: a disagreement, named for it.
        until_counted(&state, DISAGREE, 1).await;
        assert_eq!(shadow_count(&state, AGREE), 0);
        let text = state.metrics.render(true);
        assert!(
            text.lines()
                .any(|l| l == "predictor_shadow_duration_seconds_count 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn agreements_and_unreachable_candidates_are_counted() {
        let state = ready_state();
        let live = state
            .served()
            .unwrap()
            .model
            .predict("#covid19 new york")
            .is_american;
        let same = candidate(live, Duration::ZERO).await;
        state
            .set_shadow(&ShadowConfig::new(format!("http://{same}"), 100))
            .unwrap();
        for _ in 0..3 {
            post(app(state.clone(), &config()), TWEET).await;
        }
        until_counted(&state, AGREE, 3).await;
        // Batches are not copied.
        post(app(state.clone(), &config()), r#"{"texts": ["a", "b"]}"#).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(shadow_count(&state, AGREE), 3);

        // A candidate nobody listens for: errors, attributed to nobody; the answer is still 200.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let state = ready_state();
        state
            .set_shadow(&ShadowConfig::new(format!("http://127.0.0.1:{port}"), 100))
            .unwrap();
        let (status, _) = post(app(state.clone(), &config()), TWEET).await;
        assert_eq!(status, StatusCode::OK);
        until_counted(&state, ERROR, 1).await;
    }

    #[tokio::test]
    async fn a_stuck_request_holds_the_drain_only_until_the_drain_timeout() {
        use tokio::io::AsyncWriteExt;
        let drain = Duration::from_millis(300);
        let mut config = config();
        config.drain_timeout = drain;

        // Idle: the server stops at once.
        let (_, stop, server) = serving(config.clone()).await;
        let started = Instant::now();
        stop.send(Duration::ZERO).unwrap();
        server.await.unwrap().unwrap();
        assert!(started.elapsed() < drain, "{:?}", started.elapsed());

        // A request whose body never completes: the drain waits for it, but no longer than the timeout
        // (the request timeout, 10 s, would be much later).
        let (address, stop, server) = serving(config).await;
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"POST /api/american HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        stop.send(Duration::ZERO).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("drain bounded")
            .unwrap()
            .unwrap();
        let took = started.elapsed();
        assert!(took >= drain && took < drain * 5, "{took:?}");
    }
}
