//! A real, throwaway Kubernetes control plane for tests and benchmarks: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok (fake nodes whose pods turn Ready), started from
//! the binaries `dev/cluster/build-binaries.sh` builds, on free 127.0.0.1 ports in a temp dir.
//!
//! Everything started here runs in its own process group with `PR_SET_PDEATHSIG`, and is stopped
//! (SIGTERM, then SIGKILL) when the [`TestCluster`] is dropped or, for the per-binary shared cluster,
//! when the test process exits (`atexit`). No traffic leaves loopback.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

/// Where the control-plane binaries are, unless `MLOPS_K8S_BIN` says otherwise.
pub const DEFAULT_BIN_DIR: &str = "/var/cache/mlops-predictor/bin";
const BINARIES: [&str; 7] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    // kwok's node and pod Stages, published by build-binaries.sh next to the binary.
    "kwok-stages.yaml",
];
/// Namespace and ServiceAccount of the operator (as in config/).
pub const OPERATOR_NAMESPACE: &str = "predictor-system";
pub const OPERATOR_SA: &str = "predictor-operator";

/// The workspace root (operator/..).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

/// The binary directory, or a panic that says how to get the binaries: a missing binary must fail
/// the test, never skip it.
pub fn bin_dir() -> PathBuf {
    let dir =
        PathBuf::from(std::env::var("MLOPS_K8S_BIN").unwrap_or_else(|_| DEFAULT_BIN_DIR.into()));
    let missing: Vec<_> = BINARIES
        .iter()
        .filter(|b| !dir.join(b).is_file())
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "control-plane binaries {missing:?} not found in {} (MLOPS_K8S_BIN). \
         Build them with `dev/cluster/build-binaries.sh` (or run `dev/cluster/test-operator`).",
        dir.display()
    );
    dir
}

/// A free TCP port on 127.0.0.1 (the listener is closed again; the race is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

// --- process bookkeeping ------------------------------------------------------------

/// Process groups and directories to clean up at exit, whatever happens to the owners.
static REGISTRY: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();

enum Cleanup {
    Group(i32),
    Dir(PathBuf),
}

extern "C" fn cleanup_at_exit() {
    let items: Vec<Cleanup> = match REGISTRY.lock() {
        Ok(mut r) => r.drain(..).collect(),
        Err(_) => return,
    };
    let groups: Vec<i32> = items
        .iter()
        .filter_map(|c| match c {
            Cleanup::Group(g) => Some(*g),
            Cleanup::Dir(_) => None,
        })
        .collect();
    stop_groups(&groups);
    for item in items {
        if let Cleanup::Dir(d) = item {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn register(item: Cleanup) {
    ATEXIT.call_once(|| unsafe {
        libc::atexit(cleanup_at_exit);
    });
    REGISTRY.lock().expect("registry").push(item);
}

fn unregister_group(pgid: i32) {
    if let Ok(mut r) = REGISTRY.lock() {
        r.retain(|c| !matches!(c, Cleanup::Group(g) if *g == pgid));
    }
}

/// SIGTERM to each group, up to 10 s for them to go, then SIGKILL.
fn stop_groups(groups: &[i32]) {
    for &g in groups {
        unsafe { libc::kill(-g, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && groups.iter().any(|&g| group_alive(g)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &g in groups {
        if group_alive(g) {
            unsafe { libc::kill(-g, libc::SIGKILL) };
        }
    }
}

fn group_alive(pgid: i32) -> bool {
    // Reap our own children so they do not linger as zombies (which still count as alive).
    unsafe {
        while libc::waitpid(-pgid, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
        libc::kill(-pgid, 0) == 0
    }
}

/// A process started in its own group, killed with its group when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with output to `log`, in a new process group, dying with its parent thread.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        // Appends: a restarted component keeps the log of its earlier life.
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("create log file");
        let err = out.try_clone().expect("clone log file");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        without_proxy(&mut cmd);
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        register(Cleanup::Group(child.id() as i32));
        Proc {
            name: name.into(),
            child,
            log: log.into(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) used so far, from /proc.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Some(ticks / hz)
    }

    /// Whether the process still runs (reaps it if it exited).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `n` lines of its log, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Sends SIGKILL (no chance to clean up, like an OOM kill or a node loss) and reaps it.
    pub fn kill(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        self.child.wait().expect("wait for killed process")
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        stop_groups(&[pgid]);
        let _ = self.child.try_wait();
        unregister_group(pgid);
    }
}

// --- the cluster --------------------------------------------------------------------

/// A running control plane with kwok nodes. Dropping it stops everything and deletes its files.
pub struct TestCluster {
    pub dir: PathBuf,
    pub bin: PathBuf,
    /// Kubeconfig of a cluster admin (`system:masters`).
    pub kubeconfig: PathBuf,
    pub api_port: u16,
    /// Stopped in reverse order on drop (kwok … etcd).
    procs: Vec<Proc>,
    /// How kube-apiserver was started, to start it again the same way (same port, same etcd).
    apiserver_args: Vec<String>,
}

impl TestCluster {
    /// Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with
    /// `nodes` fake nodes. Panics (with the failing component's log) if anything does not come up.
    pub fn start(nodes: usize) -> TestCluster {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!(
            "mlops-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("pki")).expect("create cluster dir");
        register(Cleanup::Dir(dir.clone()));
        let started = Instant::now();
        make_pki(&dir.join("pki"));

        let mut cluster = TestCluster {
            kubeconfig: dir.join("admin.kubeconfig"),
            api_port: free_port(),
            dir,
            bin,
            procs: Vec::new(),
            apiserver_args: Vec::new(),
        };
        cluster.start_etcd_and_apiserver();
        cluster.start_controllers();
        cluster.create_nodes(nodes);
        eprintln!(
            "[testcluster] control plane with {nodes} kwok nodes up in {:.1}s at https://127.0.0.1:{} ({})",
            started.elapsed().as_secs_f64(),
            cluster.api_port,
            cluster.dir.display()
        );
        cluster
    }

    fn pki(&self, file: &str) -> String {
        self.dir.join("pki").join(file).display().to_string()
    }

    fn spawn(&mut self, name: &str, args: &[String]) {
        let mut cmd = Command::new(self.bin.join(name));
        cmd.args(args);
        let log = self.dir.join(format!("{name}.log"));
        self.procs.push(Proc::spawn(name, cmd, &log));
    }

    fn start_etcd_and_apiserver(&mut self) {
        let (etcd_port, peer_port) = (free_port(), free_port());
        let etcd = format!("http://127.0.0.1:{etcd_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let data = self.dir.join("etcd").display().to_string();
        self.spawn(
            "etcd",
            &strings(&[
                "--name",
                "test",
                "--data-dir",
                &data,
                "--listen-client-urls",
                &etcd,
                "--advertise-client-urls",
                &etcd,
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &format!("test={peer}"),
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ]),
        );
        let port = self.api_port.to_string();
        let certs = self.dir.join("certs").display().to_string();
        let args = strings(&[
            "--etcd-servers",
            &etcd,
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &port,
            "--advertise-address",
            "127.0.0.1",
            "--cert-dir",
            &certs,
            "--tls-cert-file",
            &self.pki("apiserver.crt"),
            "--tls-private-key-file",
            &self.pki("apiserver.key"),
            "--client-ca-file",
            &self.pki("ca.crt"),
            "--service-cluster-ip-range",
            "10.0.0.0/16",
            "--allow-privileged=false",
            "--authorization-mode",
            "RBAC",
            "--service-account-issuer",
            "https://kubernetes.default.svc",
            "--service-account-key-file",
            &self.pki("sa.pub"),
            "--service-account-signing-key-file",
            &self.pki("sa.key"),
            "--event-ttl",
            "30m",
        ]);
        self.apiserver_args = args;
        self.spawn("kube-apiserver", &self.apiserver_args.clone());
        write_kubeconfig(
            &self.kubeconfig,
            self.api_port,
            &self.pki("ca.crt"),
            Credentials::Cert {
                cert: self.pki("admin.crt"),
                key: self.pki("admin.key"),
            },
        );
        self.wait_for_apiserver();
        // RBAC bootstrap (cluster roles, system:masters binding) finishes shortly after /readyz.
        self.wait_for("default namespace", Duration::from_secs(30), |c| {
            c.kubectl(&["get", "namespace", "default"]).status.success()
        });
    }

    fn wait_for_apiserver(&mut self) {
        self.wait_for("apiserver /readyz", Duration::from_secs(90), |c| {
            c.kubectl(&["get", "--raw", "/readyz"]).status.success()
        });
    }

    /// Stops kube-apiserver (SIGTERM, SIGKILL after 30 s); etcd and the controllers keep running.
    pub fn stop_apiserver(&mut self) {
        let at = self
            .procs
            .iter()
            .position(|p| p.name == "kube-apiserver")
            .expect("kube-apiserver is running");
        let mut apiserver = self.procs.remove(at);
        apiserver.terminate(Duration::from_secs(30));
        // Drop SIGKILLs whatever is left of its group.
        drop(apiserver);
    }

    /// Starts kube-apiserver again with the same flags (same port, certificates and etcd) and
    /// waits until it is ready.
    pub fn start_apiserver(&mut self) {
        assert!(
            self.procs.iter().all(|p| p.name != "kube-apiserver"),
            "kube-apiserver is already running"
        );
        self.spawn("kube-apiserver", &self.apiserver_args.clone());
        self.wait_for_apiserver();
    }

    fn start_controllers(&mut self) {
        let kubeconfig = self.kubeconfig.display().to_string();
        let kcm_port = free_port().to_string();
        let args = strings(&[
            "--kubeconfig",
            &kubeconfig,
            "--leader-elect=false",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &kcm_port,
            "--service-account-private-key-file",
            &self.pki("sa.key"),
            "--root-ca-file",
            &self.pki("ca.crt"),
            "--cluster-signing-cert-file",
            &self.pki("ca.crt"),
            "--cluster-signing-key-file",
            &self.pki("ca.key"),
            "--use-service-account-credentials=false",
            "--kube-api-qps",
            "300",
            "--kube-api-burst",
            "600",
            "--concurrent-deployment-syncs",
            "20",
            "--concurrent-replicaset-syncs",
            "20",
        ]);
        self.spawn("kube-controller-manager", &args);
        let sched_port = free_port().to_string();
        let args = strings(&[
            "--kubeconfig",
            &kubeconfig,
            "--leader-elect=false",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &sched_port,
            "--kube-api-qps",
            "300",
            "--kube-api-burst",
            "600",
        ]);
        self.spawn("kube-scheduler", &args);
        let kwok_port = free_port().to_string();
        let stages = format!("--config={}", self.bin.join("kwok-stages.yaml").display());
        let args = strings(&[
            // NB: first, and as `--config=…`: kwok pre-parses it with a flag set that stops at the
            // first flag it does not know. Loads kwok's own fast node/pod stages, nothing from ~/.kwok.
            &stages,
            "--kubeconfig",
            &kubeconfig,
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--manage-nodes-with-label-selector=",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
            "--server-address",
            &format!("127.0.0.1:{kwok_port}"),
        ]);
        self.spawn("kwok", &args);
    }

    fn create_nodes(&mut self, nodes: usize) {
        let mut yaml = String::new();
        for i in 0..nodes {
            yaml.push_str(&format!(
                "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: kwok-node-{i}\n  annotations:\n    \
                 kwok.x-k8s.io/node: fake\n    node.alpha.kubernetes.io/ttl: \"0\"\n  labels:\n    \
                 type: kwok\n    kubernetes.io/hostname: kwok-node-{i}\n    kubernetes.io/os: linux\n    \
                 kubernetes.io/arch: amd64\nstatus:\n  allocatable: {{cpu: \"1000\", memory: 1Ti, pods: \"1500\"}}\n  \
                 capacity: {{cpu: \"1000\", memory: 1Ti, pods: \"1500\"}}\n"
            ));
        }
        self.kubectl_stdin(&["apply", "-f", "-"], &yaml);
        self.wait_for("kwok nodes Ready", Duration::from_secs(60), |c| {
            let out = c.kubectl(&[
                "get", "nodes", "-o",
                "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
            ]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.lines().filter(|l| *l == "True").count() == nodes
        });
        // Pods need the default ServiceAccount, which KCM's serviceaccount controller creates.
        self.wait_for("default ServiceAccount", Duration::from_secs(30), |c| {
            c.kubectl(&["get", "serviceaccount", "default", "-n", "default"])
                .status
                .success()
        });
    }

    /// Polls `ready` every 200 ms for at most `timeout`; panics with the component logs if it never holds.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut(&TestCluster) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if ready(self) {
                return;
            }
            for p in &mut self.procs {
                if !p.running() {
                    panic!(
                        "{} exited while waiting for {what}:\n{}",
                        p.name,
                        p.tail(30)
                    );
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .procs
                    .iter()
                    .map(|p| format!("--- {} ---\n{}", p.name, p.tail(15)))
                    .collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// CPU seconds (user + system) each control-plane process has used so far.
    pub fn cpu_seconds(&self) -> Vec<(String, f64)> {
        self.procs
            .iter()
            .map(|p| (p.name.clone(), p.cpu_seconds().unwrap_or(f64::NAN)))
            .collect()
    }

    /// Runs the real kubectl against this cluster as admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(&self.kubeconfig, args, None)
    }

    /// Runs kubectl with `kubeconfig`, optionally feeding `stdin`; bounded to 60 s.
    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        run_kubectl(&self.bin, kubeconfig, args, stdin)
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        check_output(&self.kubectl(args), args)
    }

    /// kubectl with stdin that must succeed; returns stdout.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        check_output(
            &self.kubectl_with(&self.kubeconfig, args, Some(stdin)),
            args,
        )
    }

    /// A namespace whose pods must satisfy the `restricted` Pod Security Standard.
    pub fn create_namespace(&self, name: &str) {
        self.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    \
                 pod-security.kubernetes.io/enforce: restricted\n"
            ),
        );
        // The serviceaccount controller creates `default` asynchronously; pods need it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .kubectl(&["get", "serviceaccount", "default", "-n", name])
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "no default ServiceAccount in {name}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Installs what the operator needs (CRD, its namespace, config/rbac) and writes a kubeconfig
    /// that authenticates as the operator's ServiceAccount, so it runs with exactly that RBAC.
    pub fn install_operator_prerequisites(&self) -> PathBuf {
        let root = repo_root();
        self.kubectl_ok(&[
            "apply",
            "-k",
            &root.join("config/crd").display().to_string(),
        ]);
        self.kubectl_ok(&[
            "apply",
            "-f",
            &root
                .join("config/manager/namespace.yaml")
                .display()
                .to_string(),
        ]);
        self.kubectl_ok(&[
            "apply",
            "-k",
            &root.join("config/rbac").display().to_string(),
        ]);
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/predictors.mlops.dev",
        ]);
        self.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA)
    }

    /// A kubeconfig that authenticates with a fresh token of ServiceAccount `namespace/name`.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        let token = self.kubectl_ok(&["create", "token", name, "-n", namespace, "--duration=6h"]);
        let path = self.dir.join(format!("{namespace}-{name}.kubeconfig"));
        write_kubeconfig(
            &path,
            self.api_port,
            &self.pki("ca.crt"),
            Credentials::Token(token.trim().to_string()),
        );
        path
    }

    /// Starts the operator binary (`operator run`) with `kubeconfig` and extra flags.
    pub fn start_operator(&self, name: &str, kubeconfig: &Path, extra: &[&str]) -> OperatorProc {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_operator"));
        cmd.arg("run")
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", OPERATOR_NAMESPACE)
            .env("RUST_LOG", "info,operator=debug,kube=warn")
            .env_remove("SKIP_MODEL_CHECK");
        let log = self.dir.join(format!("{name}.log"));
        let proc = Proc::spawn(name, cmd, &log);
        let op = OperatorProc { proc, port };
        op.wait_http("/healthz", Duration::from_secs(30));
        op
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Reverse start order: kwok, scheduler, KCM, apiserver, etcd.
        while let Some(p) = self.procs.pop() {
            drop(p);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Ok(mut r) = REGISTRY.lock() {
            r.retain(|c| !matches!(c, Cleanup::Dir(d) if *d == self.dir));
        }
    }
}

/// An operator process and the port of its /metrics and /healthz.
pub struct OperatorProc {
    pub proc: Proc,
    pub port: u16,
}

impl OperatorProc {
    /// GET `path` on the operator's HTTP port: (status code, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&format!("127.0.0.1:{}", self.port), path)
    }

    fn wait_http(&self, path: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if matches!(self.get(path), Some((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "operator {} did not serve {path}:\n{}",
            self.proc.name,
            self.proc.tail(30)
        );
    }

    /// The value of an unlabelled metric, e.g. `predictor_operator_leader`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Peak resident set size of the operator process, from /proc (bytes).
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.pid())).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }
}

// --- helpers ------------------------------------------------------------------------

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Loopback only: never let a proxy setting route test traffic elsewhere.
pub fn without_proxy(cmd: &mut Command) {
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
}

/// Runs `bin`/kubectl with `kubeconfig`, optionally feeding `stdin`; bounded to 60 s. No proxy
/// settings reach it: test traffic stays on loopback and the test's own network namespaces.
pub fn run_kubectl(bin: &Path, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(bin.join("kubectl"));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--request-timeout=30s")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    without_proxy(&mut cmd);
    let mut child = cmd.spawn().expect("run kubectl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    wait_output(child, Duration::from_secs(60), "kubectl")
}

/// Asserts kubectl succeeded; returns its stdout.
pub fn check_output(out: &Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "kubectl {} failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn wait_output(mut child: Child, timeout: Duration, what: &str) -> Output {
    // Read pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// Runs `cmd` to completion; panics with its stderr unless it succeeds. Returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throwaway PKI made with openssl: CA, apiserver serving cert, admin client cert, SA key pair.
fn make_pki(dir: &Path) {
    let ossl = |args: &[&str]| {
        run_ok(Command::new("openssl").args(args).current_dir(dir));
    };
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=mlops-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    let sign = |name: &str, subject: &str, ext: &str| {
        ossl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write ext");
        ossl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ]);
    };
    sign(
        "apiserver",
        "/CN=kube-apiserver",
        "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n",
    );
    sign(
        "admin",
        "/O=system:masters/CN=admin",
        "extendedKeyUsage=clientAuth\n",
    );
    ossl(&["genrsa", "-out", "sa.key", "2048"]);
    ossl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

enum Credentials {
    Cert { cert: String, key: String },
    Token(String),
}

fn write_kubeconfig(path: &Path, port: u16, ca: &str, creds: Credentials) {
    let user = match creds {
        Credentials::Cert { cert, key } => {
            format!("    client-certificate: {cert}\n    client-key: {key}\n")
        }
        Credentials::Token(token) => format!("    token: {token}\n"),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{port}\n    \
         certificate-authority: {ca}\nusers:\n- name: user\n  user:\n{user}contexts:\n- name: test\n  context:\n    \
         cluster: test\n    user: user\n    namespace: default\ncurrent-context: test\n"
    );
    std::fs::write(path, text).expect("write kubeconfig");
}

/// `target` as a path relative to the directory `from` (kustomize refuses absolute resource paths).
pub fn relative_to(from: &Path, target: &Path) -> PathBuf {
    let from = from.canonicalize().expect("canonicalize from");
    let target = target.canonicalize().expect("canonicalize target");
    let mut up = PathBuf::new();
    for _ in from.components().skip(1) {
        up.push("..");
    }
    up.join(target.strip_prefix("/").expect("absolute path"))
}

/// A minimal HTTP/1.1 GET over loopback: (status code, body).
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
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())?;
    Some((code, body))
}

// --- a loopback file server for model URLs -------------------------------------------

/// Serves fixed byte blobs at fixed paths on 127.0.0.1 over HTTP/1.1 (one thread per connection).
pub struct FileServer {
    pub addr: String,
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl FileServer {
    pub fn start() -> FileServer {
        Self::start_slow(Duration::ZERO)
    }

    /// A file server that waits `delay` before each answer (a slow model store).
    pub fn start_slow(delay: Duration) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind file server");
        let addr = listener.local_addr().expect("local addr").to_string();
        let files: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let served = files.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let files = served.clone();
                std::thread::spawn(move || serve_one(stream, &files, delay));
            }
        });
        FileServer { addr, files }
    }

    /// Makes `bytes` available at `path` (e.g. `/models/a.model`); returns its URL.
    pub fn put(&self, path: &str, bytes: Vec<u8>) -> String {
        self.files.lock().expect("files").insert(path.into(), bytes);
        format!("http://{}{path}", self.addr)
    }
}

fn serve_one(mut stream: TcpStream, files: &Mutex<BTreeMap<String, Vec<u8>>>, delay: Duration) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let body = files.lock().expect("files").get(&path).cloned();
    std::thread::sleep(delay);
    let _ = match body {
        Some(body) => stream
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .and_then(|_| stream.write_all(&body)),
        None => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
}

/// A model file on the [`FileServer`]: where, and its digest.
#[derive(Clone, Debug)]
pub struct ServedModel {
    pub url: String,
    pub sha: String,
}

impl FileServer {
    /// Serves a fresh model file (trained with `model_date`) at `path`.
    pub fn put_model(&self, path: &str, model_date: &str) -> ServedModel {
        let bytes = model_file(model_date);
        ServedModel {
            sha: sha256(&bytes),
            url: self.put(path, bytes),
        }
    }
}

/// A Predictor manifest for `kubectl apply`.
pub fn predictor_yaml(name: &str, image: &str, model: &ServedModel, replicas: i32) -> String {
    format!(
        "apiVersion: mlops.dev/v1alpha1\nkind: Predictor\nmetadata:\n  name: {name}\nspec:\n  image: {image}\n  \
         model:\n    url: {}\n    sha256: {}\n  replicas: {replicas}\n",
        model.url, model.sha
    )
}

/// A valid model file trained on the built-in sample; different `model_date`s give different digests.
pub fn model_file(model_date: &str) -> Vec<u8> {
    predictor::train::train_from_bytes(
        predictor::sample::SAMPLE_CSV.as_bytes(),
        "sample",
        &predictor::train::TrainSettings::default(),
        model_date,
    )
    .expect("train on the sample")
    .to_bytes()
    .expect("encode the model")
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    predictor::model::sha256_hex(bytes)
}

/// A kube client for the cluster behind `kubeconfig`.
pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kube config");
    kube::Client::try_from(config).expect("kube client")
}

/// Polls `api.get(name)` every 200 ms until `done` holds. On timeout: `Err` with the last object seen.
pub async fn poll_until<K>(
    api: &kube::Api<K>,
    name: &str,
    timeout: Duration,
    done: impl Fn(&K) -> bool,
) -> Result<K, Box<Option<K>>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(Some(object)) = api.get_opt(name).await {
            if done(&object) {
                return Ok(object);
            }
            last = Some(object);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Box::new(last))
}

/// Something a whole test binary shares (a cluster, an operator), started once by `start` on a
/// thread that lives as long as the process: children die with the thread that started them
/// (`PR_SET_PDEATHSIG`), so the starter must not be a test's thread. A failed start fails every
/// test that asks, with the reason.
pub fn shared_by_binary<T: Send + Sync + 'static>(
    cell: &'static OnceLock<Result<T, String>>,
    start: fn() -> T,
) -> &'static T {
    let result = cell.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("testcluster".into())
            .spawn(move || {
                let shared = std::panic::catch_unwind(start).map_err(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "shared cluster start panicked".into())
                });
                let _ = tx.send(shared);
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn cluster thread");
        rx.recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|e| Err(format!("shared cluster did not start: {e}")))
    });
    match result {
        Ok(shared) => shared,
        Err(e) => panic!("shared test cluster is unavailable: {e}"),
    }
}
