//! Runs `predictor serve` in-process on a loopback port for tests.

use std::net::TcpListener as StdListener;
use std::thread::JoinHandle;
use std::time::Duration;

use model_store::testing::poll;
use predictor::server::{self, ServeConfig};
use tokio::sync::oneshot;

use super::FileServer;

/// The model date of [`trained_model`]'s default model.
pub const MODEL_DATE: &str = "2026-11-24T08:00:00Z";
/// Where [`serving_model`]'s store holds the model.
pub const MODEL_PATH: &str = "/models/american.bin";

/// A model trained on train.csv with `date` as its model date: (file bytes, sha256). Another date gives
/// another file and another digest.
pub fn trained_model(date: &str) -> (Vec<u8>, String) {
    let train = std::fs::read(super::tweets("train.csv")).unwrap();
    predictor::testing::trained_model(&train, date)
}

/// A store holding the [`MODEL_DATE`] model at [`MODEL_PATH`], and a ready server on it (version "0.2"),
/// its config first passed through `adjust`.
pub fn serving_model(adjust: impl FnOnce(&mut ServeConfig)) -> (FileServer, TestServer) {
    let (bytes, sha) = trained_model(MODEL_DATE);
    let store = FileServer::start();
    store.put(MODEL_PATH, bytes);
    let mut config = ServeConfig::new(store.url(MODEL_PATH), sha, "0.2");
    adjust(&mut config);
    let server = TestServer::start(config);
    server.wait_ready(Duration::from_secs(10));
    (store, server)
}

/// A server running on its own thread and runtime; dropped → shut down.
pub struct TestServer {
    pub port: u16,
    stop: Option<oneshot::Sender<Duration>>,
    thread: Option<JoinHandle<predictor::Result<()>>>,
}

impl TestServer {
    /// Starts serving `config` on 127.0.0.1 (random port), fast retries for tests.
    pub fn start(mut config: ServeConfig) -> Self {
        // The tests' own reqwest clients need the process's TLS provider too (see model_store::tls).
        model_store::tls::install_crypto_provider();
        config.retry_initial = Duration::from_millis(50);
        config.retry_max = Duration::from_millis(200);
        let listener = StdListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<Duration>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                server::run(listener, config, async move {
                    stopped.await.unwrap_or_default()
                })
                .await
            })
        });
        Self {
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GET /readyz: status and JSON body.
    pub fn readyz(&self) -> (u16, serde_json::Value) {
        let response = reqwest::blocking::get(self.url("/readyz")).unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_str(&response.text().unwrap()).unwrap(),
        )
    }

    /// Waits (bounded) until /readyz says 200; panics with the last reason otherwise.
    pub fn wait_ready(&self, within: Duration) {
        let mut last = serde_json::Value::Null;
        poll(within, "/readyz 200", || {
            let (status, body) = self.readyz();
            last = body;
            (status == 200).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {last}"));
    }

    /// Starts the shutdown (readiness false, then `delay` of serving, then drain).
    pub fn begin_shutdown(&mut self, delay: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(delay);
        }
    }

    /// Shuts down and waits for the server thread.
    pub fn stop(mut self) -> predictor::Result<()> {
        self.begin_shutdown(Duration::ZERO);
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("server thread panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.begin_shutdown(Duration::ZERO);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
