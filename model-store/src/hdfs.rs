//! Reads one file from HDFS, `hdfs://namenode:port/path`, with the pure-Rust `hdfs-native` client (no JVM,
//! no libhdfs).
//!
//! Authentication is Hadoop's "simple" kind: the client acts as `HADOOP_USER_NAME`, else the OS user (the
//! client's own rule). Hadoop config files are optional: `HADOOP_CONF_DIR` is honoured when set (for
//! example `dfs.client.use.datanode.hostname`), but the URL alone is enough.
//!
//! Errors are plain reasons; [`crate::fetch`] adds the (redacted) location.

use std::io::{ErrorKind, Read};
use std::time::Duration;

use hdfs_native::file::FileReader;
use hdfs_native::{Client, ClientBuilder, HdfsError};
use tokio::io::{AsyncReadExt, BufReader};

/// Longest wait for the NameNode to answer "where are the blocks of this file" (a host that drops
/// packets would otherwise hang for the OS TCP timeout).
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// hdfs-native's name for Hadoop's `dfs.client.failover.max.attempts`.
const FAILOVER_MAX_ATTEMPTS: &str = "dfs.client.failover.max.attempts";

/// Bytes asked of the DataNodes per read. NB: hdfs-native starts a new DataNode stream for every read
/// call, sized to the caller's buffer, so small reads (a CSV parser's 8 KiB) would each cost a round trip.
const READ_CHUNK: usize = 1 << 20;

/// An `hdfs://` URL split into what the client connects to and the file to read.
#[derive(Clone, Debug, PartialEq)]
pub struct HdfsUrl {
    /// `hdfs://host:port`, or `hdfs://nameservice` for an HA name service defined in `HADOOP_CONF_DIR`.
    pub namenode: String,
    /// Absolute path of the file, e.g. `/datasets/covid19-sample/training.csv`.
    pub path: String,
}

impl HdfsUrl {
    /// Splits `hdfs://host[:port]/path`; refuses what the client would misread.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("hdfs://"))
            .map(|_| &url[7..])
            .ok_or_else(|| "not an hdfs:// URL".to_string())?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(
                "user names in hdfs:// URLs are not used: set HADOOP_USER_NAME instead".into(),
            );
        }
        let host = match authority.rsplit_once(':') {
            Some((host, port)) => {
                port.parse::<u16>()
                    .ok()
                    .filter(|&port| port != 0)
                    .ok_or_else(|| format!("{port:?} is not a port number"))?;
                host
            }
            None => authority,
        };
        if host.is_empty() {
            return Err("the URL names no NameNode: use hdfs://host:port/path".into());
        }
        if path.len() <= 1 || path.ends_with('/') {
            return Err("the URL names no file: use hdfs://host:port/path/to/file".into());
        }
        Ok(Self {
            namenode: format!("hdfs://{authority}"),
            path: path.to_string(),
        })
    }
}

/// Opens the file for blocking, streaming reads: `(reader, length in bytes)`. Not for use inside an async
/// runtime (it runs its own).
pub fn open(url: &HdfsUrl) -> Result<(Box<dyn Read + Send>, u64), String> {
    // One I/O thread of our own: it keeps DataNode packets arriving while the caller is busy parsing.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("hdfs-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HDFS I/O thread: {e}"))?;
    let client = client_builder(url)?
        .with_io_runtime(runtime.handle().clone())
        .build()
        .map_err(|e| describe(&e, url))?;
    let file = runtime.block_on(open_file(&client, url))?;
    let len = file.file_length() as u64;
    Ok((
        Box::new(BlockingReader {
            file: BufReader::with_capacity(READ_CHUNK, file),
            runtime,
        }),
        len,
    ))
}

/// Reads the whole file (async, for the server), refusing more than `max_bytes` before downloading.
pub async fn fetch(url: &HdfsUrl, max_bytes: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    fetch_into(url, max_bytes, &mut bytes).await?;
    Ok(bytes)
}

/// Streams the file at `url` into `out` (a packet at a time in memory) and returns its length;
/// more than `max_bytes` is refused before reading.
pub async fn fetch_into<W: tokio::io::AsyncWrite + Unpin>(
    url: &HdfsUrl,
    max_bytes: u64,
    out: &mut W,
) -> Result<u64, String> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    // No runtime given: the client uses the caller's.
    let client = client_builder(url)?
        .build()
        .map_err(|e| describe(&e, url))?;
    let file = open_file(&client, url).await?;
    let len = file.file_length();
    if len as u64 > max_bytes {
        return Err(crate::transport::too_large(Some(len as u64), max_bytes));
    }
    let mut stream = std::pin::pin!(file.read_range_stream(0, len));
    let mut written = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| describe_read(&e))?;
        // Bytes actually read count too, not only the length the NameNode states.
        if written + chunk.len() as u64 > max_bytes {
            return Err(crate::transport::too_large(None, max_bytes));
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| format!("cannot keep the downloaded bytes: {e}"))?;
        written += chunk.len() as u64;
    }
    Ok(written)
}

/// A client for the URL's NameNode (refused under a [`crate::egress`] limit it is outside of).
fn client_builder(url: &HdfsUrl) -> Result<ClientBuilder, String> {
    let authority = &url.namenode["hdfs://".len()..];
    if let Some(policy) = crate::egress::Policy::from_env() {
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host,
            _ => authority,
        };
        policy.check_host(host)?;
    }
    let builder = ClientBuilder::new().with_url(&url.namenode);
    Ok(if authority.contains(':') {
        // NB: hdfs-native treats a lone host:port as a name service of one and "fails over" to it up to
        // 15 times with growing pauses, so a wrong port took minutes to report. Two retries (about 3 s)
        // ride out a NameNode restart; callers retry on their own schedule (the server backs off).
        builder.with_config([(FAILOVER_MAX_ATTEMPTS, "2")])
    } else {
        builder
    })
}

/// Asks the NameNode for the file's blocks (bounded by [`OPEN_TIMEOUT`]).
async fn open_file(client: &Client, url: &HdfsUrl) -> Result<FileReader, String> {
    match tokio::time::timeout(OPEN_TIMEOUT, client.read(&url.path)).await {
        Ok(opened) => opened.map_err(|e| describe(&e, url)),
        Err(_) => Err(format!(
            "the NameNode at {} did not answer within {OPEN_TIMEOUT:?}",
            url.namenode
        )),
    }
}

/// A blocking [`Read`] over the async file reader; owns the runtime that drives it.
struct BlockingReader {
    // NB: fields drop in order: the reader before the runtime it runs on.
    file: BufReader<FileReader>,
    runtime: tokio::runtime::Runtime,
}

impl Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.runtime.block_on(self.file.read(buf)).map_err(|e| {
            let reason = match e.get_ref().and_then(|e| e.downcast_ref::<HdfsError>()) {
                Some(hdfs) => describe_read(hdfs),
                None => e.to_string(),
            };
            std::io::Error::new(e.kind(), reason)
        })
    }
}

/// What went wrong while streaming blocks (the NameNode said where they are; a DataNode failed us).
/// NB: only the kind of failure: what a server said is never quoted (see [`describe`]).
fn describe_read(error: &HdfsError) -> String {
    let why = match error {
        HdfsError::IOError(io) => io.kind().to_string(),
        HdfsError::ChecksumError => "a block's checksum does not match".into(),
        HdfsError::BlocksNotFound(_) => "no DataNode holds a copy of a block".into(),
        _ => "the DataNode's answer could not be used".into(),
    };
    format!("reading the file's blocks from a DataNode failed: {why}")
}

/// The Java exceptions a NameNode answers with that a message names (by their simple name); any
/// other class, and every exception's message, are the server's own words and are not shown.
const KNOWN_EXCEPTIONS: [&str; 10] = [
    "AccessControlException",
    "AuthorizationException",
    "FileNotFoundException",
    "InvalidPathException",
    "IOException",
    "ParentNotDirectoryException",
    "RetriableException",
    "SafeModeException",
    "StandbyException",
    "UnresolvedPathException",
];

/// What went wrong talking to the NameNode, in words a user can act on.
fn describe(error: &HdfsError, url: &HdfsUrl) -> String {
    match error {
        // NB: a missing file comes back from the NameNode as a Java exception, not as FileNotFound.
        HdfsError::FileNotFound(_) => format!("not found: no file {} on HDFS", url.path),
        HdfsError::RPCError(class, message) if class == "java.io.FileNotFoundException" => {
            if message.starts_with("Path is not a file") {
                "is a directory, not a file".into()
            } else {
                format!("not found: no file {} on HDFS", url.path)
            }
        }
        HdfsError::IsADirectoryError(_) => "is a directory, not a file".into(),
        HdfsError::IOError(io) if io.kind() == ErrorKind::ConnectionRefused => format!(
            "cannot connect to the NameNode at {}: connection refused \
             (is that its RPC port, often 8020 or 9000?)",
            url.namenode
        ),
        // What a web UI or DataNode port does with the RPC handshake: hang up.
        HdfsError::IOError(io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionAborted
                    | ErrorKind::ConnectionReset
                    | ErrorKind::BrokenPipe
                    | ErrorKind::UnexpectedEof
            ) =>
        {
            format!(
                "the server at {} hung up without answering: is that the NameNode's RPC port \
                 (often 8020 or 9000) and not its web UI port?",
                url.namenode
            )
        }
        HdfsError::IOError(io) => {
            format!("cannot talk to HDFS at {}: {}", url.namenode, io.kind())
        }
        // The Java exception's class names the cause (AccessControlException, SafeModeException,
        // ...). NB: its message is the server's own words (and the URL may name any server): not
        // shown, nor a class that is not a known one.
        HdfsError::RPCError(class, _) | HdfsError::FatalRPCError(class, _) => {
            let simple = class.rsplit('.').next().unwrap_or(class);
            match KNOWN_EXCEPTIONS.iter().find(|known| **known == simple) {
                Some(known) => format!("the NameNode refused: {known}"),
                None => "the NameNode refused with an exception".into(),
            }
        }
        HdfsError::BlocksNotFound(_) => {
            "no DataNode holds a copy of the file's blocks (are the DataNodes up?)".into()
        }
        // NB: other errors may carry what the server sent: only that the answer was unusable.
        _ => format!(
            "the server at {} gave an answer the HDFS client cannot use",
            url.namenode
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(namenode: &str, path: &str) -> HdfsUrl {
        HdfsUrl {
            namenode: namenode.into(),
            path: path.into(),
        }
    }

    #[test]
    fn splits_namenode_and_path() {
        assert_eq!(
            HdfsUrl::parse("hdfs://nn.example:9000/datasets/covid19-sample/training.csv").unwrap(),
            url(
                "hdfs://nn.example:9000",
                "/datasets/covid19-sample/training.csv"
            )
        );
        assert_eq!(
            HdfsUrl::parse("HDFS://127.0.0.1:8020/m.bin").unwrap(),
            url("hdfs://127.0.0.1:8020", "/m.bin")
        );
        // No port: an HA name service, resolved from HADOOP_CONF_DIR by the client.
        assert_eq!(
            HdfsUrl::parse("hdfs://ns1/models/m.bin").unwrap(),
            url("hdfs://ns1", "/models/m.bin")
        );
    }

    #[test]
    fn refuses_urls_the_client_would_misread() {
        for (bad, why) in [
            ("hdfs:///only/a/path", "names no NameNode"),
            ("hdfs://:9000/x", "names no NameNode"),
            ("hdfs://nn:9000", "names no file"),
            ("hdfs://nn:9000/", "names no file"),
            ("hdfs://nn:9000/dir/", "names no file"),
            ("hdfs://nn:port/x", "\"port\" is not a port number"),
            ("hdfs://nn:70000/x", "not a port number"),
            ("hdfs://nn:0/x", "not a port number"),
            ("hdfs://alice@nn:9000/x", "HADOOP_USER_NAME"),
            ("http://nn/x", "not an hdfs:// URL"),
        ] {
            let err = HdfsUrl::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn errors_say_what_to_check() {
        let at = url("hdfs://127.0.0.1:1", "/m.bin");
        let refused = HdfsError::IOError(ErrorKind::ConnectionRefused.into());
        assert!(
            describe(&refused, &at).contains("NameNode at hdfs://127.0.0.1:1: connection refused")
        );
        // A web server on that port closes the connection: the client sees it as a reset, an EOF or,
        // when it was still writing its handshake, a broken pipe.
        for kind in [
            ErrorKind::ConnectionAborted,
            ErrorKind::ConnectionReset,
            ErrorKind::BrokenPipe,
            ErrorKind::UnexpectedEof,
        ] {
            let hung_up = HdfsError::IOError(kind.into());
            assert!(
                describe(&hung_up, &at).contains("hung up without answering"),
                "{kind:?}"
            );
        }
        let directory = HdfsError::RPCError(
            "java.io.FileNotFoundException".into(),
            "Path is not a file: /models".into(),
        );
        assert_eq!(describe(&directory, &at), "is a directory, not a file");
        for missing in [
            HdfsError::FileNotFound("/m.bin".into()),
            HdfsError::RPCError(
                "java.io.FileNotFoundException".into(),
                "File does not exist: /m.bin".into(),
            ),
        ] {
            assert_eq!(describe(&missing, &at), "not found: no file /m.bin on HDFS");
        }
        let denied = HdfsError::RPCError(
            "org.apache.hadoop.security.AccessControlException".into(),
            "Permission denied: user=bob\n\tat org.apache...".into(),
        );
        assert_eq!(
            describe(&denied, &at),
            "the NameNode refused: AccessControlException"
        );
        // What a server says is never quoted: neither a message nor a class that is no known one.
        let echo =
            HdfsError::RPCError("AKIAEXAMPLEINTERNAL".into(), "s3cr3t-internal-token".into());
        let text = describe(&echo, &at);
        assert!(!text.contains("AKIA") && !text.contains("s3cr3t"), "{text}");
        let text = describe_read(&HdfsError::DataTransferError("AKIAEXAMPLEINTERNAL".into()));
        assert!(!text.contains("AKIA"), "{text}");
    }
}
