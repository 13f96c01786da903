//! `POST /drain` and the Unix socket it is served on, and `predictor drain`, which calls it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{UnixListener, UnixStream};

use super::connections::http1_server;
use super::{AppState, ServeConfig, Shared, not_found};
use crate::error::{Error, Result};

/// The drain socket's one route.
const DRAIN_PATH: &str = "/drain";

/// The service on the drain socket: `POST /drain` only. Pure construction, like [`app`](super::app).
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
    pub(super) path: PathBuf,
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

#[cfg(test)]
mod tests {
    //! The drain socket, and `/drain` over TCP.

    use tokio::net::TcpListener;

    use super::*;
    use crate::server::fixtures::{config, ready_state, send};
    use crate::server::{app, run};

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
}
