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
        let connection = Connection::accepted_now();
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

/// HTTP/1.1 serving settings: a client gets at most `header_timeout` to send a request head (slowloris),
/// bounded by hyper (a timer armed per request head). [`Connections`] bound it themselves.
pub(super) fn http1_server(header_timeout: Duration) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    http
}

/// The connections one runtime serves: HTTP/1.1, each watched for the drain and for a request head that
/// does not come. Unlike `axum::serve`, a client gets at most `header_timeout` to send a request head
/// (counted from the connection's accept or its last answer); its body is bounded by the service (see
/// [`within`](super::body::within)).
pub(super) struct Connections {
    app: App,
    http: http1::Builder,
    graceful: GracefulShutdown,
    header_timeout: Duration,
    drain_timeout: Duration,
}

impl Connections {
    pub(super) fn new(app: App, limits: Limits) -> Self {
        let mut http = http1::Builder::new();
        // The header-read bound is `serve`'s, one timer per connection (hyper's arms one per request head).
        http.header_read_timeout(None);
        Self {
            app,
            http,
            graceful: GracefulShutdown::new(),
            header_timeout: limits.header_timeout,
            drain_timeout: limits.drain_timeout,
        }
    }

    /// Serves `stream` on a task of the current runtime, closing it when a request head has not come
    /// within the header timeout (slowloris; an idle keep-alive connection too). The connection's one
    /// timer is checked when due and moved on to the new deadline if a request came meanwhile: a
    /// request costs no timer.
    pub(super) fn serve(&self, stream: TcpStream, connection: Connection) {
        // Answers are written whole; without Nagle's delay the next one never waits for an ACK.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(self.app.on(connection.clone()));
        let served = self
            .graceful
            .watch(self.http.serve_connection(TokioIo::new(stream), service));
        let limit = self.header_timeout;
        tokio::spawn(async move {
            let mut served = std::pin::pin!(served);
            let due = tokio::time::sleep(limit);
            let mut due = std::pin::pin!(due);
            loop {
                tokio::select! {
                    ended = &mut served => {
                        if let Err(error) = ended {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                        return;
                    }
                    () = &mut due => {
                        let now = Instant::now();
                        let deadline = match connection.waiting_since() {
                            Some(since) => since + limit,
                            // Answering: the body has its own bound; look again a timeout later.
                            None => now + limit,
                        };
                        if deadline <= now {
                            tracing::debug!(?limit, "no request head within the header timeout: closing");
                            return;
                        }
                        due.as_mut().reset(deadline.into());
                    }
                }
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
    //! The header timeout and the drain timeout, on a real socket.

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
    async fn a_kept_alive_connection_is_closed_a_header_timeout_after_its_last_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let limit = Duration::from_millis(400);
        let mut config = config();
        config.request_timeout = limit;
        let (address, stop, server) = serving(config).await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        let started = Instant::now();
        // A request every half timeout: the connection stays open well past one timeout.
        for _ in 0..4 {
            tokio::time::sleep(limit / 2).await;
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            while !answer.ends_with(b"ok\n") {
                let mut buf = [0u8; 512];
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed after {:?}", started.elapsed());
                answer.extend_from_slice(&buf[..n]);
            }
            assert!(answer.starts_with(b"HTTP/1.1 200"));
        }
        assert!(started.elapsed() >= limit * 2);
        // Then no request: closed about one timeout after the last answer.
        let answered = Instant::now();
        let read = tokio::time::timeout(limit * 4, stream.read(&mut [0u8; 64])).await;
        assert_eq!(read.expect("closed in time").unwrap(), 0);
        let idle = answered.elapsed();
        assert!(
            idle >= limit - Duration::from_millis(50) && idle < limit * 2,
            "{idle:?}"
        );
        stop.send(Duration::ZERO).unwrap();
        server.await.unwrap().unwrap();
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
