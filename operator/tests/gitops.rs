//! GitOps tier: real ArgoCD delivers Predictors from Git, the operator rolls them out.
//!
//! ArgoCD's application controller and repo server (the `argocd` binary that
//! `dev/argocd/build.sh` builds from the Go module proxy, with the CRDs from the same module's
//! `manifests/crds`) and Debian's `redis-server` run against a real control plane with kwok nodes
//! (`support`). The committed `argocd/` AppProject and Application, the health check from
//! `argocd/argocd-cm-patch.yaml` and the real operator binary are used unchanged; only the Git URL
//! points at a repository this test creates on local disk (`file://`). The in-cluster destination
//! `https://kubernetes.default.svc` reaches the test apiserver through ArgoCD's own
//! `ARGOCD_FAKE_IN_CLUSTER` switch (the destination is taken from the controller's KUBECONFIG).
//!
//! Refreshes are triggered the way ArgoCD's Git webhook does it (the `argocd.argoproj.io/refresh`
//! annotation on the Application), and the controller's periodic resync is set to an hour, so a
//! sync can only come from that trigger.
//!
//! The argocd files are looked up in `MLOPS_ARGOCD_BIN`, else `MLOPS_K8S_BIN`, else the cache's bin
//! dir (`dev/argocd/build.sh` builds them). Needs `redis-server` and `git` on PATH. Ignored by a plain
//! `cargo test`; `./dev/test` runs it, and when selected it fails at once if a program is missing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use operator::crd::Predictor;
use operator::resources::Served;
use predictor::testing::FileServer;
use serde_json::{Value, json};
use support::manifests::{manifest, predictor};
use support::wait::{gone, object, poll};
use support::{Proc, ServedModel, TestCluster, client_for, free_port, run_ok};

const ARGOCD_NS: &str = "argocd";
/// The destination namespace of the committed Application.
const TEAM_NS: &str = "team-a";
const APP: &str = "team-a-predictors";
/// The Git path of the committed Application.
const GIT_PATH: &str = "gitops/team-a";
const IMAGE: &str = "registry.local/american-predictor";
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// The argocd binary directory, or a panic that says how to build it: a missing program fails the
/// test, it never skips it.
fn argocd_bin_dir() -> PathBuf {
    let dir = ["MLOPS_ARGOCD_BIN", "MLOPS_K8S_BIN"]
        .iter()
        .find_map(std::env::var_os)
        .map(PathBuf::from)
        .unwrap_or_else(|| support::DEFAULT_BIN_DIR.into());
    let wanted = [
        "argocd",
        "argocd-application-controller",
        "argocd-repo-server",
        "argocd-crds.yaml",
    ];
    let missing: Vec<_> = wanted.iter().filter(|f| !dir.join(f).exists()).collect();
    assert!(
        missing.is_empty(),
        "ArgoCD files {missing:?} not found in {} (MLOPS_ARGOCD_BIN): build them with \
         `./dev/argocd/build.sh` and set MLOPS_ARGOCD_BIN to the directory it prints",
        dir.display()
    );
    dir
}

// --- a Git repository on local disk ---------------------------------------------------

/// A Git work tree on `main`, fetched by ArgoCD through `file://`.
struct GitRepo {
    dir: PathBuf,
}

impl GitRepo {
    fn init(dir: &Path) -> GitRepo {
        std::fs::create_dir_all(dir).expect("create git dir");
        let repo = GitRepo { dir: dir.into() };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    /// Runs git in the repository, isolated from the machine's git configuration; returns stdout.
    fn git(&self, args: &[&str]) -> String {
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(&self.dir)
                .args([
                    "-c",
                    "user.name=gitops test",
                    "-c",
                    "user.email=gitops@test.invalid",
                    "-c",
                    "commit.gpgsign=false",
                ])
                .args(args)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null"),
        )
        .trim()
        .to_string()
    }

    /// Writes (Some) or deletes (None) files, commits them all, returns the new commit's SHA.
    fn commit(&self, message: &str, files: &[(&str, Option<&str>)]) -> String {
        for (path, content) in files {
            let full = self.dir.join(path);
            match content {
                Some(text) => {
                    std::fs::create_dir_all(full.parent().expect("file in a dir")).unwrap();
                    std::fs::write(&full, text).expect("write file");
                }
                None => std::fs::remove_file(&full).expect("remove file"),
            }
        }
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

// --- ArgoCD ------------------------------------------------------------------------------

/// redis-server, argocd-repo-server and argocd-application-controller, on loopback ports.
struct ArgoCd {
    procs: Vec<Proc>,
}

impl ArgoCd {
    fn start(cluster: &TestCluster, bin: &Path) -> ArgoCd {
        let dir = cluster.dir.join("argocd");
        for sub in ["tmp", "home"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create argocd dirs");
        }
        let (redis_port, repo_port) = (free_port(), free_port());
        let redis_addr = format!("127.0.0.1:{redis_port}");
        let mut redis = Command::new("redis-server");
        redis.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &redis_port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ]);
        redis.arg(&dir);
        let redis = Proc::spawn("redis-server", redis, &dir.join("redis.log"));
        wait_tcp(&redis_addr, &redis);

        let mut repo_server = argocd_command(&bin.join("argocd-repo-server"), &dir);
        repo_server.args([
            "--address",
            "127.0.0.1",
            "--port",
            &repo_port.to_string(),
            "--metrics-address",
            "127.0.0.1",
            "--metrics-port",
            &free_port().to_string(),
            "--redis",
            &redis_addr,
            "--disable-tls",
        ]);
        let repo_server = Proc::spawn("argocd-repo-server", repo_server, &dir.join("repo.log"));
        wait_tcp(&format!("127.0.0.1:{repo_port}"), &repo_server);

        let mut controller = argocd_command(&bin.join("argocd-application-controller"), &dir);
        controller
            .args([
                "--namespace",
                ARGOCD_NS,
                "--repo-server",
                &format!("127.0.0.1:{repo_port}"),
                "--repo-server-plaintext",
                "--redis",
                &redis_addr,
                "--metrics-port",
                &free_port().to_string(),
                // No periodic resync within a test: every sync must come from a refresh trigger.
                "--app-resync",
                "3600",
                // Keep each resource's health in the Application's status (ArgoCD 3 keeps it only in
                // redis by default), so the test can read what our health check said.
                "--persist-resource-health",
            ])
            .env("KUBECONFIG", &cluster.kubeconfig)
            // https://kubernetes.default.svc = the cluster in KUBECONFIG (the test apiserver).
            .env("ARGOCD_FAKE_IN_CLUSTER", "true");
        let controller = Proc::spawn(
            "argocd-application-controller",
            controller,
            &dir.join("controller.log"),
        );
        ArgoCd {
            procs: vec![redis, repo_server, controller],
        }
    }

    /// Panics with the logs if a component died.
    fn check_running(&mut self) {
        for p in &mut self.procs {
            assert!(p.running(), "{} exited:\n{}", p.name, p.tail(40));
        }
    }

    fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.name, p.tail(25)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ArgoCd {
    fn drop(&mut self) {
        // Controller first, redis last.
        while let Some(p) = self.procs.pop() {
            drop(p);
        }
    }
}

/// An argocd component with text logs and every path it writes under `dir`.
fn argocd_command(binary: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args(["--loglevel", "info", "--logformat", "text"])
        .env("HOME", dir.join("home"))
        .env("TMPDIR", dir.join("tmp"))
        .env("ARGOCD_ASK_PASS_SOCK", dir.join("askpass.sock"))
        .env("ARGOCD_GPG_ENABLED", "false")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    cmd
}

fn wait_tcp(addr: &str, proc: &Proc) {
    poll(
        Duration::from_secs(30),
        &format!("a listener on {addr}"),
        || std::net::TcpStream::connect(addr).ok(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}:\n{}", proc.name, proc.tail(30)));
}

/// ArgoCD's namespace, CRDs (from the argo-cd module), argocd-cm (our patch file, which is a
/// whole ConfigMap) and argocd-secret.
fn install_argocd_config(cluster: &TestCluster, bin: &Path) {
    cluster.kubectl_ok(&["create", "namespace", ARGOCD_NS]);
    // Server-side: the Application CRD is too big for the last-applied annotation.
    cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "-f",
        &bin.join("argocd-crds.yaml").display().to_string(),
    ]);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/applications.argoproj.io",
        "crd/appprojects.argoproj.io",
    ]);
    let cm = support::repo_root().join("argocd/argocd-cm-patch.yaml");
    cluster.kubectl_ok(&["apply", "-f", &cm.display().to_string()]);
    let key = predictor::model::sha256_hex(
        format!("{:?}{}", Instant::now(), std::process::id()).as_bytes(),
    );
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: argocd-secret\n  namespace: {ARGOCD_NS}\n  \
             labels:\n    app.kubernetes.io/name: argocd-secret\n    app.kubernetes.io/part-of: argocd\n\
             stringData:\n  server.secretkey: {key}\n"
        ),
    );
}

/// A kustomize overlay of the committed `argocd/` that only swaps the Git URL.
fn overlay_with_repo(dir: &Path, repo_url: &str) -> PathBuf {
    let overlay = dir.join("argocd-overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    let base = support::repo_root().join("argocd");
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- {}\npatches:\n\
             - target: {{kind: AppProject, name: team-a}}\n  patch: |-\n    \
             - {{op: replace, path: /spec/sourceRepos/0, value: \"{repo_url}\"}}\n\
             - target: {{kind: Application, name: {APP}}}\n  patch: |-\n    \
             - {{op: replace, path: /spec/source/repoURL, value: \"{repo_url}\"}}\n",
            support::relative_to(&overlay, &base).display()
        ),
    )
    .unwrap();
    overlay
}

/// Predictor `name` of the team's repository: image tag `tag`, 2 replicas.
fn predictor_file(name: &str, tag: &str, model: &ServedModel) -> String {
    manifest(&[predictor(name, &format!("{IMAGE}:{tag}"), model, 2)])
}

fn applications(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application");
    Api::namespaced_with(client.clone(), ARGOCD_NS, &ApiResource::from_gvk(&gvk))
}

/// What ArgoCD says about the Application: (sync status, revision, health status).
fn app_state(app: &DynamicObject) -> (String, String, String) {
    let s = &app.data["status"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    (
        text(&s["sync"]["status"]),
        text(&s["sync"]["revision"]),
        text(&s["health"]["status"]),
    )
}

/// Waits until `done` holds for the object `name`; panics after `SYNC_TIMEOUT` with what was seen
/// and the ArgoCD logs.
async fn wait_for<K>(
    argocd: &mut ArgoCd,
    api: &Api<K>,
    name: &str,
    what: &str,
    done: impl Fn(&K) -> bool,
) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let found = object(api, name, SYNC_TIMEOUT, what, done).await;
    argocd.check_running();
    found.unwrap_or_else(|e| panic!("{e}\n{}", argocd.logs()))
}

/// Waits until the object `name` no longer exists.
async fn wait_gone<K>(argocd: &mut ArgoCd, api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let deleted = gone(api, name, SYNC_TIMEOUT).await;
    argocd.check_running();
    deleted.unwrap_or_else(|e| panic!("{e}\n{}", argocd.logs()));
}

/// Waits until ArgoCD reports the Application Synced to `revision` and, if `healthy`, Healthy.
async fn wait_app_at(
    argocd: &mut ArgoCd,
    apps: &Api<DynamicObject>,
    revision: &str,
    healthy: bool,
) -> DynamicObject {
    let what = format!(
        "Synced to {revision}{}",
        if healthy { " + Healthy" } else { "" }
    );
    wait_for(argocd, apps, APP, &what, |a| {
        let (sync, at, health) = app_state(a);
        sync == "Synced" && at == revision && (!healthy || health == "Healthy")
    })
    .await
}

/// What ArgoCD's Git webhook does for a push: mark the Application for a normal refresh.
async fn refresh(apps: &Api<DynamicObject>) {
    let patch = json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
    apps.patch(APP, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate the Application for refresh");
}

fn deployment_image(d: &Deployment) -> String {
    Served::of(d).image.unwrap_or_default()
}

fn has_argocd_tracking(meta: &kube::api::ObjectMeta) -> bool {
    let tracked = |m: &Option<std::collections::BTreeMap<String, String>>| {
        m.as_ref()
            .is_some_and(|m| m.keys().any(|k| k.starts_with("argocd.argoproj.io/")))
    };
    tracked(&meta.annotations)
}

#[tokio::test]
#[ignore = "needs etcd, kube-*, kwok, kubectl, argocd, redis-server, git: ./dev/test runs it"]
async fn argocd_syncs_predictors_from_git_and_leaves_children_to_the_operator() {
    let bin = argocd_bin_dir();
    let cluster = TestCluster::start(2);
    let operator_kubeconfig = cluster.install_operator_prerequisites();
    install_argocd_config(&cluster, &bin);

    // Acceptance 2: the committed manifests, as they are, against the real CRDs.
    let dry_run = cluster.kubectl_ok(&[
        "apply",
        "--dry-run=server",
        "-k",
        &support::repo_root().join("argocd").display().to_string(),
    ]);
    assert!(
        dry_run.contains("appproject.argoproj.io/team-a created (server dry run)")
            && dry_run.contains(&format!(
                "application.argoproj.io/{APP} created (server dry run)"
            )),
        "{dry_run}"
    );

    // The platform's part: team namespace, operator, model files.
    cluster.create_namespace(TEAM_NS);
    let files = FileServer::start();
    let model = ServedModel::put(&files, "/models/a.model", "2026-11-24T00:00:00Z");
    let _operator = cluster.start_operator(
        "operator-gitops",
        &operator_kubeconfig,
        // kwok runs no containers and no registry serves registry.local here.
        &["--skip-image-check"],
    );

    // The team's repository: two Predictors.
    let repo = GitRepo::init(&cluster.dir.join("git/predictors"));
    let american = format!("{GIT_PATH}/american.yaml");
    let spare = format!("{GIT_PATH}/spare.yaml");
    let first = repo.commit(
        "two predictors",
        &[
            (&american, Some(&predictor_file("american", "0.1", &model))),
            (&spare, Some(&predictor_file("spare", "0.1", &model))),
        ],
    );

    let mut argocd = ArgoCd::start(&cluster, &bin);
    let overlay = overlay_with_repo(&cluster.dir, &repo.url());
    cluster.kubectl_ok(&["apply", "-k", &overlay.display().to_string()]);

    let client = client_for(&cluster.kubeconfig).await;
    let apps = applications(&client);
    let predictors: Api<Predictor> = Api::namespaced(client.clone(), TEAM_NS);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), TEAM_NS);
    let services: Api<Service> = Api::namespaced(client.clone(), TEAM_NS);

    // First sync: both Predictors, rolled out by the operator, Healthy through our health.lua.
    let started = Instant::now();
    let app = wait_app_at(&mut argocd, &apps, &first, true).await;
    eprintln!(
        "[gitops] first sync Synced + Healthy in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let american_deployment = deployments.get("american").await.unwrap();
    let american_service = services.get("american").await.unwrap();
    assert_eq!(
        deployment_image(&american_deployment),
        format!("{IMAGE}:0.1")
    );
    assert_only_predictors_tracked(&app, &["american", "spare"]);
    // ArgoCD ran our health check: the Predictor's health message is the operator's Ready message.
    let ready_message = predictors
        .get("american")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message)
        .unwrap();
    let american_health = app.data["status"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "american")
        .map(|r| r["health"].clone())
        .unwrap();
    assert_eq!(american_health["status"], "Healthy");
    assert_eq!(
        american_health["message"],
        Value::from(ready_message),
        "{american_health}"
    );

    // Acceptance 3: a commit that bumps american's image tag, then the webhook-style refresh.
    let second = repo.commit(
        "american 0.2",
        &[(&american, Some(&predictor_file("american", "0.2", &model)))],
    );
    let committed = Instant::now();
    refresh(&apps).await;
    wait_app_at(&mut argocd, &apps, &second, false).await;
    let synced = committed.elapsed();
    let deployment = wait_for(
        &mut argocd,
        &deployments,
        "american",
        "rolled out with 0.2",
        |d| deployment_image(d) == format!("{IMAGE}:0.2") && support::wait::rolled_out(d),
    )
    .await;
    let rolled = committed.elapsed();
    let predictor = wait_for(
        &mut argocd,
        &predictors,
        "american",
        "Ready serving 0.2",
        |p| {
            operator::status::is_ready(p)
                && p.status.as_ref().and_then(|s| s.version.as_deref()) == Some("0.2")
        },
    )
    .await;
    let app = wait_app_at(&mut argocd, &apps, &second, true).await;
    eprintln!(
        "[gitops] commit -> Synced {:.1}s, -> rolled out {:.1}s, -> Synced + Healthy {:.1}s",
        synced.as_secs_f64(),
        rolled.as_secs_f64(),
        committed.elapsed().as_secs_f64()
    );
    assert_eq!(predictor.status.unwrap().ready.as_deref(), Some("2/2"));
    let operation = &app.data["status"]["operationState"];
    assert_eq!(operation["phase"], "Succeeded", "{operation:#}");
    assert_eq!(
        operation["operation"]["sync"]["revision"],
        Value::from(second.as_str())
    );
    assert_only_predictors_tracked(&app, &["american", "spare"]);

    // Acceptance 4: a commit that drops spare. The automated sync prunes (prune: true) the spare
    // Predictor and nothing else; the cluster's garbage collector removes its children through
    // their owner references; american's children stay the same objects (never deleted or
    // recreated by ArgoCD), and ArgoCD tracks nothing but Predictors.
    let third = repo.commit("no spare", &[(&spare, None)]);
    refresh(&apps).await;
    let app = wait_app_at(&mut argocd, &apps, &third, true).await;
    let operation = &app.data["status"]["operationState"];
    assert_eq!(
        operation["operation"]["sync"]["prune"], true,
        "{operation:#}"
    );
    let pruned: Vec<_> = operation["syncResult"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["status"] == "Pruned")
        .map(|r| {
            format!(
                "{}/{}",
                r["kind"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(pruned, ["Predictor/spare"], "{operation:#}");
    assert_only_predictors_tracked(&app, &["american"]);
    wait_gone(&mut argocd, &predictors, "spare").await;
    wait_gone(&mut argocd, &deployments, "spare").await;
    wait_gone(&mut argocd, &services, "spare").await;
    assert_eq!(deployment.uid(), american_deployment.uid());
    let service = services.get("american").await.unwrap();
    assert_eq!(service.uid(), american_service.uid());
    for meta in [&deployment.metadata, &service.metadata] {
        assert!(!has_argocd_tracking(meta), "ArgoCD marked {meta:#?}");
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Predictor", "american")
        );
    }
    argocd.check_running();
}

/// The Application's resource list holds exactly these Predictors, each Synced.
fn assert_only_predictors_tracked(app: &DynamicObject, names: &[&str]) {
    let resources = app.data["status"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut tracked: Vec<(String, String, String)> = resources
        .iter()
        .map(|r| {
            (
                format!(
                    "{}/{}",
                    r["group"].as_str().unwrap_or(""),
                    r["kind"].as_str().unwrap_or("")
                ),
                r["name"].as_str().unwrap_or("").to_string(),
                r["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    tracked.sort();
    let want: Vec<_> = names
        .iter()
        .map(|n| {
            (
                "mlops.dev/Predictor".to_string(),
                n.to_string(),
                "Synced".to_string(),
            )
        })
        .collect();
    assert_eq!(tracked, want, "Application resources: {resources:#?}");
}
