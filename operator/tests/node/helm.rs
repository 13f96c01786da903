//! Section 14: the operator by Helm (issue 28), as docs/install.md#helm says: the `kubectl apply -k`
//! installation replaced by `helm install` of charts/predictor-operator, `helm upgrade` to a new image
//! tag, `helm uninstall` and `helm install` again, each under `predictor probe` with 0 failed requests.
//! It replaces the operator pods, so it runs last.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Setup;
use crate::cluster::*;
use crate::probe::*;
use crate::support::{DEFAULT_BIN_DIR, checked, repo_root, wait_output};

const RELEASE: &str = "predictor-operator";
/// The operator image pushed once more under this tag (dev/node/operator-tag.sh) for the upgrade.
const UPGRADE_TAG: &str = "0.1-helm-upgrade";

/// The helm CLI: `$MLOPS_HELM_BIN/helm`, else the cache's; a panic that says how to build it.
pub(crate) fn helm_bin() -> PathBuf {
    let dir =
        PathBuf::from(std::env::var_os("MLOPS_HELM_BIN").unwrap_or_else(|| DEFAULT_BIN_DIR.into()));
    let helm = dir.join("helm");
    assert!(
        helm.is_file(),
        "helm not in {} (MLOPS_HELM_BIN): build it with `./dev/helm/build.sh` and set MLOPS_HELM_BIN \
         to the directory it prints",
        dir.display()
    );
    helm
}

/// `helm args…` against the node (its admin kubeconfig), helm's own files under the node's state;
/// returns stdout, panics with stderr when helm fails.
fn helm(node: &Node, args: &[&str]) -> String {
    let home = node.state.join("helm");
    let child = Command::new(helm_bin())
        .args(args)
        .env("KUBECONFIG", &node.kubeconfig)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run helm");
    let out = wait_output(child, Duration::from_secs(120), "helm");
    checked("helm", &out, args)
}

/// The node's values for the chart, as a user's values file: the registry's image, its pull Secret,
/// the CA bundle ConfigMap dev/node/operator.sh made (the Debian roots + the node CA).
fn values_file(node: &Node) -> String {
    let (repository, tag) = OPERATOR_IMAGE.rsplit_once(':').unwrap();
    let path = node.state.join("helm/values.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        format!(
            "image:\n  repository: {repository}\n  tag: \"{tag}\"\nimagePullSecrets:\n  - name: {PULL_SECRET}\n\
             caBundle:\n  configMap: registry-ca\n  key: ca-bundle.crt\nreplicas: 2\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn chart() -> String {
    repo_root()
        .join("charts/predictor-operator")
        .display()
        .to_string()
}

/// The operator's own objects (config/rbac + the Deployment, which the chart renders too) still there.
fn operator_objects(node: &Node) -> Vec<String> {
    let namespaced = [
        "deployment/predictor-operator",
        "poddisruptionbudget/predictor-operator",
        "serviceaccount/predictor-operator",
        "role/predictor-operator-leader-election",
        "rolebinding/predictor-operator-leader-election",
    ];
    let cluster = [
        "clusterrole/predictor-operator",
        "clusterrolebinding/predictor-operator",
    ];
    let get = |object: &str, ns: &[&str]| {
        let mut args = vec!["get", object, "--ignore-not-found", "-o", "name"];
        args.extend_from_slice(ns);
        node.kubectl_ok(&args).trim().to_string()
    };
    namespaced
        .iter()
        .map(|o| get(o, &["-n", OPERATOR_NS]))
        .chain(cluster.iter().map(|o| get(o, &[])))
        .filter(|found| !found.is_empty())
        .collect()
}

/// Waits until no operator pod is left, terminating ones included; returns how long it took.
fn operator_pods_gone(node: &Node, what: &str) -> f64 {
    let t = Instant::now();
    wait_for(Duration::from_secs(60), what, || {
        let pods = node.json(&["get", "pods", "-n", OPERATOR_NS, "-l", OPERATOR_LABEL]);
        pods["items"].as_array().unwrap().is_empty().then_some(())
    });
    t.elapsed().as_secs_f64()
}

/// A pod of the Helm release (its selector adds the release label to config/'s) running `image`.
fn release_pod_on(pod: &Value, image: &str) -> bool {
    pod["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        && pod["spec"]["containers"][0]["image"] == image
}

/// After [`settle_on`]: Ready counts the new pods, the old ones drain a little longer; a probe
/// started now sees only the new ones.
fn old_pods_gone(node: &Node) {
    wait_for(Duration::from_secs(60), "the old pods gone", || {
        (pods(node).len() == 2).then_some(())
    });
}

fn deployment_generation(node: &Node) -> Value {
    deployment(node)["metadata"]["generation"].clone()
}

/// The Predictor's Deployment generation and pods: what an operator change must leave alone.
struct Untouched {
    generation: Value,
    pods: Vec<String>,
}

impl Untouched {
    fn now(node: &Node) -> Untouched {
        Untouched {
            generation: deployment_generation(node),
            pods: live_pod_names(node),
        }
    }

    fn check(&self, node: &Node, what: &str) {
        assert_eq!(deployment_generation(node), self.generation, "{what}");
        assert_eq!(live_pod_names(node), self.pods, "{what}: pods changed");
    }
}

/// `helm install` with the node's values; waits until its 2 pods run the node's operator image and
/// one of them leads. Returns the leader and the seconds from the command.
fn install(node: &Node, values: &str, what: &str) -> (String, f64) {
    let t = Instant::now();
    let chart = chart();
    helm(
        node,
        &["install", RELEASE, &chart, "-n", OPERATOR_NS, "-f", values],
    );
    let leader = operator_settled(node, what, &|p| release_pod_on(p, OPERATOR_IMAGE));
    (leader, t.elapsed().as_secs_f64())
}

/// Section 14: from `kubectl apply -k` to `helm install`, `helm upgrade`, `helm uninstall` and
/// `helm install` again, the Predictor serving with 0 failed requests throughout.
pub(crate) fn operator_by_helm(setup: &Setup) {
    let (node, base) = (&setup.node, &setup.base);
    let (url_t, sha_t) = setup.model("MODEL_T");
    let (url_b, sha_b) = setup.model("MODEL_B");
    settle_on(node, "0.1", &url_t, sha_t);
    old_pods_gone(node);
    let values = values_file(node);
    let untouched = Untouched::now(node);

    // 14a. The kubectl-applied operator removed as docs/install.md says (its Deployment and its
    //      PodDisruptionBudget, then config/rbac; the namespace, the CRD, the pull Secret and the CA
    //      ConfigMap stay), then `helm install` with the node's values.
    let watch = Watch::start(node, "helm-install", base, &["--max-duration", "40s"]);
    let t_swap = Instant::now();
    node.kubectl_ok(&[
        "delete",
        "deployment,poddisruptionbudget",
        "predictor-operator",
        "-n",
        OPERATOR_NS,
    ]);
    let rbac = repo_root().join("config/rbac").display().to_string();
    node.kubectl_ok(&["delete", "-k", &rbac]);
    let gone_s = operator_pods_gone(node, "the kubectl-applied operator's pods gone");
    assert_eq!(operator_objects(node), Vec::<String>::new());
    node.kubectl_ok(&["get", "crd", "predictors.mlops.dev"]);
    let (leader, install_s) = install(node, &values, "the helm-installed operator leading");
    eprintln!(
        "[node test] kubectl-applied operator removed (pods gone in {gone_s:.1} s); helm install -> 2 pods, \
         {leader} leading in {install_s:.1} s ({:.1} s without an operator in all)",
        t_swap.elapsed().as_secs_f64()
    );
    let operator = node.json(&["get", "deployment", "predictor-operator", "-n", OPERATOR_NS]);
    assert_eq!(
        operator["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    assert_eq!(
        operator["metadata"]["annotations"]["meta.helm.sh/release-name"],
        RELEASE
    );
    // Helm 4 applies the chart's crds/ server-side on install: it shares the kubectl-applied CRD
    // (the same content) instead of skipping it.
    let crd = node.json(&[
        "get",
        "crd",
        "predictors.mlops.dev",
        "--show-managed-fields",
    ]);
    let managers: Vec<&str> = crd["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    eprintln!("[node test] the CRD's field managers after helm install: {managers:?}");
    let pod = &operator_pods(node)[0];
    assert_eq!(
        pod_env(pod, "SSL_CERT_FILE"),
        Some("/etc/mlops/ca-bundle/ca-bundle.crt")
    );
    assert_eq!(pod["spec"]["imagePullSecrets"][0]["name"], PULL_SECRET);
    assert_watch_clean("kubectl-applied operator -> helm install", watch, &["0.1"]);
    untouched.check(
        node,
        "the new operator took the Predictor over without a change",
    );

    // The helm-installed operator reconciles: an image change rolls out (the registry pre-flight
    // through the chart's CA bundle).
    let t_change = Instant::now();
    settle_on(node, "0.2", &url_t, sha_t);
    let ready_s = t_change.elapsed().as_secs_f64();
    old_pods_gone(node);
    eprintln!(
        "[node test] Predictor 0.1 -> 0.2 Ready under the helm-installed operator in {ready_s:.1} s, \
         the old pods gone after {:.1} s",
        t_change.elapsed().as_secs_f64()
    );

    // 14b. `helm upgrade` to a new operator image tag under the probe: the operator pods roll one
    //      at a time, the Lease passes to a new pod, the Predictor is not touched.
    let digest = node.script("operator-tag.sh", &[UPGRADE_TAG], Duration::from_secs(180));
    let digests = std::fs::read_to_string(node.state.join("images/digests.env")).unwrap();
    assert!(
        digests.contains(&format!("PREDICTOR_OPERATOR_0_1={}", digest.trim())),
        "{UPGRADE_TAG} is 0.1's bytes: {digest} not in {digests}"
    );
    let upgraded_image = format!(
        "{}:{UPGRADE_TAG}",
        OPERATOR_IMAGE.rsplit_once(':').unwrap().0
    );
    let untouched = Untouched::now(node);
    let old_pods: Vec<String> = operator_pods(node)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let watch = Watch::start(node, "helm-upgrade", base, &["--max-duration", "45s"]);
    let t_upgrade = Instant::now();
    helm(
        node,
        &[
            "upgrade",
            RELEASE,
            &chart(),
            "-n",
            OPERATOR_NS,
            "--reuse-values",
            "--set",
            &format!("image.tag={UPGRADE_TAG}"),
        ],
    );
    let leader = operator_settled(node, "the upgraded operator leading", &|p| {
        release_pod_on(p, &upgraded_image)
    });
    let upgrade_s = t_upgrade.elapsed().as_secs_f64();
    assert!(!old_pods.contains(&leader), "{leader} is an old pod");
    eprintln!(
        "[node test] helm upgrade --set image.tag={UPGRADE_TAG} ({}): 2 new pods, {leader} leading \
         in {upgrade_s:.1} s",
        digest.trim()
    );
    assert_watch_clean("helm upgrade of the operator", watch, &["0.2"]);
    untouched.check(node, "helm upgrade left the Predictor alone");
    let revision = helm(node, &["status", RELEASE, "-n", OPERATOR_NS, "-o", "json"]);
    let revision: Value = serde_json::from_str(&revision).unwrap();
    assert_eq!(revision["version"], 2, "{revision}");

    // 14c. `helm uninstall`: the operator and its RBAC go; the CRD, the Predictor and its pods stay
    //      and keep answering, a change to it waits unreconciled; `helm install` again picks it up
    //      and rolls it out. One probe over all of it, until model B answers alone.
    let watch = Watch::start(
        node,
        "helm-uninstall",
        base,
        &[
            "--until-model",
            sha_b,
            "--settle",
            "3s",
            "--max-duration",
            "120s",
        ],
    );
    let t_uninstall = Instant::now();
    helm(node, &["uninstall", RELEASE, "-n", OPERATOR_NS]);
    let gone_s = operator_pods_gone(node, "the operator's pods gone after helm uninstall");
    assert_eq!(operator_objects(node), Vec::<String>::new());
    node.kubectl_ok(&["get", "crd", "predictors.mlops.dev"]);
    eprintln!(
        "[node test] helm uninstall: operator pods gone in {gone_s:.1} s ({:.1} s after the command), \
         its Deployment, ServiceAccount and RBAC deleted; the CRD and the Predictor stay",
        t_uninstall.elapsed().as_secs_f64()
    );
    let before = node.predictor();
    node.apply(&predictor_yaml("0.2", &url_b, sha_b));
    std::thread::sleep(Duration::from_secs(5));
    let unreconciled = node.predictor();
    assert_ne!(
        unreconciled["metadata"]["generation"], before["metadata"]["generation"],
        "the change was applied"
    );
    assert_eq!(
        unreconciled["status"]["observedGeneration"], before["status"]["observedGeneration"],
        "nothing reconciles without an operator"
    );
    assert_eq!(unreconciled["status"]["modelSha256"], sha_t);
    untouched.check(node, "no operator, no rollout");
    let t_reinstall = Instant::now();
    let (leader, leading_s) = install(node, &values, "the reinstalled operator leading");
    wait_serving(node, sha_b, "the change made while uninstalled rolled out");
    let rolled_s = t_reinstall.elapsed().as_secs_f64();
    eprintln!(
        "[node test] helm install again: {leader} leading in {leading_s:.1} s; the change made while \
         uninstalled Ready (model B on 2/2) {rolled_s:.1} s after the install"
    );
    // Release 0.2 throughout: model T's pods, then (after the reinstall) model B's, in that order.
    let report = assert_watch_clean(
        "helm uninstall, a change unreconciled, helm install again",
        watch,
        &["0.2", "0.2"],
    );
    let models: Vec<&str> = spans(&report).into_iter().map(|(_, model)| model).collect();
    assert_eq!(models, [&sha_t[..12], &sha_b[..12]], "{report}");
    assert_ne!(
        deployment_generation(node),
        untouched.generation,
        "the Predictor rolled out"
    );
}
