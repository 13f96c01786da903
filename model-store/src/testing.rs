//! Loopback HTTP for the workspace's tests (feature `testing`): a file server that plays a model or
//! data store, a server of endless junk (a hostile URL), a plain HTTP GET, a registry's error body,
//! a free loopback port, and the bounded poll for what a test must wait on. One implementation of each, for this crate's
//! tests, the predictor's and the operator's.
//!
//! Both speak just enough HTTP/1.1 by hand, on std threads, so they work from sync tests and from
//! inside an async runtime alike (a blocking reqwest client would panic there), and a test controls
//! exactly when the store answers or disappears.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Bodies served by a [`FileServer`]: URL path (query included) → bytes.
type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;
/// Requests a [`FileServer`] answered: URL path → count.
type Hits = Arc<Mutex<HashMap<String, usize>>>;

/// An HTTP/1.1 server on 127.0.0.1 that answers every request with the body stored for its path,
/// else 404, one thread per connection. Entries can be replaced at any time.
pub struct FileServer {
    /// The port it listens on.
    pub port: u16,
    files: Files,
    hits: Hits,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FileServer {
    /// Serves on a free loopback port.
    pub fn start() -> Self {
        Self::start_slow(Duration::ZERO)
    }

    /// A store that waits `delay` before each answer (a slow model store).
    pub fn start_slow(delay: Duration) -> Self {
        Self::serve(bind_loopback(), delay)
    }

    /// Serves on an already bound listener (to start on a port chosen earlier).
    pub fn start_on(listener: TcpListener) -> Self {
        Self::serve(listener, Duration::ZERO)
    }

    fn serve(listener: TcpListener, delay: Duration) -> Self {
        // The tests' own reqwest clients need the process's TLS provider (see crate::tls).
        crate::tls::install_crypto_provider();
        let port = listener.local_addr().expect("listener address").port();
        let files = Files::default();
        let hits = Hits::default();
        let stopping = Arc::new(AtomicBool::new(false));
        let (shared, counted, stop) = (files.clone(), hits.clone(), stopping.clone());
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let (files, hits) = (shared.clone(), counted.clone());
                thread::spawn(move || answer(stream, &files, &hits, delay));
            }
        });
        Self {
            port,
            files,
            hits,
            stopping,
            acceptor: Some(acceptor),
        }
    }

    /// Makes `body` available at `path` (e.g. `/models/a.model`); returns its URL.
    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) -> String {
        self.files
            .lock()
            .expect("file table")
            .insert(path.to_string(), body.into());
        self.url(path)
    }

    /// What is served at `path`, if anything.
    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        self.files.lock().expect("file table").get(path).cloned()
    }

    /// How many requests for `path` it has answered (or is answering).
    pub fn requests(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hit table")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Stops serving `path` (404 from now on).
    pub fn remove(&self, path: &str) {
        self.files.lock().expect("file table").remove(path);
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Closes the listening socket: from now on connections to the port are refused (the store is
    /// gone).
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.join().expect("file server thread");
        }
    }
}

fn bind_loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

fn answer(
    stream: TcpStream,
    files: &Mutex<HashMap<String, Vec<u8>>>,
    hits: &Mutex<HashMap<String, usize>>,
    delay: Duration,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
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
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    *hits
        .lock()
        .expect("hit table")
        .entry(path.to_string())
        .or_default() += 1;
    let body = files.lock().expect("file table").get(path).cloned();
    thread::sleep(delay);
    let mut stream = stream;
    let _ = match body {
        Some(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
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
    // The end of the answer (a client may read to EOF)...
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // NB: ...but closing with unread request bytes would reset the connection under the client's
    // feet: wait for the client to close first (bounded by the read timeout).
    let _ = reader.read(&mut [0; 1]);
}

/// An HTTP/1.1 server on 127.0.0.1 whose every answer is `200` with a body of `len` bytes of junk
/// (or an endless one: `None`), streamed a chunk at a time without a `Content-Length`, so a client
/// learns its size only by reading it: what a hostile URL serves. Counts the bytes it got out.
pub struct JunkServer {
    /// `http://127.0.0.1:PORT`: any path.
    pub url: String,
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl JunkServer {
    pub fn start(len: Option<u64>) -> Self {
        let listener = bind_loopback();
        let url = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("address").port()
        );
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = sent.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counted = counted.clone();
                thread::spawn(move || junk(stream, len, &counted));
            }
        });
        Self { url, sent }
    }

    /// Bytes of body written to clients so far (the socket buffers hold some the client never read).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

fn junk(mut stream: TcpStream, len: Option<u64>, sent: &std::sync::atomic::AtomicU64) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.read(&mut [0; 4096]);
    let chunk = [b'j'; 64 << 10];
    if stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return;
    }
    let mut left = len.unwrap_or(u64::MAX);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if stream.write_all(&chunk[..n]).is_err() {
            return;
        }
        sent.fetch_add(n as u64, Ordering::SeqCst);
        left -= n as u64;
    }
}

/// GET `path` from `addr` (`127.0.0.1:PORT`) over HTTP/1.1: (status code, body), or None if the
/// server cannot be reached or does not answer within 5 s.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some((code, body.to_string()))
}

/// A registry API error body (`{"errors":[{"code":…}]}`), for fake registries.
pub fn registry_error(code: &str) -> String {
    format!(r#"{{"errors":[{{"code":"{code}","message":"x"}}]}}"#)
}

/// A loopback port with nothing listening on it (bound to 127.0.0.1:0, then released): for a program that
/// takes a port number rather than a socket, or a URL that must refuse connections. Another process may take
/// it in between; tests accept that race.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Calls `probe` until it returns `Some`, for at most `within`; `Err` naming `what` otherwise. For
/// what a test must poll (a process, a port, an HTTP endpoint); a probe may panic to stop early. The
/// pause between calls grows from 10 ms to 100 ms: quick things are seen quickly, slow ones are not
/// hammered.
pub fn poll<T>(
    within: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {within:?} waiting for {what}"));
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_what_was_put_404s_the_rest_and_refuses_after_stop() {
        let store = FileServer::start();
        let url = store.put("/a.bin?v=1", b"abc".to_vec());
        assert_eq!(url, format!("http://127.0.0.1:{}/a.bin?v=1", store.port));
        let addr = format!("127.0.0.1:{}", store.port);
        assert_eq!(http_get(&addr, "/a.bin?v=1"), Some((200, "abc".into())));
        assert_eq!(http_get(&addr, "/a.bin"), Some((404, String::new())));
        store.put("/a.bin?v=1", b"new".to_vec());
        assert_eq!(store.get("/a.bin?v=1").as_deref(), Some(&b"new"[..]));
        assert_eq!(http_get(&addr, "/a.bin?v=1"), Some((200, "new".into())));
        store.remove("/a.bin?v=1");
        assert_eq!(http_get(&addr, "/a.bin?v=1"), Some((404, String::new())));
        store.stop();
        assert!(TcpStream::connect(&addr).is_err());
        assert_eq!(http_get(&addr, "/a.bin?v=1"), None);
    }

    #[test]
    fn a_slow_store_answers_after_its_delay() {
        let store = FileServer::start_slow(Duration::from_millis(300));
        store.put("/m", b"x".to_vec());
        let started = std::time::Instant::now();
        let got = http_get(&format!("127.0.0.1:{}", store.port), "/m");
        assert_eq!(got, Some((200, "x".into())));
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn poll_returns_the_first_some_and_gives_up_at_its_bound() {
        let mut calls = 0;
        let got = poll(Duration::from_secs(5), "the third call", || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, Ok(3));
        let started = Instant::now();
        let never = poll(Duration::from_millis(200), "never", || None::<()>);
        assert_eq!(
            never,
            Err("timed out after 200ms waiting for never".to_string())
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
