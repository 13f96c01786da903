//! Shared test helpers: a tiny real HTTP file server on loopback, paths to the shared data, and (in
//! `server`) the predictor server run in-process.
#![allow(dead_code)]

pub mod server;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// Files served by [`FileServer`]: URL path → body. Replace entries at any time.
pub type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// A minimal HTTP/1.1 server on 127.0.0.1 that answers GET with the body stored for the path (query
/// included), else 404.
pub struct FileServer {
    pub port: u16,
    pub files: Files,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FileServer {
    pub fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("bind loopback"))
    }

    /// Serves on an already bound listener (to start on a port chosen earlier).
    pub fn start_on(listener: TcpListener) -> Self {
        predictor::tls::install_crypto_provider();
        let port = listener.local_addr().unwrap().port();
        let files: Files = Arc::default();
        let stopping = Arc::new(AtomicBool::new(false));
        let (shared, stop) = (files.clone(), stopping.clone());
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let files = shared.clone();
                thread::spawn(move || answer(stream, &files));
            }
        });
        Self {
            port,
            files,
            stopping,
            acceptor: Some(acceptor),
        }
    }

    /// Closes the listening socket: from now on connections to the port are refused (the store is gone).
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.join().expect("file server thread");
        }
    }

    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), body.into());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn answer(stream: TcpStream, files: &Files) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let body = files.lock().unwrap().get(&path).cloned();
    let mut stream = stream;
    let _ = match body {
        Some(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream
                .write_all(head.as_bytes())
                .and_then(|_| stream.write_all(&body))
        }
        None => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
    let _ = stream.flush();
    let _ = reader.read(&mut [0; 1]);
}

/// `../shared/data/tweets/NAME` from the workspace root.
pub fn tweets(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/tweets")
        .join(name)
}

/// A loopback port with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the real `predictor` binary with `args`.
pub fn predictor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_predictor"))
        .args(args)
        .output()
        .expect("run predictor")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
