//! Real ArgoCD next to a [`TestCluster`]: the binaries `dev/argocd/build.sh` builds, its CRDs and
//! config installed from the committed `argocd/` files, and its processes (redis, repo server,
//! application controller and, when asked, argocd-server) on loopback ports, started by
//! `dev/argocd/components.sh` (the launcher `dev/delivery-report` uses too).
//!
//! The in-cluster destination `https://kubernetes.default.svc` reaches the test apiserver through
//! ArgoCD's own `ARGOCD_FAKE_IN_CLUSTER` switch (the destination is taken from `KUBECONFIG`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use model_store::testing::FileServer;
use serde_json::Value;

use super::control_plane::{DEFAULT_BIN_DIR, OperatorProc, TestCluster, check_output, run_kubectl};
use super::files::ServedModel;
use super::files::{free_port, relative_to, repo_root};
use super::process::{Proc, launcher};
use super::wait::poll;

/// ArgoCD's namespace, as in its own install manifests and our `argocd/` files.
pub const ARGOCD_NS: &str = "argocd";
/// The committed Application (`argocd/application.yaml`), its destination namespace and Git path.
pub const APP: &str = "team-a-predictors";
pub const TEAM_NS: &str = "team-a";
pub const GIT_PATH: &str = "gitops/team-a";

/// The argocd binary directory, holding the multi-call binary, the `components` (its symlinks)
/// and the CRDs; or a panic that says how to build them (or how to install `redis-server` and
/// `git`): a missing program fails the test, it never skips it. Looked up in `MLOPS_ARGOCD_BIN`,
/// else `MLOPS_K8S_BIN`, else the cache.
pub fn bin_dir(components: &[&str]) -> PathBuf {
    let dir = ["MLOPS_ARGOCD_BIN", "MLOPS_K8S_BIN"]
        .iter()
        .find_map(std::env::var_os)
        .map(PathBuf::from)
        .unwrap_or_else(|| DEFAULT_BIN_DIR.into());
    let wanted = ["argocd", "argocd-crds.yaml"].iter().chain(components);
    let missing: Vec<_> = wanted.filter(|f| !dir.join(f).exists()).collect();
    assert!(
        missing.is_empty(),
        "ArgoCD files {missing:?} not found in {} (MLOPS_ARGOCD_BIN): build them with \
         `./dev/argocd/build.sh` and set MLOPS_ARGOCD_BIN to the directory it prints",
        dir.display()
    );
    // ArgoCD's cache and the Git client its repo server runs.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<_> = ["redis-server", "git"]
        .into_iter()
        .filter(|p| !std::env::split_paths(&path).any(|d| d.join(p).is_file()))
        .collect();
    assert!(
        missing.is_empty(),
        "{missing:?} not on PATH: apt-get install redis-server git (.ci/run does)"
    );
    dir
}

/// The cluster ArgoCD runs against: its admin kubeconfig (ArgoCD's in-cluster destination), the
/// directory holding `kubectl`, and where ArgoCD's files and logs go. A [`TestCluster`] or the
/// node tier's single-node cluster.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub dir: &'a Path,
    pub kubeconfig: &'a Path,
    pub bin: &'a Path,
}

impl<'a> From<&'a TestCluster> for Target<'a> {
    fn from(cluster: &'a TestCluster) -> Self {
        Target {
            dir: &cluster.dir,
            kubeconfig: &cluster.kubeconfig,
            bin: &cluster.bin,
        }
    }
}

impl Target<'_> {
    fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        check_output(&run_kubectl(self.bin, self.kubeconfig, args, stdin), args)
    }
}

/// Which ArgoCD processes to run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Components {
    /// redis, repo server and application controller: what syncs Git to the cluster.
    Sync,
    /// The same, plus argocd-server on loopback (plain HTTP/gRPC): the API the `argocd` CLI talks to.
    WithServer,
    /// The same, with argocd-server over TLS (its own self-signed certificate): the web UI (embedded in
    /// the binary by dev/argocd/build.sh) and the API.
    WithWebUi,
}

/// The running ArgoCD processes; dropping it stops them.
pub struct ArgoCd {
    procs: Vec<Proc>,
    /// argocd-server's `127.0.0.1:<port>` (plain HTTP/gRPC, or TLS with the web UI), when it runs.
    pub server: Option<String>,
}

impl ArgoCd {
    /// Starts the `components` against `cluster` with the binaries in `bin`; panics with the logs
    /// if one does not come up.
    pub fn start<'a>(cluster: impl Into<Target<'a>>, bin: &Path, components: Components) -> ArgoCd {
        let cluster = cluster.into();
        let dir = cluster.dir.join("argocd");
        std::fs::create_dir_all(&dir).expect("create the argocd dir");
        let (redis_port, repo_port) = (free_port().to_string(), free_port().to_string());
        let mut redis = component("argocd_redis");
        redis.arg(&dir).arg(&redis_port);
        let redis = Proc::spawn("redis-server", redis, &dir.join("redis.log"));
        wait_tcp(&redis_port, &redis);

        let mut repo_server = component("argocd_repo_server");
        repo_server
            .arg(bin)
            .arg(&dir)
            .args([&redis_port, &repo_port, &free_port().to_string()]);
        let repo_server = Proc::spawn("argocd-repo-server", repo_server, &dir.join("repo.log"));
        wait_tcp(&repo_port, &repo_server);

        let mut controller = component("argocd_application_controller");
        controller.arg(bin).arg(&dir).arg(cluster.kubeconfig).args([
            &redis_port,
            &repo_port,
            &free_port().to_string(),
        ]);
        let controller = Proc::spawn(
            "argocd-application-controller",
            controller,
            &dir.join("controller.log"),
        );
        let mut argocd = ArgoCd {
            procs: vec![redis, repo_server, controller],
            server: None,
        };
        match components {
            Components::Sync => {}
            Components::WithServer => {
                argocd.start_server(&cluster, bin, &dir, &redis_port, &repo_port, false)
            }
            Components::WithWebUi => {
                argocd.start_server(&cluster, bin, &dir, &redis_port, &repo_port, true)
            }
        }
        argocd
    }

    /// argocd-server on loopback, without TLS (`--insecure`: nothing but this machine reaches it) or, for
    /// the web UI, with it (`tls`).
    fn start_server(
        &mut self,
        cluster: &Target,
        bin: &Path,
        dir: &Path,
        redis_port: &str,
        repo_port: &str,
        tls: bool,
    ) {
        let port = free_port();
        let mut server = component("argocd_server");
        server.arg(bin).arg(dir).arg(cluster.kubeconfig).args([
            redis_port,
            repo_port,
            &port.to_string(),
            &free_port().to_string(),
        ]);
        if tls {
            server.arg("tls");
        }
        let addr = format!("127.0.0.1:{port}");
        let server = Proc::spawn("argocd-server", server, &dir.join("server.log"));
        // /healthz answers once the server has initialised its settings (admin password included).
        let healthy = || {
            let answer = if tls {
                https_get(&format!("https://{addr}/healthz"))
            } else {
                model_store::testing::http_get(&addr, "/healthz")
            };
            answer.filter(|(code, _)| *code == 200)
        };
        poll(
            Duration::from_secs(60),
            &format!("argocd-server /healthz on {addr}"),
            healthy,
        )
        .unwrap_or_else(|e| panic!("{e}:\n{}", server.tail(40)));
        self.procs.push(server);
        self.server = Some(addr);
    }

    /// Panics with the logs if a component died.
    pub fn check_running(&mut self) {
        for p in &mut self.procs {
            assert!(p.running(), "{} exited:\n{}", p.name, p.tail(40));
        }
    }

    /// The last lines of every component's log, for failure messages.
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.name, p.tail(25)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ArgoCd {
    fn drop(&mut self) {
        // Server and controller first, redis last.
        while let Some(p) = self.procs.pop() {
            drop(p);
        }
    }
}

/// GET `url` over TLS accepting argocd-server's self-signed certificate (what a browser told to trust it
/// does): the status and body, or `None` if nothing answered.
pub fn https_get(url: &str) -> Option<(u16, String)> {
    model_store::tls::install_crypto_provider();
    let client = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let response = client.get(url).send().ok()?;
    let code = response.status().as_u16();
    Some((code, response.text().ok()?))
}

/// `function` of `dev/argocd/components.sh`, which execs that component.
fn component(function: &str) -> std::process::Command {
    launcher("dev/argocd/components.sh", function)
}

/// Waits for a listener on 127.0.0.1:`port`.
fn wait_tcp(port: &str, proc: &Proc) {
    let addr = format!("127.0.0.1:{port}");
    poll(
        Duration::from_secs(30),
        &format!("a listener on {addr}"),
        || std::net::TcpStream::connect(&addr).ok(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}:\n{}", proc.name, proc.tail(30)));
}

/// ArgoCD's namespace, CRDs (from the argo-cd module), argocd-cm (our patch file, which is a
/// whole ConfigMap) and an argocd-secret with only the server key, as ArgoCD's install manifests
/// leave it: argocd-server sets the admin password at its first start.
pub fn install_config<'a>(cluster: impl Into<Target<'a>>, bin: &Path) {
    let cluster = cluster.into();
    // Idempotent: the node tier's scenarios that run ArgoCD each install it.
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ARGOCD_NS}\n"
        )),
    );
    // Server-side: the Application CRD is too big for the last-applied annotation.
    cluster.kubectl_ok(
        &[
            "apply",
            "--server-side",
            "-f",
            &bin.join("argocd-crds.yaml").display().to_string(),
        ],
        None,
    );
    cluster.kubectl_ok(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/applications.argoproj.io",
            "crd/appprojects.argoproj.io",
        ],
        None,
    );
    let cm = repo_root().join("argocd/argocd-cm-patch.yaml");
    cluster.kubectl_ok(&["apply", "-f", &cm.display().to_string()], None);
    let key = predictor::model::sha256_hex(
        format!("{:?}{}", Instant::now(), std::process::id()).as_bytes(),
    );
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: argocd-secret\n  namespace: {ARGOCD_NS}\n  \
             labels:\n    app.kubernetes.io/name: argocd-secret\n    app.kubernetes.io/part-of: argocd\n\
             stringData:\n  server.secretkey: {key}\n"
        )),
    );
}

/// One patch of a kustomize overlay: the object (`kind`, `name`) and the patch text (a JSON patch
/// or a strategic merge patch, as kustomize's `patches` take them).
pub struct OverlayPatch<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub patch: String,
}

/// A kustomize overlay of the committed `argocd/` in `dir/argocd-overlay` with `patches` (the
/// tests only swap Git URLs for local repositories, or leave an object out); returns its dir.
pub fn overlay(dir: &Path, patches: &[OverlayPatch]) -> PathBuf {
    let overlay = dir.join("argocd-overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    let base = repo_root().join("argocd");
    let mut text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- {}\npatches:\n",
        relative_to(&overlay, &base).display()
    );
    for p in patches {
        // The patch as a JSON string: valid YAML whatever it holds.
        text += &format!(
            "- target: {{kind: {}, name: {}}}\n  patch: {}\n",
            p.kind,
            p.name,
            Value::from(p.patch.as_str())
        );
    }
    std::fs::write(overlay.join("kustomization.yaml"), text).unwrap();
    overlay
}

/// A kustomize overlay of the committed `argocd/` that only swaps team A's Git URL for `repo_url`.
pub fn team_a_overlay(dir: &Path, repo_url: &str) -> PathBuf {
    overlay(
        dir,
        &[
            OverlayPatch {
                kind: "AppProject",
                name: "team-a-project",
                patch: replace("/spec/sourceRepos/0", repo_url),
            },
            OverlayPatch {
                kind: "Application",
                name: APP,
                patch: replace("/spec/source/repoURL", repo_url),
            },
        ],
    )
}

/// The committed `argocd/` files with each team's Git URL swapped for a local repository, and
/// without the declarative Application: team A creates its app itself (with the CLI, or in the web UI).
pub fn teams_overlay(dir: &Path, team_a_repo: &str, team_b_repo: &str) -> PathBuf {
    overlay(
        dir,
        &[
            OverlayPatch {
                kind: "AppProject",
                name: "team-a-project",
                patch: replace("/spec/sourceRepos/0", team_a_repo),
            },
            OverlayPatch {
                kind: "AppProject",
                name: "team-b-project",
                patch: replace("/spec/sourceRepos/0", team_b_repo),
            },
            OverlayPatch {
                kind: "Application",
                name: "team-a-predictors",
                patch: serde_json::json!({
                    "$patch": "delete",
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Application",
                    "metadata": {"name": "team-a-predictors"},
                })
                .to_string(),
            },
        ],
    )
}

/// A JSON patch that replaces the value at `path` with `value`.
pub fn replace(path: &str, value: &str) -> String {
    serde_json::json!([{"op": "replace", "path": path, "value": value}]).to_string()
}

/// The Applications in ArgoCD's namespace.
pub fn applications(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application");
    Api::namespaced_with(client.clone(), ARGOCD_NS, &ApiResource::from_gvk(&gvk))
}

/// What ArgoCD says about an Application: (sync status, revision, health status).
pub fn app_state(app: &DynamicObject) -> (String, String, String) {
    let s = &app.data["status"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    (
        text(&s["sync"]["status"]),
        text(&s["sync"]["revision"]),
        text(&s["health"]["status"]),
    )
}

/// The platform's part of a GitOps test: a model on a loopback store, and the operator (`name`,
/// with `kubeconfig`). kwok runs no containers and no registry serves registry.local here, so the
/// operator skips the image check. Drop in reverse: the operator before the store.
pub fn model_and_operator(
    cluster: &TestCluster,
    kubeconfig: &Path,
    name: &str,
) -> (FileServer, ServedModel, OperatorProc) {
    let files = FileServer::start();
    let model = ServedModel::put(&files, "/models/a.model", "2026-11-24T00:00:00Z");
    let operator = cluster.start_operator(name, kubeconfig, &["--skip-image-check"]);
    (files, model, operator)
}
