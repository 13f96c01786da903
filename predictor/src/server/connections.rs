//! Accepting connections, dealing them to the serving threads, serving HTTP/1.1 and draining them.

use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{App, Connection};
use crate::error::{Error, Result};

/// The connection-level bounds.
#[derive(Clone, Copy)]
pub(super) struct Limits {
    /// Longest time a client gets to send a request head (slowloris).
    pub(super) header_timeout: Duration,
    /// Longest time open connections get to finish once the listener is closed.
    pub(super) drain_timeout: Duration,
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
pub(super) fn start_workers(n: usize, app: impl Fn() -> App, limits: Limits) -> Result<Workers> {
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
pub(super) async fn accept(
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
pub(super) fn http1_server(header_timeout: Duration) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    http
}

/// The connections one runtime serves: HTTP/1.1 with a header-read timeout, each watched for the drain.
/// Unlike `axum::serve`, a client gets at most `header_timeout` to send a request head; its body is bounded
/// by the service (see [`within`](super::body::within)).
pub(super) struct Connections {
    app: App,
    http: http1::Builder,
    graceful: GracefulShutdown,
    drain_timeout: Duration,
}

impl Connections {
    pub(super) fn new(app: App, limits: Limits) -> Self {
        Self {
            app,
            http: http1_server(limits.header_timeout),
            graceful: GracefulShutdown::new(),
            drain_timeout: limits.drain_timeout,
        }
    }

    /// Serves `stream` on a task of the current runtime.
    pub(super) fn serve(&self, stream: TcpStream, connection: Connection) {
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
    pub(super) async fn drain(self) {
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
    //! The drain timeout, on a real socket.

    use super::*;
    use crate::server::fixtures::config;
    use crate::server::{ServeConfig, run};

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
