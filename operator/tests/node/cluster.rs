//! The node and what every scenario reads from it: `dev/node` scripts, kubectl, the Predictor's
//! conditions, pods and processes, and the waits.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use operator::crd::Predictor;
use serde_json::Value;

use crate::support::argocd::{self};
use crate::support::manifests::{manifest, predictor};
use crate::support::wait::poll;
use crate::support::{ServedModel, check_output, repo_root, run_kubectl, wait_output};

pub(crate) const NS: &str = "mlops-node-test";
pub(crate) const NAME: &str = "american";
/// The node's private registry (dev/node/lib.sh): images are pushed there and pulled by kubelet.
pub(crate) const IMAGE: &str = "10.77.0.1:5443/mlops/american-predictor";
pub(crate) const OPERATOR_IMAGE: &str = "10.77.0.1:5443/mlops/predictor-operator:0.1";
/// The registry's dockerconfigjson Secret, made in each namespace that pulls (dev/node/lib.sh).
pub(crate) const PULL_SECRET: &str = "registry-pull";
pub(crate) const OPERATOR_NS: &str = "predictor-system";
pub(crate) const OPERATOR_LABEL: &str = "app.kubernetes.io/name=predictor-operator";
/// The netns on the pod network whose resolv.conf names the cluster DNS (dev/node/up.sh).
pub(crate) const CLIENT_NETNS: &str = "mlops-node-client";
/// `predictor probe` interval: 100 requests/s, twice the rate the issue asks for.
pub(crate) const INTERVAL: &str = "10ms";

/// The node, from `dev/node/up.sh` to `dev/node/down.sh` (on drop, also after a failed assertion).
pub(crate) struct Node {
    pub(crate) state: PathBuf,
    pub(crate) bin: PathBuf,
    pub(crate) kubeconfig: PathBuf,
    _lock: File,
}

impl Node {
    pub(crate) fn up() -> Node {
        let lock = File::create("/tmp/mlops-node.lock").expect("create the node lock file");
        eprintln!("[node test] waiting for /tmp/mlops-node.lock");
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        let state = PathBuf::from(
            std::env::var("MLOPS_NODE_DIR").unwrap_or_else(|_| "/run/mlops-node".into()),
        );
        let node = Node {
            bin: crate::support::bin_dir(),
            kubeconfig: state.join("admin.kubeconfig"),
            state,
            _lock: lock,
        };
        // A node a finished `./dev/demo` left running: with the lock held no one is using it (what
        // dev/node/lib.sh's claim_node does for the scripts). down.sh is idempotent.
        node.script("down.sh", &[], Duration::from_secs(300));
        let t0 = Instant::now();
        node.script("up.sh", &[], Duration::from_secs(900));
        eprintln!("[node test] node up in {:.1} s", t0.elapsed().as_secs_f64());
        node
    }

    /// Runs a dev/node script (stderr passes through for progress); returns stdout.
    pub(crate) fn script(&self, name: &str, args: &[&str], timeout: Duration) -> String {
        let child = Command::new(repo_root().join("dev/node").join(name))
            .args(args)
            .env("MLOPS_K8S_BIN", &self.bin)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run dev/node/{name}: {e}"));
        let out = wait_output(child, timeout, name);
        assert!(out.status.success(), "dev/node/{name} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn kubectl(&self, args: &[&str]) -> Output {
        run_kubectl(&self.bin, &self.kubeconfig, args, None)
    }

    pub(crate) fn kubectl_ok(&self, args: &[&str]) -> String {
        check_output(&self.kubectl(args), args)
    }

    pub(crate) fn apply(&self, yaml: &str) {
        let args = ["apply", "-f", "-"];
        check_output(
            &run_kubectl(&self.bin, &self.kubeconfig, &args, Some(yaml)),
            &args,
        );
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&args)).expect("kubectl -o json")
    }

    pub(crate) fn predictor(&self) -> Value {
        self.json(&["get", "predictor", NAME, "-n", NS])
    }

    /// `name=value` pairs of `$N/images/models.env` (model files and their sha256).
    pub(crate) fn models(&self) -> HashMap<String, String> {
        std::fs::read_to_string(self.state.join("images/models.env"))
            .expect("models.env from dev/node/images.sh")
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(crate) fn model_file(&self, name: &str) -> PathBuf {
        self.state.join("build/store/models").join(name)
    }
}

impl Node {
    /// What a failure looked like: the objects, the Predictor, Events, the Lease, the operator's
    /// and kubelet's and the registry's logs (printed before the next scenario or down.sh).
    pub(crate) fn diagnose(&self) {
        // What the failure looked like, before down.sh removes the state.
        for args in [
            &[
                "get",
                "predictors,deploy,rs,pods,svc,endpointslices",
                "-A",
                "-o",
                "wide",
            ][..],
            &["get", "predictor", NAME, "-n", NS, "-o", "yaml"],
            &["get", "events", "-n", NS, "--sort-by", ".lastTimestamp"],
            &[
                "get",
                "events",
                "-n",
                OPERATOR_NS,
                "--sort-by",
                ".lastTimestamp",
            ],
            &["get", "lease", "-n", OPERATOR_NS, "-o", "wide"],
            &[
                "logs",
                "-n",
                OPERATOR_NS,
                "-l",
                OPERATOR_LABEL,
                "--prefix",
                "--tail",
                "25",
            ],
        ] {
            let out = self.kubectl(args);
            eprintln!(
                "--- kubectl {}\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for log in ["kubelet.log", "docker-registry.log"] {
            let text =
                std::fs::read_to_string(self.state.join("log").join(log)).unwrap_or_default();
            let lines: Vec<_> = text.lines().collect();
            eprintln!(
                "--- {log} (tail)\n{}",
                lines[lines.len().saturating_sub(25)..].join("\n")
            );
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let down = repo_root().join("dev/node/down.sh");
        let _ = Command::new(down).env("MLOPS_K8S_BIN", &self.bin).status();
    }
}

/// Fails at once, saying what to install, when the node tier cannot run here.
pub(crate) fn require_node_prerequisites() {
    let how = "run as root after `./dev/node/install.sh`, with PREDICTOR_BIN and OPERATOR_BIN set to \
               static release builds (./dev/test does all of this)";
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the node tier needs root: {how}"
    );
    for var in ["PREDICTOR_BIN", "OPERATOR_BIN"] {
        let path = std::env::var_os(var).unwrap_or_else(|| panic!("{var} is not set: {how}"));
        assert!(
            std::path::Path::new(&path).is_file(),
            "{var}={} is not a file: {how}",
            path.to_string_lossy()
        );
    }
    let on_path = |program: &str| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .any(|dir| dir.join(program).is_file())
    };
    for program in [
        "containerd",
        "runc",
        "buildah",
        "iptables",
        "docker-registry",
        "htpasswd",
    ] {
        assert!(on_path(program), "{program} is not on PATH: {how}");
    }
    // ArgoCD, for the autoscaled Predictor it syncs (section 11): fail now, not after minutes.
    argocd::bin_dir(&["argocd-repo-server", "argocd-application-controller"]);
    // Helm, for the operator installed from charts/ (section 14).
    crate::helm::helm_bin();
    let bin = crate::support::bin_dir();
    for program in ["kubelet", "kube-proxy", "coredns", "metrics-server"] {
        assert!(
            bin.join(program).is_file(),
            "{program} not in {}: `./dev/cluster/build-binaries.sh {program}` (MLOPS_K8S_BIN)",
            bin.display()
        );
    }
}

/// Polls `probe` until it returns Some, or panics after `limit` with `what`.
pub(crate) fn wait_for<T>(limit: Duration, what: &str, probe: impl FnMut() -> Option<T>) -> T {
    poll(limit, what, probe).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn condition<'a>(predictor: &'a Value, type_: &str) -> Option<&'a Value> {
    predictor["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

pub(crate) fn condition_is(predictor: &Value, type_: &str, status: &str) -> bool {
    condition(predictor, type_).is_some_and(|c| {
        c["status"] == status && c["observedGeneration"] == predictor["metadata"]["generation"]
    })
}

/// The operator pods (not terminating), as the API has them.
pub(crate) fn operator_pods(node: &Node) -> Vec<Value> {
    node.json(&["get", "pods", "-n", OPERATOR_NS, "-l", OPERATOR_LABEL])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

/// The leader election Lease's holder (a pod name), if any.
pub(crate) fn lease_holder(node: &Node) -> Option<String> {
    let out = node.kubectl(&[
        "get",
        "lease",
        "predictor-operator",
        "-n",
        OPERATOR_NS,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    let holder = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !holder.is_empty()).then_some(holder)
}

/// Waits until the operator Deployment has rolled out and the Lease is held by one of its current
/// (not terminating) pods that satisfies `wanted`; returns the holder.
pub(crate) fn operator_settled(node: &Node, what: &str, wanted: &dyn Fn(&Value) -> bool) -> String {
    wait_for(Duration::from_secs(120), what, || {
        let pods = operator_pods(node);
        let running = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Running" && wanted(p))
            .count();
        let holder = lease_holder(node)?;
        (pods.len() == 2
            && running == 2
            && pods
                .iter()
                .any(|p| p["metadata"]["name"] == holder.as_str()))
        .then_some(holder)
    })
}

/// The value of env `name` in the operator container of `pod`.
pub(crate) fn pod_env<'a>(pod: &'a Value, name: &str) -> Option<&'a str> {
    pod["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

/// Messages of the kubelet's image events (`Pulling`/`Pulled`) in `ns` naming `image` (a tag; the
/// operator may have pinned it to `image@sha256:…`).
pub(crate) fn image_events(node: &Node, ns: &str, reason: &str, image: &str) -> Vec<String> {
    node.json(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        &format!("reason={reason}"),
    ])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| {
            m.contains(&format!("image \"{image}\""))
                || m.contains(&format!("image \"{image}@sha256:"))
        })
        .map(str::to_string)
        .collect()
}

/// Asserts kubelet pulled `image` from the registry in `ns` (a `Pulling` event, and a `Pulled`
/// event that says it downloaded: not "already present"); prints the pull times kubelet reports.
pub(crate) fn assert_pulled(node: &Node, ns: &str, image: &str) {
    let pulling = image_events(node, ns, "Pulling", image);
    assert!(!pulling.is_empty(), "no Pulling event for {image} in {ns}");
    let pulled: Vec<String> = image_events(node, ns, "Pulled", image)
        .into_iter()
        .filter(|m| m.starts_with("Successfully pulled image"))
        .collect();
    assert!(
        !pulled.is_empty(),
        "no 'Successfully pulled' event for {image} in {ns}: kubelet did not download it"
    );
    for m in &pulled {
        // `Successfully pulled image "…" in 720ms (720ms including waiting). Image size: … bytes.`
        let took = m
            .split("\" in ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .unwrap_or("?");
        eprintln!("[node test] kubelet pulled {image} from the registry in {took}: {m}");
    }
}

/// `image` is the wanted tag, possibly pinned by the operator to the digest it resolved.
pub(crate) fn image_is(image: &Value, tag_ref: &str) -> bool {
    image.as_str().is_some_and(|i| {
        i == tag_ref
            || i.strip_prefix(tag_ref)
                .is_some_and(|rest| rest.starts_with("@sha256:"))
    })
}

/// The static predictor binary (`PREDICTOR_BIN`) started with `args`, output piped.
pub(crate) fn spawn_predictor(args: &[&str]) -> std::process::Child {
    let bin = std::env::var("PREDICTOR_BIN").expect("PREDICTOR_BIN: the static predictor binary");
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run predictor")
}

pub(crate) fn predictor_cli(args: &[&str]) -> Output {
    wait_output(spawn_predictor(args), Duration::from_secs(600), "predictor")
}

pub(crate) fn predictor_yaml(image_tag: &str, url: &str, sha256: &str) -> String {
    manifest(&[predictor_object(image_tag, url, sha256)])
}

pub(crate) fn predictor_object(image_tag: &str, url: &str, sha256: &str) -> Predictor {
    let model = ServedModel {
        url: url.into(),
        sha: sha256.into(),
    };
    let mut p = predictor(NAME, &format!("{IMAGE}:{image_tag}"), &model, 2);
    p.metadata.namespace = Some(NS.into());
    p.spec.image_pull_secrets = vec![PULL_SECRET.into()];
    p.spec.progress_deadline_seconds = Some(20);
    p
}

/// The release the pods of image tag `tag` report (their VERSION): the tag without a pinned digest
/// (`0.3@sha256:…`, as the image scenario leaves the spec, is release `0.3`).
pub(crate) fn release_of(tag: &str) -> &str {
    tag.split_once('@').map_or(tag, |(release, _)| release)
}

/// The Predictor applied on image `tag` with the model at `url`, once READY 2/2 on both: where a
/// scenario that changes one thing starts. No change when it is there already.
pub(crate) fn settle_on(node: &Node, tag: &str, url: &str, sha256: &str) -> Value {
    node.apply(&predictor_yaml(tag, url, sha256));
    wait_for(
        Duration::from_secs(120),
        &format!("{tag} Ready on {url}"),
        || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True")
                && p["status"]["modelSha256"] == sha256
                && p["status"]["version"] == release_of(tag)
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2)
                .then_some(p)
        },
    )
}

/// A team's namespace as the platform makes it: Pod Security "restricted" enforced, and the
/// registry's pull Secret (copied from the test namespace).
pub(crate) fn team_namespace(node: &Node, ns: &str) {
    node.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    \
         pod-security.kubernetes.io/enforce: restricted\n"
    ));
    let mut secret = node.json(&["get", "secret", PULL_SECRET, "-n", NS]);
    secret["metadata"] = serde_json::json!({"name": PULL_SECRET, "namespace": ns});
    node.apply(&secret.to_string());
}

/// Team A's namespace (`argocd/`'s destination) made, and emptied of what an earlier scenario left:
/// no Application in ArgoCD's namespace (none the tests make has a deletion finalizer, so none waits
/// for ArgoCD to run) and no Predictor.
pub(crate) fn team_a_emptied(node: &Node) {
    team_namespace(node, argocd::TEAM_NS);
    node.kubectl_ok(&[
        "delete",
        "applications",
        "--all",
        "-n",
        argocd::ARGOCD_NS,
        "--timeout=60s",
    ]);
    node.kubectl_ok(&[
        "delete",
        "predictors",
        "--all",
        "-n",
        argocd::TEAM_NS,
        "--timeout=60s",
    ]);
    // Their pods go after them (garbage collection, then each pod's drain): a scenario that counts the
    // team's pods next must not count these.
    wait_for(Duration::from_secs(120), "team-a's pods gone", || {
        pods_in(node, argocd::TEAM_NS).is_empty().then_some(())
    });
}

/// The base URL of the Predictor's Service in `ns` by its ClusterIP (the test process runs on the node, where
/// kube-proxy's rules answer it), once it answers. A Predictor is Ready when its pods are; kube-proxy programs
/// a new Service's endpoints a moment later (a probe started at once had its first two connections refused),
/// so a scenario's clients start only when five fresh connections in a row are answered.
pub(crate) fn service_base(node: &Node, ns: &str) -> String {
    let ip = node.kubectl_ok(&[
        "get",
        "service",
        NAME,
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let base = format!("http://{ip}:5008");
    let readyz = format!("{base}/readyz");
    let t = Instant::now();
    let mut in_a_row = 0;
    wait_for(
        Duration::from_secs(30),
        &format!("the Service in {ns} answering at {base}"),
        || {
            let answered = Command::new("curl")
                .args([
                    "-sS",
                    "--fail",
                    "--max-time",
                    "2",
                    "-o",
                    "/dev/null",
                    &readyz,
                ])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            in_a_row = if answered { in_a_row + 1 } else { 0 };
            (in_a_row >= 5).then_some(())
        },
    );
    if t.elapsed() > Duration::from_secs(2) {
        eprintln!(
            "[node test] the Service in {ns} answered {:.1} s after it was asked",
            t.elapsed().as_secs_f64()
        );
    }
    base
}

/// The Predictor's Deployment as the API has it.
pub(crate) fn deployment(node: &Node) -> Value {
    node.json(&["get", "deployment", NAME, "-n", NS])
}

pub(crate) fn deployment_image(node: &Node) -> String {
    deployment(node)["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Names of the Predictor's pods that are not being deleted, sorted.
pub(crate) fn live_pod_names(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = pods(node)
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Waits until the Predictor's current generation is Degraded with `reason`; returns the Predictor
/// and how long it took.
pub(crate) fn wait_degraded(node: &Node, reason: &str, within: Duration) -> (Value, Duration) {
    let t = Instant::now();
    let p = wait_for(within, &format!("Degraded {reason}"), || {
        let p = node.predictor();
        (condition(&p, "Degraded").is_some_and(|c| c["reason"] == reason && c["status"] == "True")
            && p["status"]["observedGeneration"] == p["metadata"]["generation"])
            .then_some(p)
    });
    (p, t.elapsed())
}

/// Waits (30 s at most) until the Predictor's current generation says condition `type_` is
/// `status`.
pub(crate) fn wait_current(node: &Node, what: &str, type_: &str, status: &str) {
    wait_for(Duration::from_secs(30), what, || {
        let p = node.predictor();
        (condition_is(&p, type_, status)
            && p["status"]["observedGeneration"] == p["metadata"]["generation"])
            .then_some(())
    });
}

/// The Predictor once its current generation is Ready on `sha256` with 2/2 replicas.
pub(crate) fn wait_serving(node: &Node, sha256: &str, what: &str) -> Value {
    wait_for(Duration::from_secs(90), what, || {
        let p = node.predictor();
        (condition_is(&p, "Ready", "True")
            && p["status"]["observedGeneration"] == p["metadata"]["generation"]
            && p["status"]["modelSha256"] == sha256
            && p["status"]["ready"] == "2/2"
            && p["status"]["replicas"] == 2)
            .then_some(p)
    })
}

/// Standard base64, as Secrets' `data` wants it.
pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Pods of the Predictor, as the API has them.
pub(crate) fn pods(node: &Node) -> Vec<Value> {
    pods_in(node, NS)
}

/// The pods of the Predictor `american` in `ns`.
pub(crate) fn pods_in(node: &Node, ns: &str) -> Vec<Value> {
    node.json(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        &format!("app.kubernetes.io/instance={NAME}"),
    ])["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Host pids of processes whose command line is `/predictor serve`.
pub(crate) fn predictor_pids() -> Vec<u32> {
    pids_running(b"/predictor\0serve")
}

/// Host pids of processes whose command line (NUL-separated) starts with `prefix`.
pub(crate) fn pids_running(prefix: &[u8]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(prefix))
        })
        .collect()
}
