//! The floor of the serving stack: hyper alone on one single-threaded tokio runtime (as `predictor serve`
//! with one serving thread), answering every request with a fixed JSON answer after reading its body. No
//! router, no model, no metrics, no limits. What an answer costs below everything `predictor serve` adds
//! (docs/serving.md compares the three: nginx, this, ours).
//!
//! It takes `predictor serve`'s command line and uses only `--port`, so the serving A/B runs it as a variant:
//!   cargo build --release -p predictor --example hyper_floor
//!   bench/serve_ab.py --pinned ours=target/release/predictor floor=target/release/examples/hyper_floor

use std::convert::Infallible;

use axum::body::Bytes;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The shape of `predictor serve`'s answer.
const ANSWER: &str = r#"{"is_american":1,"version":"floor","model_date":"2026-12-08T00:00:00Z","model":"000000000000","probability":0.876097}"#;

/// A fixed body, as one frame.
struct Fixed(Option<Bytes>);

impl hyper::body::Body for Fixed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.take().map(|data| Ok(hyper::body::Frame::data(data))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.as_ref().map_or(0, |d| d.len() as u64))
    }
}

async fn answer(request: Request<hyper::body::Incoming>) -> Result<Response<Fixed>, Infallible> {
    use axum::body::HttpBody;
    let mut body = request.into_body();
    // Read the body to its end, as a handler must.
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        if frame.is_err() {
            break;
        }
    }
    let mut response = Response::new(Fixed(Some(Bytes::from_static(ANSWER.as_bytes()))));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port = args
        .windows(2)
        .find(|pair| pair[0] == "--port")
        .and_then(|pair| pair[1].parse::<u16>().ok())
        .unwrap_or(8080);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(answer);
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
