//! A real, throwaway Kubernetes control plane for tests and benchmarks: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok (fake nodes whose pods turn Ready), started from
//! the binaries `dev/cluster/build-binaries.sh` builds, on free 127.0.0.1 ports in a temp dir. No
//! traffic leaves loopback. The first four start through `dev/cluster/control-plane.sh`, the launcher
//! of the node tier's control plane too (`dev/node/up.sh`), with the tests' own flags added.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use model_store::testing::http_get;

use super::files::{free_port, repo_root};
use super::pki::make_pki;
use super::process::{Cleanup, Proc, REGISTRY, launcher, register, wait_output, without_proxy};
use super::wait::poll;

/// Where the control-plane binaries are, unless `MLOPS_K8S_BIN` says otherwise.
pub use super::program::DEFAULT_BIN_DIR;
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
        "control-plane binaries {missing:?} not found in {} (MLOPS_K8S_BIN): build them with \
         `./dev/cluster/build-binaries.sh` and set MLOPS_K8S_BIN to the directory it prints",
        dir.display()
    );
    dir
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
    /// How kube-apiserver was started (the launcher's arguments), to start it again the same way
    /// (same port, same etcd).
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
            "[control plane] {nodes} kwok nodes up in {:.1}s at https://127.0.0.1:{} ({})",
            started.elapsed().as_secs_f64(),
            cluster.api_port,
            cluster.dir.display()
        );
        cluster
    }

    fn pki(&self, file: &str) -> String {
        self.dir.join("pki").join(file).display().to_string()
    }

    /// Starts `name`, a component of `dev/cluster/control-plane.sh`: its `function` with the
    /// binaries' directory and `args`.
    fn spawn(&mut self, name: &str, function: &str, args: &[String]) {
        let mut cmd = launcher("dev/cluster/control-plane.sh", function);
        cmd.arg(&self.bin).args(args);
        self.spawn_command(name, cmd);
    }

    fn spawn_command(&mut self, name: &str, cmd: Command) {
        let log = self.dir.join(format!("{name}.log"));
        self.procs.push(Proc::spawn(name, cmd, &log));
    }

    fn start_etcd_and_apiserver(&mut self) {
        let etcd_port = free_port().to_string();
        let data = self.dir.join("etcd").display().to_string();
        self.spawn(
            "etcd",
            "control_plane_etcd",
            &strings(&[&data, &etcd_port, &free_port().to_string()]),
        );
        let pki = self.dir.join("pki").display().to_string();
        self.apiserver_args = strings(&[
            &pki,
            &etcd_port,
            "127.0.0.1",
            &self.api_port.to_string(),
            "10.0.0.0/16",
        ]);
        self.spawn(
            "kube-apiserver",
            "control_plane_apiserver",
            &self.apiserver_args.clone(),
        );
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
        self.spawn(
            "kube-apiserver",
            "control_plane_apiserver",
            &self.apiserver_args.clone(),
        );
        self.wait_for_apiserver();
    }

    fn start_controllers(&mut self) {
        let kubeconfig = self.kubeconfig.display().to_string();
        let pki = self.dir.join("pki").display().to_string();
        let args = strings(&[
            &pki,
            &kubeconfig,
            "127.0.0.1",
            &free_port().to_string(),
            "--concurrent-deployment-syncs",
            "20",
            "--concurrent-replicaset-syncs",
            "20",
            // kwok's nodes have no kubelet heartbeat but their Lease: after an apiserver restart the
            // node lifecycle controller could see every node's heartbeat as stale, mark the pods
            // Ready=False (ContainersReady stays True), and kwok never sets them Ready again. The
            // faults tests restart the apiserver for seconds, not minutes.
            "--node-monitor-grace-period",
            "5m",
        ]);
        self.spawn(
            "kube-controller-manager",
            "control_plane_controller_manager",
            &args,
        );
        let args = strings(&[&kubeconfig, "127.0.0.1", &free_port().to_string()]);
        self.spawn("kube-scheduler", "control_plane_scheduler", &args);
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
        let mut kwok = Command::new(self.bin.join("kwok"));
        kwok.args(args);
        self.spawn_command("kwok", kwok);
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

    /// Waits (bounded by `timeout`) until `ready` holds; panics with the component logs if it never
    /// does, or at once if a component exits.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut(&TestCluster) -> bool,
    ) {
        let waited = poll(timeout, what, || {
            if ready(self) {
                return Some(());
            }
            for p in &mut self.procs {
                assert!(
                    p.running(),
                    "{} exited while waiting for {what}:\n{}",
                    p.name,
                    p.tail(30)
                );
            }
            None
        });
        if let Err(timed_out) = waited {
            let logs: Vec<String> = self
                .procs
                .iter()
                .map(|p| format!("--- {} ---\n{}", p.name, p.tail(15)))
                .collect();
            panic!("{timed_out}\n{}", logs.join("\n"));
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

    /// kubectl `args` with `yaml` on stdin that the apiserver must refuse (case `name`); returns
    /// its stderr, for the caller to check the reason.
    pub fn kubectl_refused(&self, args: &[&str], name: &str, yaml: &str) -> String {
        let out = self.kubectl_with(&self.kubeconfig, args, Some(yaml));
        assert!(!out.status.success(), "{name} was accepted:\n{yaml}");
        String::from_utf8_lossy(&out.stderr).into_owned()
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
        let args = ["get", "serviceaccount", "default", "-n", name];
        poll(
            Duration::from_secs(30),
            "the default ServiceAccount",
            || self.kubectl(&args).status.success().then_some(()),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
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
            // A model, data or image host outside loopback fails at once, saying so.
            .env(model_store::egress::ENV, model_store::egress::LOOPBACK)
            .env_remove("SKIP_MODEL_CHECK")
            .env_remove("SKIP_IMAGE_CHECK");
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
        poll(timeout, &format!("200 on {path}"), || {
            matches!(self.get(path), Some((200, _))).then_some(())
        })
        .unwrap_or_else(|e| panic!("operator {}: {e}:\n{}", self.proc.name, self.proc.tail(30)));
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
    checked("kubectl", out, args)
}

/// Asserts `program` (run with `args`) succeeded; returns its stdout.
pub fn checked(program: &str, out: &Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "{program} {} failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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

/// A kube client for the cluster behind `kubeconfig`.
pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kube config");
    kube::Client::try_from(config).expect("kube client")
}
