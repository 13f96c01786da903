//! Reading from any [`Location`]: [`open`] a blocking byte stream (training and evaluation data),
//! or download a model-sized object, bounded in size and time, with a [`Fetcher`] (the server, the
//! operator's pre-flight check).
//!
//! This module only opens byte streams; parsing lives with their readers (the predictor's data and
//! model files). Who may read a store that is not anonymous is a [`StoreAccess`].

use std::fs::File;
use std::io::Read;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::access::StoreAccess;
use crate::error::{Error, Result};
use crate::location::{Location, redact};
use crate::transport::{certificates, describe_reqwest, too_large};
use crate::{hdfs, oci, s3};

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

/// Opens `location` for reading (blocking I/O; not for use inside an async runtime), with this
/// process's own [`StoreAccess::from_env`].
pub fn open(location: &str) -> Result<Opened> {
    let fail = |reason: String| Error::Read {
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
        Location::Http(url) => open_http(
            reqwest::Url::parse(&url).map_err(|e| fail(e.to_string()))?,
            None,
            None,
            |status, _| format!("the server answered HTTP {status}"),
        )
        .map_err(fail),
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
        Location::S3(url) => {
            let access = StoreAccess::from_env()?;
            let signed = s3::signed_url(&url, &access.s3, s3::Action::Get).map_err(fail)?;
            let origin = access.s3.shown_endpoint();
            open_http(
                signed,
                access.ca_pem.as_deref(),
                Some(origin),
                |status, body| s3::describe_status(status, body, &access.s3),
            )
            .map_err(fail)
        }
        Location::Oci(_) => Err(fail(
            "oci:// holds models, not data: read data from a path, http(s)://, hdfs:// or s3://"
                .into(),
        )),
    }
}

/// Most of an error answer's body read to tell what went wrong (an S3 error is a few hundred bytes).
const ERROR_BODY_BYTES: usize = 16 << 10;

/// A blocking GET of `url` (trusting `ca_pem` too); `describe` tells an error answer from its status
/// and the start of its body. Errors never show the URL (a signed one is a credential).
fn open_http(
    url: reqwest::Url,
    ca_pem: Option<&[u8]>,
    origin: Option<&str>,
    describe: impl Fn(reqwest::StatusCode, &[u8]) -> String,
) -> Result<Opened, String> {
    crate::tls::install_crypto_provider();
    let mut builder = reqwest::blocking::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(DOWNLOAD_TIMEOUT);
    if let Some(policy) = crate::egress::Policy::from_env() {
        builder = policy.apply_blocking(builder);
    }
    if let Some(pem) = ca_pem {
        builder = builder.tls_certs_merge(certificates(pem)?);
    }
    let client = builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {}", describe_reqwest(&e)))?;
    let response = client
        .get(url)
        .send()
        .map_err(|e| naming(describe_reqwest(&e), origin))?;
    let status = response.status();
    if !status.is_success() {
        let mut body = Vec::new();
        let _ = response
            .take(ERROR_BODY_BYTES as u64)
            .read_to_end(&mut body);
        return Err(describe(status, &body));
    }
    let len = response.content_length();
    Ok(Opened {
        reader: Box::new(response),
        len,
        rereadable: false,
    })
}

/// A transport error's reason, naming the server when the URL is not shown (a signed URL).
pub(crate) fn naming(reason: String, origin: Option<&str>) -> String {
    match origin {
        Some(origin) => format!("{reason} (the store at {origin})"),
        None => reason,
    }
}

/// Fetches a whole model-sized object (async; for the server) with a one-off [`Fetcher`], the
/// default timeouts and this process's own [`StoreAccess::from_env`]. Refuses more than `max_bytes`.
pub async fn fetch(location: &str, max_bytes: u64) -> Result<Vec<u8>> {
    let access = StoreAccess::from_env()?;
    Fetcher::new(DOWNLOAD_TIMEOUT)?
        .fetch(location, max_bytes, &access)
        .await
}

/// Downloads model-sized objects from any [`Location`], bounded in size and time: into memory
/// ([`Fetcher::fetch`]) or streamed to a writer ([`Fetcher::fetch_into`], what the operator spools to
/// disk with). One fetcher keeps one HTTP client, so a caller that fetches often (the operator's
/// pre-flight check) reuses its connections.
#[derive(Clone, Debug)]
pub struct Fetcher {
    http: reqwest::Client,
    timeout: Duration,
}

/// Writes `chunk` to `out` and counts it in `written`, refusing (before writing) a chunk that takes
/// the count past `max_bytes`: the one place every streamed source is bounded.
async fn put<W: AsyncWrite + Unpin>(
    out: &mut W,
    written: &mut u64,
    chunk: &[u8],
    max_bytes: u64,
) -> Result<(), String> {
    if *written + chunk.len() as u64 > max_bytes {
        return Err(too_large(None, max_bytes));
    }
    out.write_all(chunk)
        .await
        .map_err(|e| format!("cannot keep the downloaded bytes: {e}"))?;
    *written += chunk.len() as u64;
    Ok(())
}

impl Fetcher {
    /// A fetcher whose every fetch takes at most `timeout` (connecting: at most 10 s of it).
    pub fn new(timeout: Duration) -> Result<Self> {
        let http = crate::tls::bounded_client(timeout, CONNECT_TIMEOUT)
            .build()
            .map_err(|e| Error::Client(describe_reqwest(&e)))?;
        Ok(Self { http, timeout })
    }

    /// The whole object at `location`, read with `access`, in memory. More than `max_bytes` is
    /// refused before reading when the source states its size, else as soon as the limit is passed.
    /// Errors name the location only in its [`redact`]ed form.
    pub async fn fetch(
        &self,
        location: &str,
        max_bytes: u64,
        access: &StoreAccess,
    ) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.fetch_into(location, max_bytes, access, &mut bytes)
            .await?;
        Ok(bytes)
    }

    /// Streams the object at `location` into `out` chunk by chunk (a chunk at a time in memory) and
    /// returns its length; the same limits as [`Fetcher::fetch`], and the whole of it (connecting,
    /// reading, writing) within the fetcher's timeout. On an error `out` may hold part of the
    /// object: the caller throws it away.
    pub async fn fetch_into<W: AsyncWrite + Unpin + Send>(
        &self,
        location: &str,
        max_bytes: u64,
        access: &StoreAccess,
        out: &mut W,
    ) -> Result<u64> {
        let fail = |reason: String| Error::Read {
            location: redact(location),
            reason,
        };
        let parsed = Location::parse(location)?;
        let streamed = async {
            let mut written = 0;
            match parsed {
                Location::File(path) => {
                    let file = tokio::fs::File::open(&path)
                        .await
                        .map_err(|e| e.to_string())?;
                    let meta = file.metadata().await.map_err(|e| e.to_string())?;
                    if meta.len() > max_bytes {
                        return Err(too_large(Some(meta.len()), max_bytes));
                    }
                    // Bytes actually read count, not the size the file system states.
                    let mut file = file.take(max_bytes + 1);
                    let mut buffer = vec![0; CHUNK_BYTES];
                    loop {
                        let n = file.read(&mut buffer).await.map_err(|e| e.to_string())?;
                        if n == 0 {
                            break;
                        }
                        put(out, &mut written, &buffer[..n], max_bytes).await?;
                    }
                }
                Location::Http(url) => {
                    let url = reqwest::Url::parse(&url).map_err(|e| e.to_string())?;
                    written = self
                        .get_into(url, None, None, max_bytes, out, |status, _| {
                            format!("the server answered HTTP {status}")
                        })
                        .await?;
                }
                Location::Hdfs(url) => written = hdfs::fetch_into(&url, max_bytes, out).await?,
                Location::S3(url) => {
                    let signed = s3::signed_url(&url, &access.s3, s3::Action::Get)?;
                    written = self
                        .get_into(
                            signed,
                            access.ca_pem.as_deref(),
                            Some(access.s3.shown_endpoint()),
                            max_bytes,
                            out,
                            |status, body| s3::describe_status(status, body, &access.s3),
                        )
                        .await?;
                }
                Location::Oci(url) => {
                    written = oci::fetch_into(
                        &url,
                        access.registry.as_ref(),
                        access.ca_pem.as_deref(),
                        self.timeout,
                        max_bytes,
                        out,
                    )
                    .await?;
                }
            }
            out.flush()
                .await
                .map_err(|e| format!("cannot keep the downloaded bytes: {e}"))?;
            Ok(written)
        };
        // NB: the HTTP client's timeout does not cover HDFS, nor a slow writer: bound the whole.
        match tokio::time::timeout(self.timeout, streamed).await {
            Ok(fetched) => fetched.map_err(fail),
            Err(_) => Err(fail(format!("timed out after {:?}", self.timeout))),
        }
    }

    /// This fetcher's client, or one that also trusts `ca_pem` (built for the call: a private CA is
    /// the exception).
    fn client(&self, ca_pem: Option<&[u8]>) -> Result<reqwest::Client, String> {
        match ca_pem {
            None => Ok(self.http.clone()),
            Some(pem) => crate::tls::bounded_client(self.timeout, CONNECT_TIMEOUT)
                .tls_certs_merge(certificates(pem)?)
                .build()
                .map_err(|e| format!("cannot build an HTTP client: {}", describe_reqwest(&e))),
        }
    }

    /// GET `url` into `out`, at most `max_bytes`, and its length; `describe` tells an error answer
    /// from its status and the start of its body. Errors never show the URL (a signed one is a
    /// credential).
    async fn get_into<W: AsyncWrite + Unpin>(
        &self,
        url: reqwest::Url,
        ca_pem: Option<&[u8]>,
        origin: Option<&str>,
        max_bytes: u64,
        out: &mut W,
        describe: impl Fn(reqwest::StatusCode, &[u8]) -> String,
    ) -> Result<u64, String> {
        let mut response = self
            .client(ca_pem)?
            .get(url)
            .send()
            .await
            .map_err(|e| naming(describe_reqwest(&e), origin))?;
        let status = response.status();
        if !status.is_success() {
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| naming(describe_reqwest(&e), origin))?
            {
                let room = ERROR_BODY_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= ERROR_BODY_BYTES {
                    break;
                }
            }
            return Err(describe(status, &body));
        }
        if let Some(len) = response.content_length().filter(|&len| len > max_bytes) {
            return Err(too_large(Some(len), max_bytes));
        }
        let mut written = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| naming(describe_reqwest(&e), origin))?
        {
            put(out, &mut written, &chunk, max_bytes).await?;
        }
        Ok(written)
    }
}

/// Bytes read from a local file at a time.
const CHUNK_BYTES: usize = 64 << 10;

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Why `fetcher` refused `url` with a limit of `max_bytes`.
    async fn refusal(fetcher: &Fetcher, url: &str, max_bytes: u64) -> String {
        let access = StoreAccess::default();
        let err = fetcher.fetch(url, max_bytes, &access).await.unwrap_err();
        err.to_string()
    }

    #[tokio::test]
    async fn fetcher_enforces_the_limit_on_every_scheme_and_hides_the_url() {
        let fetcher = Fetcher::new(Duration::from_secs(5)).unwrap();
        let access = StoreAccess::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = format!("file://{}", path.display());
        assert_eq!(
            fetcher.fetch(&file, 10, &access).await.unwrap(),
            b"0123456789"
        );
        let err = refusal(&fetcher, &file, 9).await;
        assert!(
            err.contains("10 bytes is more than the 9-byte limit"),
            "{err}"
        );
        // A file whose size says nothing: what is read counts, and reading stops past the limit.
        for endless in ["/dev/zero", "file:///dev/zero"] {
            let err = refusal(&fetcher, endless, 4096).await;
            assert!(err.contains("more than the 4096-byte limit"), "{err}");
        }

        // Announced size over the limit: refused before reading.
        let url = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789").await;
        let err = refusal(&fetcher, &url, 9).await;
        assert!(
            err.contains("10 bytes is more than the 9-byte limit"),
            "{err}"
        );
        assert!(!err.contains("secret") && !err.contains("s3cr3t"), "{err}");
        // No size announced (read to close): refused while reading.
        let url = serve_once(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n0123456789").await;
        let err = refusal(&fetcher, &url, 9).await;
        assert!(err.contains("more than the 9-byte limit"), "{err}");
        let url = serve_once(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n0123456789").await;
        assert_eq!(
            fetcher.fetch(&url, 10, &access).await.unwrap(),
            b"0123456789"
        );
        let url = serve_once(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await;
        let err = refusal(&fetcher, &url, 10).await;
        assert!(err.contains("HTTP 404"), "{err}");
        assert!(err.contains("http://***@127.0.0.1:"), "{err}");
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
