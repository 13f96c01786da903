//! Where data and models come from: a local path, `file://`, `http://`, `https://` or `hdfs://`.
//!
//! This module only opens byte streams; parsing lives in `data` and `model`.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::hdfs::{self, HdfsUrl};

/// A parsed location.
#[derive(Clone, Debug, PartialEq)]
pub enum Location {
    File(PathBuf),
    Http(String),
    Hdfs(HdfsUrl),
}

impl Location {
    /// Parses a path or URL. Unknown schemes are refused with the list of known ones.
    pub fn parse(location: &str) -> Result<Self> {
        let lower = location.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Ok(Self::Http(location.to_string()))
        } else if lower.starts_with("hdfs://") {
            HdfsUrl::parse(location)
                .map(Self::Hdfs)
                .map_err(|reason| Error::Source {
                    location: redact(location),
                    reason,
                })
        } else if let Some(path) = location.strip_prefix("file://") {
            Ok(Self::File(PathBuf::from(path)))
        } else if let Some((scheme, _)) = location.split_once("://") {
            Err(Error::Source {
                location: redact(location),
                reason: format!(
                    "unsupported scheme {scheme:?}: use a local path, file://, http://, https:// or hdfs://"
                ),
            })
        } else {
            Ok(Self::File(PathBuf::from(location)))
        }
    }
}

/// `location` for logs and messages: any `user:password@` and any query or fragment (where tokens such
/// as presigned-URL signatures live) replaced by `***`. A local path is shown as it is.
pub fn redact(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let host = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let path = match tail.find(['?', '#']) {
        Some(query) => format!("{}?***", &tail[..query]),
        None => tail.to_string(),
    };
    format!("{scheme}://{host}{path}")
}

/// An open byte stream and what is known about it.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    /// Size in bytes, when the source says.
    pub len: Option<u64>,
    /// True when re-opening is cheap (a local file); remote streams are spooled by callers that need two passes.
    pub rereadable: bool,
}

/// Longest a whole download may take (a stalled server fails instead of hanging the command).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens `location` for reading (blocking I/O; not for use inside an async runtime).
pub fn open(location: &str) -> Result<Opened> {
    let fail = |reason: String| Error::Source {
        location: redact(location),
        reason,
    };
    match Location::parse(location)? {
        Location::File(path) => {
            let file = File::open(&path).map_err(|e| fail(e.to_string()))?;
            let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
            if meta.is_dir() {
                return Err(fail("is a directory, not a file".into()));
            }
            Ok(Opened {
                reader: Box::new(file),
                len: Some(meta.len()),
                rereadable: true,
            })
        }
        Location::Http(url) => {
            crate::tls::install_crypto_provider();
            let client = reqwest::blocking::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(DOWNLOAD_TIMEOUT)
                .build()
                .map_err(|e| fail(format!("cannot build an HTTP client: {e}")))?;
            let response = client
                .get(&url)
                .send()
                .map_err(|e| fail(describe_reqwest(&e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(fail(format!("the server answered HTTP {status}")));
            }
            let len = response.content_length();
            Ok(Opened {
                reader: Box::new(response),
                len,
                rereadable: false,
            })
        }
        Location::Hdfs(url) => {
            let (reader, len) = hdfs::open(&url).map_err(fail)?;
            // Spooled like HTTP although reopening is cheap: both training passes then see the same bytes
            // even if someone replaces the file in between.
            Ok(Opened {
                reader,
                len: Some(len),
                rereadable: false,
            })
        }
    }
}

/// Fetches a whole model-sized object (async; for the server) with a one-off [`Fetcher`] and the
/// default timeouts. Refuses more than `max_bytes`.
pub async fn fetch(location: &str, max_bytes: u64) -> Result<Vec<u8>> {
    Fetcher::new(DOWNLOAD_TIMEOUT)?
        .fetch(location, max_bytes)
        .await
}

/// Downloads whole model-sized objects from any [`Location`], bounded in size and time. One fetcher
/// keeps one HTTP client, so a caller that fetches often (the operator's pre-flight check) reuses
/// its connections.
#[derive(Clone, Debug)]
pub struct Fetcher {
    http: reqwest::Client,
    timeout: Duration,
}

impl Fetcher {
    /// A fetcher whose every fetch takes at most `timeout` (connecting: at most 10 s of it).
    pub fn new(timeout: Duration) -> Result<Self> {
        let http = crate::tls::bounded_client(timeout, CONNECT_TIMEOUT)
            .build()
            .map_err(|e| Error::Source {
                location: "(none yet)".into(),
                reason: format!("cannot build an HTTP client: {}", describe_reqwest(&e)),
            })?;
        Ok(Self { http, timeout })
    }

    /// The whole object at `location`. More than `max_bytes` is refused before reading when the
    /// source states its size, else as soon as the limit is passed. Errors name the location only
    /// in its [`redact`]ed form.
    pub async fn fetch(&self, location: &str, max_bytes: u64) -> Result<Vec<u8>> {
        let fail = |reason: String| Error::Source {
            location: redact(location),
            reason,
        };
        let too_big = |len: u64| {
            fail(format!(
                "{len} bytes is more than the {max_bytes}-byte limit"
            ))
        };
        match Location::parse(location)? {
            Location::File(path) => {
                let meta = tokio::fs::metadata(&path)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                if meta.len() > max_bytes {
                    return Err(too_big(meta.len()));
                }
                tokio::fs::read(&path)
                    .await
                    .map_err(|e| fail(e.to_string()))
            }
            Location::Http(url) => {
                let mut response = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| fail(describe_reqwest(&e)))?;
                let status = response.status();
                if !status.is_success() {
                    return Err(fail(format!("the server answered HTTP {status}")));
                }
                if let Some(len) = response.content_length().filter(|&len| len > max_bytes) {
                    return Err(too_big(len));
                }
                let mut bytes = Vec::new();
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .map_err(|e| fail(describe_reqwest(&e)))?
                {
                    if bytes.len() as u64 + chunk.len() as u64 > max_bytes {
                        return Err(fail(format!("more than the {max_bytes}-byte limit")));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(bytes)
            }
            // NB: the HTTP client's timeout does not cover HDFS: bound the whole read here.
            Location::Hdfs(url) => {
                match tokio::time::timeout(self.timeout, hdfs::fetch(&url, max_bytes)).await {
                    Ok(fetched) => fetched.map_err(fail),
                    Err(_) => Err(fail(format!("timed out after {:?}", self.timeout))),
                }
            }
        }
    }
}

/// What went wrong, with the chain of causes (where reqwest keeps "connection refused"), never the URL
/// (it may carry credentials).
pub fn describe_reqwest(error: &reqwest::Error) -> String {
    let mut text = String::from(if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "the response body broke off"
    } else {
        "the request failed"
    });
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A reader that hashes (sha256) and counts what passes through it, and reports progress.
pub struct DigestReader<R, F> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    on_progress: F,
}

impl<R: Read, F: FnMut(u64)> DigestReader<R, F> {
    /// Wraps `inner`; `on_progress` gets the running byte count after each read.
    pub fn new(inner: R, on_progress: F) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            on_progress,
        }
    }

    /// sha256 (hex) and byte count of everything read.
    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<R: Read, F: FnMut(u64)> Read for DigestReader<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        (self.on_progress)(self.bytes);
        Ok(n)
    }
}

/// A reader that copies what it reads into a writer (used to spool a remote source for a second pass).
pub struct TeeReader<R, W> {
    pub inner: R,
    pub copy: W,
}

impl<R: Read, W: std::io::Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes() {
        assert_eq!(
            Location::parse("data/train.csv").unwrap(),
            Location::File("data/train.csv".into())
        );
        assert_eq!(
            Location::parse("file:///tmp/x").unwrap(),
            Location::File("/tmp/x".into())
        );
        assert!(matches!(
            Location::parse("HTTPS://h/x").unwrap(),
            Location::Http(_)
        ));
        assert_eq!(
            Location::parse("hdfs://127.0.0.1:9000/datasets/training.csv").unwrap(),
            Location::Hdfs(HdfsUrl {
                namenode: "hdfs://127.0.0.1:9000".into(),
                path: "/datasets/training.csv".into(),
            })
        );
        let err = Location::parse("hdfs://nn:9000/").unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read hdfs://nn:9000/: ") && err.contains("names no file"),
            "{err}"
        );
        let err = Location::parse("ftp://user:pw@h/x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unsupported scheme \"ftp\"") && !err.contains("pw"),
            "{err}"
        );
    }

    #[test]
    fn redacts_userinfo_and_query_only() {
        assert_eq!(
            redact("https://u:secret@host:1/p@x"),
            "https://***@host:1/p@x"
        );
        assert_eq!(redact("http://host/p@x"), "http://host/p@x");
        assert_eq!(
            redact("http://u:pw@h/m.bin?token=t0k&x=1#frag"),
            "http://***@h/m.bin?***"
        );
        assert_eq!(redact("https://h?sig=abc@def"), "https://h?***");
        assert_eq!(
            redact("hdfs://nn:9000/models/m.bin"),
            "hdfs://nn:9000/models/m.bin"
        );
        assert_eq!(redact("local/path?x"), "local/path?x");
    }

    /// A one-request HTTP server on loopback answering `response` verbatim; its URL.
    async fn serve_once(response: &'static [u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(response).await;
        });
        format!("http://u:secret@{addr}/m.bin?sig=s3cr3t")
    }

    #[tokio::test]
    async fn fetcher_enforces_the_limit_on_every_scheme_and_hides_the_url() {
        let fetcher = Fetcher::new(Duration::from_secs(5)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = format!("file://{}", path.display());
        assert_eq!(fetcher.fetch(&file, 10).await.unwrap(), b"0123456789");
        let err = fetcher.fetch(&file, 9).await.unwrap_err().to_string();
        assert!(
            err.contains("10 bytes is more than the 9-byte limit"),
            "{err}"
        );

        // Announced size over the limit: refused before reading.
        let url = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789").await;
        let err = fetcher.fetch(&url, 9).await.unwrap_err().to_string();
        assert!(
            err.contains("10 bytes is more than the 9-byte limit"),
            "{err}"
        );
        assert!(!err.contains("secret") && !err.contains("s3cr3t"), "{err}");
        // No size announced (read to close): refused while reading.
        let url = serve_once(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n0123456789").await;
        let err = fetcher.fetch(&url, 9).await.unwrap_err().to_string();
        assert!(err.contains("more than the 9-byte limit"), "{err}");
        let url = serve_once(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n0123456789").await;
        assert_eq!(fetcher.fetch(&url, 10).await.unwrap(), b"0123456789");
        let url = serve_once(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await;
        let err = fetcher.fetch(&url, 10).await.unwrap_err().to_string();
        assert!(err.contains("HTTP 404"), "{err}");
        assert!(err.contains("http://***@127.0.0.1:"), "{err}");
    }

    #[test]
    fn digest_reader_hashes_everything() {
        let mut reader = DigestReader::new(&b"abc"[..], |_| {});
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        let (sha, n) = reader.finish();
        assert_eq!(n, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = open("/nonexistent/train.csv").err().unwrap().to_string();
        assert!(
            err.contains("/nonexistent/train.csv") && err.contains("No such file"),
            "{err}"
        );
    }
}
