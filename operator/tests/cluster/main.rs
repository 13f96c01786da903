//! Cluster tier: the operator binary against a real control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kwok nodes), driven with the real kubectl.
//!
//! One control plane is shared by every test in this binary (startup takes ~15 s). Each test works in
//! its own namespace with its own operator, which watches only that namespace and elects through its
//! own Lease, so tests run side by side without seeing each other's Predictors. Every operator
//! authenticates as the `predictor-operator` ServiceAccount, so every test also proves config/rbac is
//! sufficient. The apiserver restart needs a control plane of its own (every other test would see the
//! outage); it also runs the operator cluster-wide, as config/manager does.
//!
//! [`lifecycle`]: rollouts, digest rejection, apiserver validation, garbage collection, leader
//! hand-over. [`faults`]: what goes wrong, least privilege, locked-down pods, credentials.
//! [`images`]: the image pre-flight against a real private registry. [`quality`]: the offline
//! quality gate (`spec.validation`). [`canary`]: the online gate's API (`spec.rollout`).
//! [`autoscaling`]: who owns the replica count with `spec.autoscaling`. [`hostile_tenant`]: a team
//! member who may only commit Predictors tries to reach past them (issue 26). [`namespaced`]: the
//! operator limited to two team namespaces by config/namespaced (its own control plane: RoleBindings
//! only).
//!
//! Ignored by a plain `cargo test`: `./dev/test` runs it. When selected it needs the binaries from
//! `dev/cluster/build-binaries.sh` (`MLOPS_K8S_BIN`) and fails at once without them.

#[path = "../support/mod.rs"]
mod support;

mod autoscaling;
mod canary;
mod faults;
mod hostile_tenant;
mod images;
mod lifecycle;
mod namespaced;
mod quality;

use std::path::PathBuf;
use std::sync::OnceLock;

use kube::Client;
use model_store::testing::FileServer;
use operator::crd::Predictor;
use support::manifests::manifest;
use support::{OperatorProc, ServedModel, TestCluster, client_for};

/// What every test of this binary shares: the control plane, the operator's kubeconfig, and a model
/// store with two models.
pub struct Shared {
    pub cluster: TestCluster,
    pub operator_kubeconfig: PathBuf,
    pub files: FileServer,
    pub model_a: ServedModel,
    pub model_b: ServedModel,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

/// The shared control plane, started on first use.
pub fn shared() -> &'static Shared {
    support::shared_by_binary(&SHARED, || {
        let cluster = TestCluster::start(2);
        let operator_kubeconfig = cluster.install_operator_prerequisites();
        let files = FileServer::start();
        let model_a = ServedModel::put(&files, "/models/a.model", "2026-11-24T00:00:00Z");
        let model_b = ServedModel::put(&files, "/models/b.model", "2026-11-25T00:00:00Z");
        assert_ne!(model_a.sha, model_b.sha);
        Shared {
            cluster,
            operator_kubeconfig,
            files,
            model_a,
            model_b,
        }
    })
}

/// A cluster-admin client of the shared control plane.
pub async fn admin() -> Client {
    client_for(&shared().cluster.kubeconfig).await
}

/// Lease timings of the scoped operators (seconds): short, so handovers are quick to test.
pub const LEASE_SECONDS: u64 = 6;
pub const RENEW_DEADLINE_SECONDS: u64 = 4;
pub const RETRY_SECONDS: u64 = 1;

/// Starts operator `name` on the shared control plane, watching only `namespace` and electing
/// through Lease `lease`, without the image check: kwok runs no containers and no registry serves
/// this tier's images ([`images`] tests the check against a real registry).
pub fn start_scoped(name: &str, namespace: &str, lease: &str) -> OperatorProc {
    start_scoped_with(name, namespace, lease, &["--skip-image-check"])
}

/// [`start_scoped`] with `extra` flags instead of `--skip-image-check`.
pub fn start_scoped_with(name: &str, namespace: &str, lease: &str, extra: &[&str]) -> OperatorProc {
    let s = shared();
    let flags = [
        "--namespace",
        namespace,
        "--lease-name",
        lease,
        "--lease-duration",
        &format!("{LEASE_SECONDS}s"),
        "--renew-deadline",
        &format!("{RENEW_DEADLINE_SECONDS}s"),
        "--retry-period",
        &format!("{RETRY_SECONDS}s"),
    ]
    .map(String::from);
    let flags: Vec<&str> = flags
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    s.cluster
        .start_operator(name, &s.operator_kubeconfig, &flags)
}

/// Creates namespace `ns` on the shared control plane and starts operator `operator-{ns}` watching
/// only it (Lease `ns`, as [`start_scoped`]): the operator and a cluster-admin client.
/// The image every Predictor of this tier names (kwok runs no containers; nothing pulls it).
pub const IMAGE: &str = "registry.local/american-predictor:0.2";

/// A valid Predictor `NAME` as YAML, to break one field of: image 0.2, a model pinned by a digest of
/// 64 `a`s, then `rest` (lines indented under `spec:`).
pub fn valid_yaml(rest: &str) -> String {
    format!(
        "apiVersion: mlops.dev/v1alpha1\nkind: Predictor\nmetadata:\n  name: NAME\nspec:\n  \
         image: {IMAGE}\n  model:\n    \
         url: https://models.example.org/a.model\n    sha256: {sha}\n{rest}",
        sha = "a".repeat(64)
    )
}

/// The shared cluster, with namespace `ns` made for one test.
pub fn in_namespace(ns: &'static str) -> (&'static Shared, &'static str) {
    let s = shared();
    s.cluster.create_namespace(ns);
    (s, ns)
}

/// The shared cluster, namespace `ns` made for one test with an operator watching it (its own,
/// scoped to `ns`), and the admin's client.
pub async fn operated(ns: &'static str) -> (&'static Shared, &'static str, OperatorProc, Client) {
    let (s, ns) = in_namespace(ns);
    let op = start_scoped(&format!("operator-{ns}"), ns, ns);
    (s, ns, op, admin().await)
}

/// `kubectl apply`s `predictors` in `ns`, as a user would.
pub fn apply(ns: &str, predictors: &[Predictor]) {
    shared()
        .cluster
        .kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &manifest(predictors));
}

/// Patches Predictor `name` in `ns` on `cluster` with the JSON merge patch `patch`, as a user's
/// `kubectl patch` does.
pub fn patch_predictor(cluster: &TestCluster, ns: &str, name: &str, patch: &str) {
    cluster.kubectl_ok(&[
        "patch",
        "predictor",
        name,
        "-n",
        ns,
        "--type=merge",
        "-p",
        patch,
    ]);
}

/// Applies each case's YAML (its `NAME` replaced by the case's name) with `kubectl <apply>` and
/// asserts that the apiserver refuses it saying `expected`: what it said, case by case.
pub fn assert_refused<'a>(
    apply: &[&str],
    cases: impl IntoIterator<Item = (&'a str, String, &'a str)>,
) -> Vec<(&'a str, String)> {
    let refused = |(name, yaml, expected): (&'a str, String, &str)| {
        let stderr = shared()
            .cluster
            .kubectl_refused(apply, name, &yaml.replace("NAME", name));
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected:?} in:\n{stderr}"
        );
        (name, stderr)
    };
    cases.into_iter().map(refused).collect()
}

/// Asserts that the apiserver accepts `yaml` (its `NAME` replaced by `valid`) in `ns` in a
/// server-side dry run: the object it would store, as YAML.
pub fn assert_accepted(ns: &str, yaml: &str) -> String {
    let apply = [
        "apply",
        "--dry-run=server",
        "-n",
        ns,
        "-o",
        "yaml",
        "-f",
        "-",
    ];
    shared()
        .cluster
        .kubectl_stdin(&apply, &yaml.replace("NAME", "valid"))
}

/// Asserts that `text` (what kubectl said) contains each of `parts`.
pub fn assert_contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part} not in:\n{text}");
    }
}

/// Asserts that the apiserver refused `what` (its `result`) with 403 Forbidden.
pub fn assert_forbidden<T: std::fmt::Debug>(result: kube::Result<T>, what: &str) {
    let err = result.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(e) if e.code == 403),
        "{what}: {err}"
    );
}

/// Waits (bounded by `within`) until `done` holds for object `name`; panics with what was seen and
/// the log of operator `op` otherwise.
pub async fn wait_object<K>(
    api: &kube::Api<K>,
    name: &str,
    within: std::time::Duration,
    what: &str,
    op: &OperatorProc,
    done: impl Fn(&K) -> bool,
) -> K
where
    K: support::wait::Watched,
{
    support::wait::object(api, name, within, what, done)
        .await
        .unwrap_or_else(|e| panic!("{e}\noperator log:\n{}", op.proc.tail(30)))
}
