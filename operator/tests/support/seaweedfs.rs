//! A real S3-compatible store for tests: SeaweedFS (`weed server`: master, volume server, filer and S3
//! gateway in one process) on 127.0.0.1 only, with one admin identity whose keys are made per run, and a
//! bucket `models`. The binary is `$MLOPS_K8S_BIN/weed` (`dev/cluster/build-binaries.sh weed`); its keys,
//! ports and command line come from `dev/seaweedfs.sh`, the launcher of the node tier's store too.
//!
//! The S3 endpoint checks SigV4 signatures: unsigned requests get 403 `AccessDenied`, a wrong secret 403
//! `SignatureDoesNotMatch`, an unknown access key 403 `InvalidAccessKeyId`; a missing key is 404
//! `NoSuchKey`, a missing bucket 404 `NoSuchBucket` (no bucket is created on upload). The filer's HTTP
//! API, also on loopback, is unauthenticated: [`SeaweedFs::put_via_filer`] seeds objects with it (a
//! bucket is the directory `/buckets/<name>` there, an object a file below it).
//!
//! Store down ([`SeaweedFs::stop`]): every port refuses connections. Memory: ~160 MB RSS idle, ~220 MB
//! after some use. Like `predictor::testing`, it speaks HTTP by hand on std sockets, so it works from
//! sync tests and from inside an async runtime alike.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use model_store::testing::{http_get, poll};

use super::process::{Proc, launcher, run_ok};

/// The bucket `start` creates.
pub const BUCKET: &str = "models";

/// Written on the first start and read on every start: the store serves files.
const READY_FILE: &str = "/.ready/probe";

/// Longest `weed server` may take to serve (it takes ~2.5 s on two busy cores).
const START_WITHIN: Duration = Duration::from_secs(60);

/// The loopback ports of one `weed server` that the tests talk to or read about, of the eight (HTTP
/// and gRPC of each of its four parts) `seaweedfs_init` chose (`<dir>/ports`).
#[derive(Clone, Copy, Debug)]
struct Ports {
    filer: u16,
    s3: u16,
    s3_grpc: u16,
}

impl Ports {
    /// `master master.grpc volume volume.grpc filer filer.grpc s3 s3.grpc` from `<dir>/ports`.
    fn read(dir: &Path) -> Self {
        let text = fs::read_to_string(dir.join("ports")).expect("read the SeaweedFS ports");
        let p: Vec<u16> = text
            .split_whitespace()
            .map(|port| port.parse().expect("a port number"))
            .collect();
        assert_eq!(p.len(), 8, "SeaweedFS ports: {text:?}");
        Self {
            filer: p[4],
            s3: p[6],
            s3_grpc: p[7],
        }
    }
}

/// A running `weed server` with an S3 endpoint; killed when dropped.
pub struct SeaweedFs {
    /// `http://127.0.0.1:PORT`: path-style S3 (`{endpoint}/{bucket}/{key}`).
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// Any region signs correctly; this is the one to use.
    pub region: String,
    /// stdout and stderr of every run (appended).
    pub log: PathBuf,
    dir: PathBuf,
    ports: Ports,
    binary: PathBuf,
    proc: Option<Proc>,
    /// Where this run's output starts in the log.
    log_start: usize,
}

impl SeaweedFs {
    /// Starts SeaweedFS with its state in `dir` (data, identities, log), waits until it serves (~3 s),
    /// and creates the bucket [`BUCKET`]. Panics, with the log's tail, if it does not serve within
    /// 60 s. S3 reads work at once; S3 writes are held ~7 s more ([`wait_writable`](Self::wait_writable)).
    pub fn start(dir: &Path) -> Self {
        let binary = weed_binary();
        fs::create_dir_all(dir.join("data")).expect("create the SeaweedFS data dir");
        let dir = fs::canonicalize(dir).expect("canonical SeaweedFS dir");
        // Unix sockets (the filer's and the S3 gateway's, put in `dir`) have a 108-byte path limit.
        assert!(
            dir.join("filer.sock").as_os_str().len() < 108,
            "SeaweedFS dir {} is too long a path for its unix sockets",
            dir.display()
        );
        // Keys and free loopback ports (S3's too: 0).
        run_ok(
            launcher("dev/seaweedfs.sh", "seaweedfs_init")
                .arg(&dir)
                .arg("0"),
        );
        let key = |file: &str| {
            let text = fs::read_to_string(dir.join(file)).expect("read a SeaweedFS key");
            text.trim().to_string()
        };
        let ports = Ports::read(&dir);
        let mut store = Self {
            endpoint: format!("http://127.0.0.1:{}", ports.s3),
            access_key: key("access-key"),
            secret_key: key("secret-key"),
            region: "us-east-1".into(),
            log: dir.join("weed.log"),
            dir,
            ports,
            binary,
            proc: None,
            log_start: 0,
        };
        store.run(true);
        store.create_bucket(BUCKET);
        store
    }

    /// Kills the server and waits for it: from now on connections to every port are refused (the
    /// store is down). Data stays in `dir` for [`start_again`](Self::start_again).
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
            drop(proc);
            // Best effort (this runs on drop too): the gRPC sockets weed leaves in /tmp when killed.
            let _ = launcher("dev/seaweedfs.sh", "seaweedfs_remove_sockets")
                .arg(&self.dir)
                .status();
        }
    }

    /// Starts the server again on the same ports with the same data and keys (after [`stop`](Self::stop));
    /// waits until it serves reads (~2.5 s). Writes wait up to 15 s more: after a restart SeaweedFS's
    /// master assigns no volume space until it has heard from its volume servers for three 5 s pulses
    /// (a fixed warm-up); a PUT in that window is held, not refused.
    pub fn start_again(&mut self) {
        assert!(self.proc.is_none(), "SeaweedFS is still running");
        self.run(false);
    }

    /// `{endpoint}/{bucket}/{key}`.
    pub fn url(&self, bucket: &str, key: &str) -> String {
        format!("{}/{bucket}/{key}", self.endpoint)
    }

    /// Creates a bucket (a directory under `/buckets` on the filer; no signing needed). An existing
    /// bucket is fine.
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.filer("POST", &format!("/buckets/{bucket}/"), &[]);
        assert!(
            matches!(status, Some(201 | 409)),
            "creating bucket {bucket} through the filer: {status:?}"
        );
    }

    /// Writes `bytes` as object `key` of `bucket` through the filer's unauthenticated HTTP API (creates
    /// the bucket if missing). S3 then serves it with the MD5 ETag.
    pub fn put_via_filer(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let status = self.filer("PUT", &format!("/buckets/{bucket}/{key}"), bytes);
        assert_eq!(status, Some(201), "PUT {bucket}/{key} through the filer");
    }

    /// Deletes object `key` of `bucket` through the filer (a missing object is fine).
    pub fn delete_via_filer(&self, bucket: &str, key: &str) {
        let status = self.filer("DELETE", &format!("/buckets/{bucket}/{key}"), &[]);
        assert_eq!(status, Some(204), "DELETE {bucket}/{key} through the filer");
    }

    /// Waits (at most 60 s) until S3 writes go through at once. Until then S3 PUTs are held (not
    /// refused): right after a fresh start for ~7 s, as each takes a lock from the filers' lock ring,
    /// which forms once the filer has waited out its search for peer filers (the S3 gateway logs when
    /// it receives the ring); after [`start_again`](Self::start_again) for ~15 s, the master's warm-up
    /// (a write through the filer waits for it too).
    pub fn wait_writable(&self) {
        let ring = format!(
            "LockRing: s3@127.0.0.1:{} received ring update",
            self.ports.s3_grpc
        );
        poll(Duration::from_secs(60), "SeaweedFS to take writes", || {
            let log = fs::read(&self.log).ok()?;
            let this_run = String::from_utf8_lossy(log.get(self.log_start..)?);
            (this_run.contains(&ring) && self.filer("PUT", READY_FILE, b"ready") == Some(201))
                .then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}; {}:\n{}", self.log.display(), self.log_tail(30)));
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Spawns `weed server` and waits until S3 answers and a file can be read through the filer (the
    /// volume server is known to the master); on the first start, `fresh`, the file is written first.
    fn run(&mut self, fresh: bool) {
        self.log_start = fs::metadata(&self.log).map_or(0, |m| m.len() as usize);
        let mut command = launcher("dev/seaweedfs.sh", "seaweedfs_serve");
        command.arg(&self.binary).arg(&self.dir).arg("127.0.0.1");
        self.proc = Some(Proc::spawn("weed", command, &self.log));

        let s3 = format!("127.0.0.1:{}", self.ports.s3);
        let ready = poll(
            START_WITHIN,
            "SeaweedFS to serve S3 and store files",
            || {
                if let Some(status) = self
                    .proc
                    .as_mut()
                    .and_then(|p| p.child.try_wait().ok().flatten())
                {
                    panic!(
                        "weed server exited ({status}) while starting; {}:\n{}",
                        self.log.display(),
                        self.log_tail(30)
                    );
                }
                // The S3 gateway's health probe (unauthenticated, always 200 once it listens). Then a
                // file outside /buckets (invisible to S3) read through the filer: master, volume server
                // and filer work together.
                let (code, _) = http_get(&s3, "/healthz")?;
                let written = !fresh || self.filer("PUT", READY_FILE, b"ready") == Some(201);
                (code == 200 && written && self.filer("GET", READY_FILE, &[]) == Some(200))
                    .then_some(())
            },
        );
        if let Err(e) = ready {
            self.stop();
            panic!("{e}; {}:\n{}", self.log.display(), self.log_tail(30));
        }
    }

    /// One request to the filer's HTTP API: its status code, or None if it cannot be reached.
    fn filer(&self, method: &str, path: &str, body: &[u8]) -> Option<u16> {
        let addr = format!("127.0.0.1:{}", self.ports.filer);
        let mut stream = TcpStream::connect(&addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        // A POST with a Content-Type is taken for a multipart upload: only bodies get one.
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/octet-stream\r\n"
        };
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{content_type}Content-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        )
        .ok()?;
        stream.write_all(body).ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        let head = String::from_utf8_lossy(&response);
        head.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `$MLOPS_K8S_BIN/weed`, or a panic that says how to build it.
fn weed_binary() -> PathBuf {
    let how = "build it with dev/cluster/build-binaries.sh weed and set MLOPS_K8S_BIN to the directory \
               it prints";
    let dir = std::env::var_os("MLOPS_K8S_BIN")
        .unwrap_or_else(|| panic!("MLOPS_K8S_BIN is not set: SeaweedFS (weed) is needed: {how}"));
    let binary = PathBuf::from(dir).join("weed");
    assert!(
        binary.is_file(),
        "{} is missing: SeaweedFS (weed) is needed: {how}",
        binary.display()
    );
    binary
}
