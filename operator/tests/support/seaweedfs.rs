//! A real S3-compatible store for tests: SeaweedFS (`weed server`: master, volume server, filer and S3
//! gateway in one process) on 127.0.0.1 only, with one admin identity whose keys are made per run, and a
//! bucket `models`. The binary is `$MLOPS_K8S_BIN/weed` (`dev/cluster/build-binaries.sh weed`).
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

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use predictor::testing::{http_get, poll};

/// The bucket `start` creates.
pub const BUCKET: &str = "models";

/// Written on the first start and read on every start: the store serves files.
const READY_FILE: &str = "/.ready/probe";

/// Longest `weed server` may take to serve (it takes ~2.5 s on two busy cores).
const START_WITHIN: Duration = Duration::from_secs(60);

/// The loopback ports of one `weed server`: HTTP and gRPC for each of its four parts (the gRPC ports
/// are given explicitly; SeaweedFS's default is HTTP + 10000, which might be taken).
#[derive(Clone, Copy, Debug)]
struct Ports {
    master: u16,
    master_grpc: u16,
    volume: u16,
    volume_grpc: u16,
    filer: u16,
    filer_grpc: u16,
    s3: u16,
    s3_grpc: u16,
}

impl Ports {
    /// Eight distinct free loopback ports (all bound at once, then released).
    fn free() -> Self {
        let listeners: Vec<TcpListener> = (0..8)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
            .collect();
        let p: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("listener address").port())
            .collect();
        Self {
            master: p[0],
            master_grpc: p[1],
            volume: p[2],
            volume_grpc: p[3],
            filer: p[4],
            filer_grpc: p[5],
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
    child: Option<Child>,
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
            dir.join("filer-99999.sock").as_os_str().len() < 100,
            "SeaweedFS dir {} is too long a path for its unix sockets",
            dir.display()
        );
        let (access_key, secret_key) = make_keys(&dir);
        let identities = serde_json::json!({
            "identities": [{
                "name": "mlops-test",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]
        });
        fs::write(
            dir.join("s3-identities.json"),
            serde_json::to_vec_pretty(&identities).expect("identities JSON"),
        )
        .expect("write s3-identities.json");
        let ports = Ports::free();
        let mut store = Self {
            endpoint: format!("http://127.0.0.1:{}", ports.s3),
            access_key,
            secret_key,
            region: "us-east-1".into(),
            log: dir.join("weed.log"),
            dir,
            ports,
            binary,
            child: None,
            log_start: 0,
        };
        store.run(true);
        store.create_bucket(BUCKET);
        store
    }

    /// Kills the server and waits for it: from now on connections to every port are refused (the
    /// store is down). Data stays in `dir` for [`start_again`](Self::start_again).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.remove_grpc_sockets();
        }
    }

    /// Starts the server again on the same ports with the same data and keys (after [`stop`](Self::stop));
    /// waits until it serves reads (~2.5 s). Writes wait up to 15 s more: after a restart SeaweedFS's
    /// master assigns no volume space until it has heard from its volume servers for three 5 s pulses
    /// (a fixed warm-up); a PUT in that window is held, not refused.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "SeaweedFS is still running");
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
        self.child.as_ref().map(Child::id)
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
        let p = self.ports;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open weed.log");
        self.log_start = log.metadata().map_or(0, |m| m.len() as usize);
        let dir = &self.dir;
        let mut command = Command::new(&self.binary);
        command
            // Logs to stderr only (glog's default is files in /tmp); toml configs from `dir` first.
            .args(["-logtostderr", "-config_dir"])
            .arg(dir)
            .args(["server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-dir={}", dir.join("data").display()))
            .arg(format!("-master.port={}", p.master))
            .arg(format!("-master.port.grpc={}", p.master_grpc))
            // No usage reports to telemetry.seaweedfs.com; small volumes; a 1 s Raft election
            // timeout, so that after a restart the lone master leads again in ~2 s, not 20 s. (Not
            // -master.resumeState=false: a master without its Raft state sees the volume server's
            // topology id as foreign and freezes volume growth, i.e. no new buckets.)
            .args([
                "-master.telemetry=false",
                "-master.volumeSizeLimitMB=64",
                "-master.electionTimeout=1s",
            ])
            .arg(format!("-volume.port={}", p.volume))
            .arg(format!("-volume.port.grpc={}", p.volume_grpc))
            // Each bucket is a collection with volumes of its own (one each, see the env below).
            .args(["-volume.max=32", "-volume.preStopSeconds=0"])
            .arg("-filer")
            .arg(format!("-filer.port={}", p.filer))
            .arg(format!("-filer.port.grpc={}", p.filer_grpc))
            .arg(format!(
                "-filer.localSocket={}",
                dir.join(format!("filer-{}.sock", p.filer)).display()
            ))
            .arg("-s3")
            .arg(format!("-s3.port={}", p.s3))
            .arg(format!("-s3.port.grpc={}", p.s3_grpc))
            .arg(format!(
                "-s3.localSocket={}",
                dir.join(format!("s3-{}.sock", p.s3)).display()
            ))
            // The Iceberg and Lance catalogs would listen on fixed ports (8181, 9101).
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!(
                "-s3.config={}",
                dir.join("s3-identities.json").display()
            ))
            .arg("-s3.autoCreateBucket=false")
            // One volume per new collection instead of 7 (what `weed mini` does too), and no ~5 s hold
            // on the first volume of a fresh cluster (there are no other volume servers to wait for).
            .env("WEED_MASTER_VOLUME_GROWTH_COPY_1", "1")
            .env("WEED_MASTER_VOLUME_GROWTH_ALLOCATION_DEFERRAL", "0s")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.binary.display()));
        self.child = Some(child);

        let s3 = format!("127.0.0.1:{}", p.s3);
        let ready = poll(
            START_WITHIN,
            "SeaweedFS to serve S3 and store files",
            || {
                if let Some(status) = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
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

    /// SeaweedFS puts its gRPC unix sockets in /tmp whatever the flags say, and removes them only on a
    /// clean shutdown.
    fn remove_grpc_sockets(&self) {
        let p = self.ports;
        for (part, port) in [
            ("master", p.master_grpc),
            ("volume", p.volume_grpc),
            ("filer", p.filer_grpc),
            ("s3", p.s3_grpc),
        ] {
            let _ = fs::remove_file(format!("/tmp/seaweedfs-{part}-grpc-{port}.sock"));
        }
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

/// An access key (20 characters, like AWS's) and a secret key (40) that differ per run: hashed from the
/// pid, the time and the directory.
fn make_keys(dir: &Path) -> (String, String) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let seed = format!("{}:{nanos}:{}", std::process::id(), dir.display());
    let hash = |tag: &str| predictor::model::sha256_hex(format!("{tag}:{seed}").as_bytes());
    let access = format!("AKMLOPS{}", &hash("access")[..13]).to_uppercase();
    let secret = hash("secret")[..40].to_string();
    (access, secret)
}
