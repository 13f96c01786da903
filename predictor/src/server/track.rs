//! Around the whole service: every answer counted and logged, `Connection: close` when draining or old.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use super::Shared;
use crate::metrics::Route;

/// The connection a request came on: since when it is open, and since when it waits for a request head.
#[derive(Clone, Debug)]
pub struct Connection {
    pub accepted: Instant,
    pub waiting: Arc<Waiting>,
}

impl Connection {
    /// A connection accepted now, waiting for its first request head.
    pub fn accepted_now() -> Self {
        Self {
            accepted: Instant::now(),
            waiting: Arc::default(),
        }
    }

    /// Since when the connection waits for a request head, or `None` while the server holds it (answering
    /// a request, or waiting for a permit of the concurrency limit). What the header-read bound watches
    /// ([`Connections::serve`](super::connections::Connections::serve)): written twice a request, as two
    /// stores, instead of a timer armed and cancelled per request head.
    pub fn waiting_since(&self) -> Option<Instant> {
        match self.waiting.0.load(Ordering::Relaxed) {
            ANSWERING => None,
            nanos => Some(self.accepted + Duration::from_nanos(nanos)),
        }
    }

    /// The connection waits for a request head from now.
    fn waiting_from_now(&self) {
        self.waiting_from(Instant::now());
    }

    /// The connection waits for a request head from `now`.
    fn waiting_from(&self, now: Instant) {
        let since = now.saturating_duration_since(self.accepted);
        let nanos = u64::try_from(since.as_nanos()).unwrap_or(ANSWERING - 1);
        self.waiting.0.store(nanos, Ordering::Relaxed);
    }
}

/// Since when a connection waits for a request head, in nanoseconds after it was accepted, or
/// [`ANSWERING`]. Only the connection's own task writes it (one request at a time).
#[derive(Debug, Default)]
pub struct Waiting(AtomicU64);

const ANSWERING: u64 = u64::MAX;

/// Counts every request by route and status with its latency (and logs it at debug), and answers
/// `Connection: close` when the server is draining or the request's connection is older than the maximum
/// age. Outermost: whatever the layers inside answer is counted too.
#[derive(Clone)]
pub struct Track<S> {
    pub(super) inner: S,
    pub(super) state: Shared,
    pub(super) max_connection_age: Option<Duration>,
    /// Set per accepted connection by [`Connections::serve`](super::connections::Connections::serve);
    /// `None` when the service is called directly.
    pub(super) connection: Option<Connection>,
}

impl<S> Track<S> {
    /// This service for the requests of one connection.
    pub(super) fn on(&self, connection: Connection) -> Self
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
        let ready = self.inner.poll_ready(cx);
        if let Some(connection) = &self.connection {
            // hyper reads the next request head only once the service is ready: while the concurrency
            // limit holds it, the connection waits on the server, not on the client (hyper's own
            // header-read timer was not armed then either); its head wait starts when a permit comes.
            match ready {
                Poll::Pending => connection.waiting.0.store(ANSWERING, Ordering::Relaxed),
                Poll::Ready(_) if connection.waiting_since().is_none() => {
                    connection.waiting_from_now()
                }
                Poll::Ready(_) => {}
            }
        }
        ready
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = Route::of(request.uri().path());
        let started = Instant::now();
        let mut too_old = false;
        if let Some(connection) = &self.connection {
            // The request's start, read once, is also what the connection's age is measured at.
            too_old = self
                .max_connection_age
                .is_some_and(|max| started.saturating_duration_since(connection.accepted) >= max);
            connection.waiting.0.store(ANSWERING, Ordering::Relaxed);
        }
        Tracked {
            inner: self.inner.call(request),
            state: self.state.clone(),
            route,
            started,
            too_old,
            connection: self.connection.clone(),
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
        connection: Option<Connection>,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Tracked<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = std::task::ready!(this.inner.poll(cx));
        let (status, latency) = (response.status().as_u16(), this.started.elapsed());
        if let Some(connection) = this.connection {
            // Answered: from now the connection waits for its next request head.
            connection.waiting_from(*this.started + latency);
        }
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
