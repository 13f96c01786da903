//! The one route every prediction takes, straight to its handler; every other request through the router.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use futures::future::Either;

use super::Shared;
use super::predict::american;

/// The path of predictions.
pub(super) const PREDICT: &str = "/api/american";

/// `POST /api/american` answered by its handler directly, everything else by `router` (which routes
/// `POST /api/american` to the same handler: the router alone is the whole API, this is a shortcut). Through
/// the router, a request pays for matching its path, an extension with its (no) path parameters, the
/// extractors and a boxed service per route: on the shared CPUs of the serving benchmark, a few hundred
/// nanoseconds of an answer's few microseconds.
#[derive(Clone)]
pub struct Routes {
    pub(super) router: Router,
    pub(super) state: Shared,
    pub(super) timeout: Duration,
}

type Boxed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<B> tower::Service<axum::http::Request<B>> for Routes
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Boxed, <Router as tower::Service<axum::http::Request<B>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The handler is always ready; the router too, in fact.
        tower::Service::<axum::http::Request<B>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        if request.method() == Method::POST && request.uri().path() == PREDICT {
            let (state, timeout) = (self.state.clone(), self.timeout);
            let body = Body::new(request.into_body());
            return Either::Left(Box::pin(async move {
                Ok(american(State(state), body, timeout).await.into_response())
            }));
        }
        Either::Right(self.router.call(request))
    }
}
