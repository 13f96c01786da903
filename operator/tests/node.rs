//! Node tier: the product installed the way users install it, on a real single node that is a
//! cluster like a user's (kubelet + containerd + runc + CNI bridge + kube-proxy, a private registry
//! with TLS and htpasswd, CoreDNS cluster DNS; `dev/node/up.sh` starts it, `dev/node/down.sh` stops
//! it). Issues 5 and 13:
//!  1. The operator from `kubectl apply -k` (config/default + dev/node/operator-overlay): 2 pods in
//!     predictor-system, in-cluster config, one holds the Lease. Images are pulled from the registry
//!     by kubelet (the Pulling/Pulled events, pull times printed).
//!  2. READY 2/2 with real containers; from a netns on the pod network, `curl` of `status.url` by
//!     its DNS name returns the contract JSON and `predictor eval --url` by DNS name reproduces the
//!     offline accuracy on ../shared/data/tweets/test.csv.
//!  3. Rollouts under `predictor probe` at >= 50 requests/s: image tag 0.1 -> 0.2 (a pull in the
//!     path), then a model-only change; 0 failed requests, every replica new, times reported.
//!  4. Pod faults under load; the leader operator pod deleted while a Predictor change is applied:
//!     the change rolls out and another pod takes the Lease.
//!  5. A model with a wrong digest (pre-flight check off through the operator Deployment's env):
//!     old pods keep serving, 0 failed requests, the Predictor turns Degraded with the reason.
//!  6. Pods run non-root, read-only root, no capabilities, in a namespace enforcing Pod Security
//!     "restricted" (read back from the API and from the kernel's view of the container processes);
//!     `POST /drain` from inside a pod's netns, from 127.0.0.6 and 127.0.0.1, is 404 (issue 26).
//!  7. Image sizes (predictor < 10 MB).
//!  8. Image faults (issue 13): a missing tag, a re-pushed tag, a wrong pull Secret, the registry down.
//!  9. The offline quality gate (issue 15): a model trained on shuffled labels refused at pre-flight.
//! 10. The online gate (issue 15): `strategy: Canary` with shadow copies rolls that model back,
//!     promotes a better one, and waits, saying so, while there is no traffic.
//! 11. Autoscaling (issue 17): a Predictor with `spec.autoscaling`, synced by real ArgoCD from Git,
//!     scales up under a load ramp and back down after it on metrics-server's CPU figures, with 0
//!     failed requests, READY following the scale and the Application Synced + Healthy throughout.
//! 12. Model stores (issue 18): `predictor publish` puts one model in S3 (SeaweedFS on the node IP)
//!     and one as an OCI artifact in the registry; model-only rollouts http -> s3:// -> oci:// with
//!     the credentials of one Secret, under load, 0 failed requests, no credential shown.
//! 13. Hostile tenants (issue 26): one team's Predictors name a model URL serving 1 GiB without a
//!     length, one that never ends, and a canary answering a 64 MiB `/metrics`, all at once, while
//!     another team's Predictor rolls out under the probe: the operator pods never restart and stay
//!     under their memory limit, the hostile Predictors are refused, the rollout fails no request.
//!
//! Root only, one node at a time on a machine (`flock /tmp/mlops-node.lock`). Ignored by a plain
//! `cargo test`; `./dev/test` runs it as root with `PREDICTOR_BIN`/`OPERATOR_BIN` (static release
//! builds that go into the images). When selected without them it fails at once and says what to
//! install.

mod support;

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use operator::crd::{
    AnalysisSpec, DataSpec, Predictor, RolloutSpec, RolloutStrategy, S3Spec, ValidationSpec,
};
use serde_json::Value;
use support::argocd::{self, APP, ArgoCd, Components, TEAM_NS};
use support::git::GitRepo;
use support::manifests::{manifest, predictor};
use support::wait::poll;
use support::{ServedModel, check_output, repo_root, run_kubectl, wait_output};

const NS: &str = "mlops-node-test";
const NAME: &str = "american";
/// The node's private registry (dev/node/lib.sh): images are pushed there and pulled by kubelet.
const IMAGE: &str = "10.77.0.1:5443/mlops/american-predictor";
const OPERATOR_IMAGE: &str = "10.77.0.1:5443/mlops/predictor-operator:0.1";
/// The registry's dockerconfigjson Secret, made in each namespace that pulls (dev/node/lib.sh).
const PULL_SECRET: &str = "registry-pull";
const OPERATOR_NS: &str = "predictor-system";
const OPERATOR_LABEL: &str = "app.kubernetes.io/name=predictor-operator";
/// The netns on the pod network whose resolv.conf names the cluster DNS (dev/node/up.sh).
const CLIENT_NETNS: &str = "mlops-node-client";
/// `predictor probe` interval: 100 requests/s, twice the rate the issue asks for.
const INTERVAL: &str = "10ms";
/// The autoscaled Predictor's bounds, and the load ramp that scales it (issue 17).
const MIN_REPLICAS: i32 = 1;
const MAX_REPLICAS: i32 = 4;
const RAMP_TO: &str = "1500";
const LOAD_SECONDS: &str = "45s";

/// The node, from `dev/node/up.sh` to `dev/node/down.sh` (on drop, also after a failed assertion).
struct Node {
    state: PathBuf,
    bin: PathBuf,
    kubeconfig: PathBuf,
    _lock: File,
}

impl Node {
    fn up() -> Node {
        let lock = File::create("/tmp/mlops-node.lock").expect("create the node lock file");
        eprintln!("[node test] waiting for /tmp/mlops-node.lock");
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        let state = PathBuf::from(
            std::env::var("MLOPS_NODE_DIR").unwrap_or_else(|_| "/run/mlops-node".into()),
        );
        let node = Node {
            bin: support::bin_dir(),
            kubeconfig: state.join("admin.kubeconfig"),
            state,
            _lock: lock,
        };
        let t0 = Instant::now();
        node.script("up.sh", &[], Duration::from_secs(900));
        eprintln!("[node test] node up in {:.1} s", t0.elapsed().as_secs_f64());
        node
    }

    /// Runs a dev/node script (stderr passes through for progress); returns stdout.
    fn script(&self, name: &str, args: &[&str], timeout: Duration) -> String {
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

    fn kubectl(&self, args: &[&str]) -> Output {
        run_kubectl(&self.bin, &self.kubeconfig, args, None)
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        check_output(&self.kubectl(args), args)
    }

    fn apply(&self, yaml: &str) {
        let args = ["apply", "-f", "-"];
        check_output(
            &run_kubectl(&self.bin, &self.kubeconfig, &args, Some(yaml)),
            &args,
        );
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&args)).expect("kubectl -o json")
    }

    fn predictor(&self) -> Value {
        self.json(&["get", "predictor", NAME, "-n", NS])
    }

    /// `name=value` pairs of `$N/images/models.env` (model files and their sha256).
    fn models(&self) -> HashMap<String, String> {
        std::fs::read_to_string(self.state.join("images/models.env"))
            .expect("models.env from dev/node/images.sh")
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn model_file(&self, name: &str) -> PathBuf {
        self.state.join("build/store/models").join(name)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
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
        let down = repo_root().join("dev/node/down.sh");
        let _ = Command::new(down).env("MLOPS_K8S_BIN", &self.bin).status();
    }
}

/// Fails at once, saying what to install, when the node tier cannot run here.
fn require_node_prerequisites() {
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
    let bin = support::bin_dir();
    for program in ["kubelet", "kube-proxy", "coredns", "metrics-server"] {
        assert!(
            bin.join(program).is_file(),
            "{program} not in {}: `./dev/cluster/build-binaries.sh {program}` (MLOPS_K8S_BIN)",
            bin.display()
        );
    }
}

/// Polls `probe` until it returns Some, or panics after `limit` with `what`.
fn wait_for<T>(limit: Duration, what: &str, probe: impl FnMut() -> Option<T>) -> T {
    poll(limit, what, probe).unwrap_or_else(|e| panic!("{e}"))
}

fn condition<'a>(predictor: &'a Value, type_: &str) -> Option<&'a Value> {
    predictor["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn condition_is(predictor: &Value, type_: &str, status: &str) -> bool {
    condition(predictor, type_).is_some_and(|c| {
        c["status"] == status && c["observedGeneration"] == predictor["metadata"]["generation"]
    })
}

/// The operator pods (not terminating), as the API has them.
fn operator_pods(node: &Node) -> Vec<Value> {
    node.json(&["get", "pods", "-n", OPERATOR_NS, "-l", OPERATOR_LABEL])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

/// The leader election Lease's holder (a pod name), if any.
fn lease_holder(node: &Node) -> Option<String> {
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
fn operator_settled(node: &Node, what: &str, wanted: &dyn Fn(&Value) -> bool) -> String {
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
fn pod_env<'a>(pod: &'a Value, name: &str) -> Option<&'a str> {
    pod["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

/// Messages of the kubelet's image events (`Pulling`/`Pulled`) in `ns` naming `image` (a tag; the
/// operator may have pinned it to `image@sha256:…`).
fn image_events(node: &Node, ns: &str, reason: &str, image: &str) -> Vec<String> {
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
fn assert_pulled(node: &Node, ns: &str, image: &str) {
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
fn image_is(image: &Value, tag_ref: &str) -> bool {
    image.as_str().is_some_and(|i| {
        i == tag_ref
            || i.strip_prefix(tag_ref)
                .is_some_and(|rest| rest.starts_with("@sha256:"))
    })
}

/// `program args…` run inside the client netns on the pod network (`ip netns exec`: its resolv.conf
/// names the cluster DNS).
fn in_pod_network(program: &str, args: &[&str]) -> Output {
    let child = Command::new("ip")
        .args(["netns", "exec", CLIENT_NETNS, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ip netns exec");
    wait_output(child, Duration::from_secs(600), program)
}

/// The static predictor binary (`PREDICTOR_BIN`) started with `args`, output piped.
fn spawn_predictor(args: &[&str]) -> std::process::Child {
    let bin = std::env::var("PREDICTOR_BIN").expect("PREDICTOR_BIN: the static predictor binary");
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run predictor")
}

fn predictor_cli(args: &[&str]) -> Output {
    wait_output(spawn_predictor(args), Duration::from_secs(600), "predictor")
}

fn predictor_yaml(image_tag: &str, url: &str, sha256: &str) -> String {
    manifest(&[predictor_object(image_tag, url, sha256)])
}

fn predictor_object(image_tag: &str, url: &str, sha256: &str) -> Predictor {
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

/// `predictor probe` running against the Service, writing its JSON (report + samples) to `json`.
struct Watch {
    child: std::process::Child,
    json: PathBuf,
    started: SystemTime,
}

impl Watch {
    /// Starts `predictor probe --url base --interval INTERVAL --texts test.csv --json
    /// <reports>/watch-<name>.json` + `extra`.
    fn start(node: &Node, name: &str, base: &str, extra: &[&str]) -> Watch {
        Self::start_every(node, name, base, INTERVAL, extra)
    }

    /// [`Watch::start`] with a request every `interval`.
    fn start_every(node: &Node, name: &str, base: &str, interval: &str, extra: &[&str]) -> Watch {
        let dir = node.state.join("reports");
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join(format!("watch-{name}.json"));
        let started = SystemTime::now();
        let json_arg = json.display().to_string();
        // Real tweets in turn, not one text: a canary analysis compares predictions on them.
        let texts = repo_root()
            .join("../shared/data/tweets/test.csv")
            .display()
            .to_string();
        let mut args = vec![
            "probe",
            "--url",
            base,
            "--interval",
            interval,
            "--texts",
            &texts,
            "--json",
            &json_arg,
        ];
        args.extend_from_slice(extra);
        let child = spawn_predictor(&args);
        // Let a second of answers flow before anything changes.
        std::thread::sleep(Duration::from_secs(1));
        Watch {
            child,
            json,
            started,
        }
    }

    /// Waits for the watch to end; returns (its output, the JSON it wrote).
    fn finish(self) -> (Output, Value) {
        let out = wait_output(self.child, Duration::from_secs(150), "predictor probe");
        let json = std::fs::read(&self.json).unwrap_or_else(|e| {
            panic!(
                "no watch report ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out, serde_json::from_slice(&json).unwrap())
    }
}

/// A rollout measured from the client side while `change` is applied.
struct Rollout {
    report: Value,
    /// CR change -> the last answer from anything but the wanted release (client view).
    switch_s: f64,
    /// CR change -> the Predictor reports Ready with every replica on the new release.
    ready_s: f64,
}

/// Starts `predictor probe` on `base`, applies `yaml` once answers flow, waits for the Predictor to
/// be Ready on `until` and for the watch to settle; returns what was measured.
fn measure_rollout(
    node: &Node,
    base: &str,
    yaml: &str,
    until: &[&str],
    done: &dyn Fn(&Value) -> bool,
) -> Rollout {
    let tag = until.join("-").replace(['-', '/'], "_");
    let dir = node.state.join("reports");
    let md = dir.join(format!("watch-{tag}.md")).display().to_string();
    let mut extra = vec!["--settle", "3s", "--max-duration", "120s", "--report", &md];
    extra.extend_from_slice(until);
    let watch = Watch::start(node, &tag, base, &extra);
    let watch_started = watch.started;
    let changed = Instant::now();
    let changed_at = SystemTime::now();
    node.apply(yaml);
    let ready_s = wait_for(
        Duration::from_secs(90),
        "Predictor Ready on the new release",
        || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True") && done(&p)).then(|| changed.elapsed().as_secs_f64())
        },
    );
    let (out, watched) = watch.finish();
    assert!(
        out.status.success(),
        "watch failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The watch's clock starts when it starts; the process start (a few ms) is within the error bar.
    let change_ms = changed_at
        .duration_since(watch_started)
        .unwrap()
        .as_secs_f64()
        * 1e3;
    // The watch's own per-release spans (in order of first answer): the newest is the wanted one.
    let (_newest, older) = watched["report"]["versions"]
        .as_array()
        .and_then(|v| v.split_last())
        .expect("some answers");
    let last_old_ms = older
        .iter()
        .map(|v| v["last_ms"].as_f64().unwrap())
        .fold(change_ms, f64::max);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    Rollout {
        report: watched["report"].clone(),
        switch_s: (last_old_ms - change_ms) / 1e3,
        ready_s,
    }
}

fn assert_clean_rollout(what: &str, r: &Rollout) {
    let report = &r.report;
    let rate =
        report["requests"].as_f64().unwrap() / (report["duration_ms"].as_f64().unwrap() / 1e3);
    eprintln!(
        "[node test] {what}: {} requests at {rate:.0}/s, {} failed, CR change -> last old answer {:.2} s, \
         -> Predictor Ready on the new release {:.2} s, longest gap {:.0} ms",
        report["requests"], report["failed"], r.switch_s, r.ready_s, report["longest_gap_ms"]
    );
    assert_eq!(report["failed"], 0, "{what}: failed requests: {report}");
    assert!(rate >= 50.0, "{what}: only {rate:.0} requests/s");
    assert!(
        r.switch_s < 30.0 && r.ready_s < 60.0,
        "{what}: rollout too slow"
    );
}

/// A pod deleted the normal way (SIGTERM after the preStop pause) must cost no request; a pod whose
/// process is SIGKILLed costs only requests that reached it before its endpoint is withdrawn (in flight,
/// or refused by the dead port), which are counted and must all be connection-level failures.
fn pod_faults_under_load(node: &Node, base: &str) {
    let ready_again = |what: &str| {
        wait_for(Duration::from_secs(60), what, || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True") && p["status"]["ready"] == "2/2").then_some(())
        })
    };
    let watch = Watch::start(node, "pod-deleted", base, &["--max-duration", "12s"]);
    let victim = pods(node)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    node.kubectl_ok(&["delete", "pod", "-n", NS, &victim, "--wait=false"]);
    let (_, deleted) = watch.finish();
    ready_again("2/2 again after the pod deletion");
    eprintln!(
        "[node test] pod {victim} deleted under load: {} requests, {} failed",
        deleted["report"]["requests"], deleted["report"]["failed"]
    );
    assert_eq!(deleted["report"]["failed"], 0, "{}", deleted["report"]);

    let watch = Watch::start(node, "pod-killed", base, &["--max-duration", "12s"]);
    let pid = predictor_pids()[0];
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let (_, killed) = watch.finish();
    ready_again("2/2 again after the SIGKILL");
    let restarts: i64 = pods(node)
        .iter()
        .map(|p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0)
        })
        .sum();
    assert!(
        restarts >= 1,
        "the SIGKILLed container was restarted by kubelet"
    );
    let report = &killed["report"];
    eprintln!(
        "[node test] predictor pid {pid} SIGKILLed under load: {} requests, {} failed ({}), longest gap {:.0} ms",
        report["requests"], report["failed"], report["failures"], report["longest_gap_ms"]
    );
    let failures = report["failures"].as_object().unwrap();
    assert!(
        failures.keys().all(|k| !k.starts_with("HTTP")),
        "only connection-level failures, never an HTTP error: {report}"
    );
    // Half the traffic goes to the killed pod until kubelet restarts it or readiness withdraws it
    // (readiness probe every 1 s, 3 failures): bounded well below the watch's 12 s.
    assert!(
        report["failed"].as_f64().unwrap() < 0.25 * report["requests"].as_f64().unwrap(),
        "{report}"
    );
}

/// The Predictor's Deployment as the API has it.
fn deployment(node: &Node) -> Value {
    node.json(&["get", "deployment", NAME, "-n", NS])
}

fn deployment_image(node: &Node) -> String {
    deployment(node)["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Names of the Predictor's pods that are not being deleted, sorted.
fn live_pod_names(node: &Node) -> Vec<String> {
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
fn wait_degraded(node: &Node, reason: &str, within: Duration) -> (Value, Duration) {
    let t = Instant::now();
    let p = wait_for(within, &format!("Degraded {reason}"), || {
        let p = node.predictor();
        (condition(&p, "Degraded").is_some_and(|c| c["reason"] == reason && c["status"] == "True")
            && p["status"]["observedGeneration"] == p["metadata"]["generation"])
            .then_some(p)
    });
    (p, t.elapsed())
}

/// A finished watch that saw no failed request and only `versions`; returns its report.
fn assert_watch_clean(what: &str, watch: Watch, versions: &[&str]) -> Value {
    let (out, mut watched) = watch.finish();
    let report = &watched["report"];
    eprintln!(
        "[node test] {what}: {} requests, {} failed, releases {}",
        report["requests"], report["failed"], report["versions"]
    );
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["failed"], 0, "{what}: {report}");
    let seen: Vec<&str> = report["versions"]
        .as_array()
        .unwrap()
        .iter()
        // `0.2 · model 8159eb76294b`: the release, then its model.
        .filter_map(|v| v["version"].as_str()?.split(" · ").next())
        .collect();
    assert_eq!(seen, versions, "{what}: {report}");
    watched["report"].take()
}

/// Issue 13's image faults, each under the rollout probe with 0 failed requests from the old pods:
/// a tag that does not exist (refused at pre-flight in < 5 s), a tag re-pushed to other bytes (no pod
/// changes), a wrong pull Secret (RegistryUnauthorized, then the rollout goes on once fixed), and the
/// registry down: a tag cannot be resolved (RegistryUnreachable), an image pinned by digest in the spec
/// cannot be pulled (Degraded ImagePullBackOff within the progress deadline), and once the registry is
/// back the rollout completes.
fn image_faults_under_load(node: &Node, base: &str, url_t: &str, sha_t: &str) {
    // Back on the good model, image 0.2 by tag.
    node.apply(&predictor_yaml("0.2", url_t, sha_t));
    let settled = wait_for(
        Duration::from_secs(120),
        "0.2 Ready on the good model",
        || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True")
                && p["status"]["modelSha256"] == sha_t
                && p["status"]["version"] == "0.2"
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2)
                .then_some(p)
        },
    );
    let pinned_02 = deployment_image(node);
    let digest_02 = pinned_02
        .strip_prefix(&format!("{IMAGE}:0.2@"))
        .unwrap_or_else(|| panic!("the Deployment pins 0.2 by digest: {pinned_02}"))
        .to_string();
    assert_eq!(settled["status"]["imageDigest"], digest_02.as_str());
    let resolved = condition(&settled, "ImageResolved").expect("ImageResolved");
    assert_eq!(resolved["reason"], "Resolved", "{resolved}");

    // 8a. A tag that does not exist.
    let generation = deployment(node)["metadata"]["generation"].clone();
    let watch = Watch::start(node, "missing-tag", base, &["--max-duration", "12s"]);
    node.apply(&predictor_yaml("0.9-missing", url_t, sha_t));
    let (refused, took) = wait_degraded(node, "ImageNotFound", Duration::from_secs(30));
    eprintln!(
        "[node test] missing tag refused at pre-flight after {:.2} s: {}",
        took.as_secs_f64(),
        condition(&refused, "Degraded").unwrap()["message"]
    );
    assert!(took < Duration::from_secs(5), "refused after {took:?}");
    assert_eq!(
        condition(&refused, "ImageResolved").unwrap()["status"],
        "False"
    );
    assert_eq!(deployment(node)["metadata"]["generation"], generation);
    assert_eq!(deployment_image(node), pinned_02);
    assert_watch_clean("missing tag", watch, &["0.2"]);

    // 8b. Tag 0.2 re-pushed to other bytes: the pods keep the digest they were pinned to, also when
    //     the Predictor names 0.2 again.
    let pods_before = live_pod_names(node);
    let repushed = node.script(
        "publish.sh",
        &["0.2", "0.2", "repushed"],
        Duration::from_secs(180),
    );
    let repushed = repushed.trim();
    assert!(
        repushed.starts_with("sha256:") && repushed != digest_02,
        "{repushed}"
    );
    node.apply(&predictor_yaml("0.2", url_t, sha_t));
    wait_for(
        Duration::from_secs(30),
        "the Predictor back to 0.2 and settled",
        || {
            let p = node.predictor();
            (condition_is(&p, "Degraded", "False")
                && p["status"]["observedGeneration"] == p["metadata"]["generation"])
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        deployment_image(node),
        pinned_02,
        "a re-pushed tag changed the pods"
    );
    assert_eq!(deployment(node)["metadata"]["generation"], generation);
    assert_eq!(live_pod_names(node), pods_before, "pods restarted");
    eprintln!("[node test] tag 0.2 re-pushed ({repushed}): pods unchanged on {digest_02}");

    // 8c. A wrong password in the pull Secret, then fixed: the rollout to 0.1 goes on by itself.
    // The pull Secret's .dockerconfigjson (base64) replaced in place, as an operator of the cluster would.
    let set_pull_secret = |data: &str| {
        let patch = format!(r#"{{"data": {{".dockerconfigjson": "{data}"}}}}"#);
        node.kubectl_ok(&[
            "patch",
            "secret",
            PULL_SECRET,
            "-n",
            NS,
            "--type",
            "merge",
            "-p",
            &patch,
        ]);
    };
    let good = node.kubectl_ok(&[
        "get",
        "secret",
        PULL_SECRET,
        "-n",
        NS,
        "-o",
        r"jsonpath={.data.\.dockerconfigjson}",
    ]);
    let wrong_auth = b64(b"mlops:not-the-password");
    let wrong =
        b64(format!(r#"{{"auths": {{"10.77.0.1:5443": {{"auth": "{wrong_auth}"}}}}}}"#).as_bytes());
    set_pull_secret(&wrong);
    let watch = Watch::start(
        node,
        "wrong-secret",
        base,
        &["--until-version", "0.1", "--max-duration", "120s"],
    );
    node.apply(&predictor_yaml("0.1", url_t, sha_t));
    let (refused, took) = wait_degraded(node, "RegistryUnauthorized", Duration::from_secs(30));
    eprintln!(
        "[node test] wrong pull Secret refused after {:.2} s: {}",
        took.as_secs_f64(),
        condition(&refused, "Degraded").unwrap()["message"]
    );
    assert!(
        !refused.to_string().contains("not-the-password"),
        "{refused}"
    );
    assert_eq!(deployment_image(node), pinned_02);
    let fixed = Instant::now();
    set_pull_secret(&good);
    wait_for(
        Duration::from_secs(90),
        "0.1 Ready once the Secret is fixed",
        || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True") && p["status"]["version"] == "0.1").then_some(())
        },
    );
    eprintln!(
        "[node test] pull Secret fixed: 0.1 Ready {:.1} s later, without a Predictor change",
        fixed.elapsed().as_secs_f64()
    );
    assert_watch_clean("wrong pull Secret, then fixed", watch, &["0.2", "0.1"]);

    // 8d. The registry down: a tag cannot be resolved; an image pinned by digest in the spec (as teams
    //     that pin in Git do) rolls out, cannot be pulled, and the Predictor says so before the
    //     progress deadline; the registry back, the rollout completes.
    let digest_03 = node.script("publish.sh", &["0.3"], Duration::from_secs(180));
    let digest_03 = digest_03.trim().to_string();
    node.script("registry.sh", &["stop"], Duration::from_secs(30));
    let watch = Watch::start(
        node,
        "registry-down",
        base,
        &["--until-version", "0.3", "--max-duration", "140s"],
    );
    node.apply(&predictor_yaml("0.3", url_t, sha_t));
    let (_, took) = wait_degraded(node, "RegistryUnreachable", Duration::from_secs(30));
    eprintln!(
        "[node test] registry down: tag 0.3 refused at pre-flight after {:.2} s",
        took.as_secs_f64()
    );
    assert!(deployment_image(node).starts_with(&format!("{IMAGE}:0.1@")));
    node.apply(&predictor_yaml(&format!("0.3@{digest_03}"), url_t, sha_t));
    let (stalled, took) = wait_degraded(node, "ImagePullBackOff", Duration::from_secs(20));
    eprintln!(
        "[node test] registry down: the pull of 0.3 failing is Degraded after {:.1} s (deadline 20 s): {}",
        took.as_secs_f64(),
        condition(&stalled, "Degraded").unwrap()["message"]
    );
    let back = Instant::now();
    node.script("registry.sh", &["start"], Duration::from_secs(30));
    wait_for(
        Duration::from_secs(150),
        "0.3 Ready once the registry is back",
        || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True")
                && p["status"]["version"] == "0.3"
                && p["status"]["imageDigest"] == digest_03.as_str()
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2)
                .then_some(())
        },
    );
    eprintln!(
        "[node test] registry back: 0.3 Ready {:.1} s later (kubelet's pull back-off)",
        back.elapsed().as_secs_f64()
    );
    assert_watch_clean(
        "registry down mid-rollout, then back",
        watch,
        &["0.1", "0.3"],
    );
    assert_pulled(node, NS, &format!("{IMAGE}:0.3"));
}

/// Issue 15's offline gate on the real node, under the probe: with `spec.validation` (the tweets'
/// test.csv from the in-cluster store, `maxAccuracyDrop: 0.05`), a model trained on shuffled labels,
/// whose digest is right, is refused at pre-flight in seconds: Degraded `ModelBelowQualityGate` with
/// both accuracies in the message, the Deployment untouched, no answer from it, no failed request.
fn quality_gate_under_load(node: &Node, base: &str, store: &str, models: &HashMap<String, String>) {
    let tag = serving_tag(node);
    let (model_t, sha_t) = (&models["MODEL_T"], &models["MODEL_T_SHA256"]);
    let (model_s, sha_s) = (&models["MODEL_S"], &models["MODEL_S_SHA256"]);
    let gated = |model: &str, sha: &str| {
        let mut p = predictor_object(&tag, &format!("{store}/{model}"), sha);
        p.spec.validation = Some(ValidationSpec {
            data: DataSpec {
                url: format!("{store}/{}", models["VALIDATION"]),
                sha256: models["VALIDATION_SHA256"].clone(),
            },
            min_accuracy: None,
            max_accuracy_drop: Some(0.05),
        });
        manifest(&[p])
    };
    // The gate on, the model unchanged: nothing to judge, nothing rolls.
    node.apply(&gated(model_t, sha_t));
    wait_for(
        Duration::from_secs(30),
        "the gated Predictor settled",
        || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True")
                && p["status"]["observedGeneration"] == p["metadata"]["generation"])
                .then_some(())
        },
    );
    let generation = deployment(node)["metadata"]["generation"].clone();
    let pods_before = live_pod_names(node);

    let watch = Watch::start(node, "quality-gate", base, &["--max-duration", "12s"]);
    node.apply(&gated(model_s, sha_s));
    let (refused, took) = wait_degraded(node, "ModelBelowQualityGate", Duration::from_secs(30));
    let message = condition(&refused, "Degraded").unwrap()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    eprintln!(
        "[node test] model trained on shuffled labels refused by the quality gate after {:.2} s: {message}",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(10), "refused after {took:?}");
    // Both figures: the candidate's accuracy and the serving model's (0.7770 on test.csv).
    assert!(message.contains("0.777"), "{message}");
    assert_eq!(deployment(node)["metadata"]["generation"], generation);
    assert_eq!(live_pod_names(node), pods_before);
    let release = refused["status"]["version"]
        .as_str()
        .expect("status.version");
    let report = assert_watch_clean("quality gate", watch, &[release]);
    // Answers name their model (first 12 hex digits of its sha256): every one from the serving
    // model (no request failed), none from the refused one.
    assert_eq!(
        answers_from(&report, sha_t),
        report["requests"].as_u64().unwrap(),
        "answers from another model than the serving one: {report}"
    );
    assert_eq!(answers_from(&report, sha_s), 0, "{report}");
    // Back to the good model for what follows.
    node.apply(&gated(model_t, sha_t));
    wait_for(
        Duration::from_secs(30),
        "the Predictor healthy again",
        || {
            let p = node.predictor();
            (condition_is(&p, "Degraded", "False")
                && p["status"]["observedGeneration"] == p["metadata"]["generation"])
                .then_some(())
        },
    );
}

/// The image tag the Predictor's spec names now.
fn serving_tag(node: &Node) -> String {
    let serving = node.predictor();
    let image = serving["spec"]["image"].as_str().expect("spec.image");
    image
        .strip_prefix(&format!("{IMAGE}:"))
        .unwrap_or_else(|| panic!("{image}"))
        .to_string()
}

/// The Predictor once its current generation is Ready on `sha256` with 2/2 replicas.
fn wait_serving(node: &Node, sha256: &str, what: &str) -> Value {
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

/// The canary pods (label `mlops.dev/track=canary`) that are not being deleted.
fn canary_pods(node: &Node) -> Vec<Value> {
    pods(node)
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["mlops.dev/track"] == "canary")
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

/// Answers a finished watch got from `sha256`'s model (labels end in its first 12 hex digits).
fn answers_from(report: &Value, sha256: &str) -> u64 {
    report["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| {
            v["version"]
                .as_str()
                .is_some_and(|l| l.ends_with(&sha256[..12]))
        })
        .map(|v| v["answers"].as_u64().unwrap())
        .sum()
}

/// Issue 15's online gate on the real node, under the probe sending the tweets of test.csv in turn
/// at 100/s. The Predictor serves model-h (a third of train.csv's rows) with `strategy: Canary`
/// (one canary pod next to two stable ones, stable pods copying half their requests to it, 300
/// samples, at most 25 % disagreement and 1 % errors). Then:
///  a. model-s (shuffled labels; no offline gate) is rolled back by the analysis: the probe saw
///     at most the canary's share of answers from it, none failed, the stable pods were not
///     touched, the status says why and what serves;
///  b. model-t (every row) is promoted with no failed request, the time from CR change reported;
///  c. with no traffic, model-h as the next candidate waits ("waiting: 0 of 300 samples") across
///     analysis rounds, and is promoted once the probe brings the samples.
fn online_gate_under_load(node: &Node, base: &str, store: &str, models: &HashMap<String, String>) {
    let tag = serving_tag(node);
    let model = |key: &str| {
        (
            format!("{store}/{}", models[&format!("MODEL_{key}")]),
            models[&format!("MODEL_{key}_SHA256")].clone(),
        )
    };
    let ((url_h, sha_h), (url_s, sha_s), (url_t, sha_t)) = (model("H"), model("S"), model("T"));
    const MIN_SAMPLES: i64 = 300;
    let canary = |url: &str, sha: &str| {
        let mut p = predictor_object(&tag, url, sha);
        p.spec.rollout = Some(RolloutSpec {
            strategy: RolloutStrategy::Canary,
            canary_percent: 50,
            shadow_percent: 50,
            analysis: Some(AnalysisSpec {
                min_samples: MIN_SAMPLES,
                max_disagreement: Some(0.25),
                max_error_rate: Some(0.01),
                max_p99_latency_ratio: None,
                deadline_seconds: 600,
            }),
        });
        manifest(&[p])
    };
    let rollout = |p: &Value, field: &str| p["status"]["rollout"][field].clone();

    // The older model by a plain rolling update, then the switch to Canary: the stable pods restart
    // once, now carrying the shadow target.
    node.apply(&predictor_yaml(&tag, &url_h, &sha_h));
    wait_serving(node, &sha_h, "model-h served by a rolling update");
    node.apply(&canary(&url_h, &sha_h));
    wait_for(
        Duration::from_secs(90),
        "2 stable pods with the shadow target",
        || {
            let live: Vec<Value> = pods(node)
                .into_iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .collect();
            (live.len() == 2
                && live.iter().all(|p| {
                    pod_env(p, "SHADOW_URL")
                        == Some(&*format!("http://{NAME}-canary.{NS}.svc:5008"))
                        && p["status"]["containerStatuses"][0]["ready"] == true
                }))
            .then_some(())
        },
    );
    wait_serving(node, &sha_h, "model-h served by the Canary Predictor");

    // --- a. a worse model, right digest: rolled back by the analysis --------------------------------
    let stable_generation = deployment(node)["metadata"]["generation"].clone();
    let stable_pods = live_pod_names(node);
    // A connection per request, like many clients: kube-proxy picks an endpoint per connection, so
    // the canary gets its replica share of requests, not all or none of one kept-alive client's.
    let watch = Watch::start(
        node,
        "canary-rollback",
        base,
        &["--max-duration", "45s", "--no-keep-alive"],
    );
    let t = Instant::now();
    node.apply(&canary(&url_s, &sha_s));
    let rolled_back = wait_for(Duration::from_secs(90), "model-s rolled back", || {
        let p = node.predictor();
        (rollout(&p, "phase") == "RolledBack"
            && rollout(&p, "candidate")["modelSha256"] == sha_s.as_str())
        .then_some(p)
    });
    let took = t.elapsed().as_secs_f64();
    wait_for(Duration::from_secs(30), "the canary pod gone", || {
        canary_pods(node).is_empty().then_some(())
    });
    let release = rolled_back["status"]["version"]
        .as_str()
        .unwrap()
        .to_string();
    let report = assert_watch_clean("canary rollback", watch, &[&release, &release]);
    let (bad, all) = (
        answers_from(&report, &sha_s),
        report["requests"].as_u64().unwrap(),
    );
    let message = rollout(&rolled_back, "message");
    eprintln!(
        "[node test] model-s under Canary + shadow rolled back {took:.1} s after the CR change: {message}; \
         the probe got {bad} of {all} answers from it ({:.1} %, canary share 1 pod of 3)",
        100.0 * bad as f64 / all as f64
    );
    assert_eq!(rollout(&rolled_back, "reason"), "DisagreementTooHigh");
    let measured = rollout(&rolled_back, "measured");
    assert!(
        measured["samples"].as_i64().unwrap() >= MIN_SAMPLES,
        "{measured}"
    );
    assert!(
        measured["disagreement"].as_f64().unwrap() > 0.25,
        "{measured}"
    );
    assert!(
        bad > 0 && 3 * bad <= all,
        "{bad} of {all} answers from the rejected model"
    );
    let degraded = condition(&rolled_back, "Degraded").unwrap();
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "CanaryRolledBack");
    assert_eq!(rolled_back["status"]["modelSha256"], sha_h.as_str());
    assert_eq!(
        rolled_back["status"]["lastGoodModel"]["sha256"],
        sha_h.as_str()
    );
    assert_eq!(
        rolled_back["spec"]["model"]["sha256"],
        sha_s.as_str(),
        "the spec is untouched"
    );
    assert_eq!(
        deployment(node)["metadata"]["generation"],
        stable_generation
    );
    assert_eq!(
        live_pod_names(node),
        stable_pods,
        "the stable pods were not touched"
    );
    let events = node.kubectl_ok(&[
        "get",
        "events",
        "-n",
        NS,
        "--field-selector",
        "reason=CanaryRolledBack",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "a CanaryRolledBack Event");

    // --- b. a better model: promoted, no failed request ---------------------------------------------
    let r = measure_rollout(
        node,
        base,
        &canary(&url_t, &sha_t),
        &["--until-model", &sha_t, "--no-keep-alive"],
        &|p| {
            rollout(p, "phase") == "Promoted"
                && p["status"]["modelSha256"] == sha_t.as_str()
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2
        },
    );
    let report = &r.report;
    eprintln!(
        "[node test] model-t under Canary promoted: CR change -> Promoted and Ready {:.1} s, -> last \
         answer from model-h {:.1} s; {} requests, {} failed",
        r.ready_s, r.switch_s, report["requests"], report["failed"]
    );
    assert_eq!(report["failed"], 0, "{report}");
    let promoted = node.predictor();
    assert_eq!(condition(&promoted, "Degraded").unwrap()["status"], "False");
    wait_for(
        Duration::from_secs(30),
        "the canary retired after the promotion",
        || canary_pods(node).is_empty().then_some(()),
    );

    // --- c. no traffic: the analysis waits and says so, then promotes on traffic --------------------
    node.apply(&canary(&url_h, &sha_h));
    let first = wait_for(
        Duration::from_secs(60),
        "model-h analysed with no traffic",
        || {
            let p = node.predictor();
            (rollout(&p, "phase") == "Analyzing"
                && rollout(&p, "candidate")["modelSha256"] == sha_h.as_str()
                && !rollout(&p, "measuredAt").is_null())
            .then_some(p)
        },
    );
    // Two more analysis rounds (every 10 s) with no request: still waiting, nothing promoted.
    let measured_at = rollout(&first, "measuredAt");
    let later = wait_for(Duration::from_secs(40), "two more analysis rounds", || {
        let p = node.predictor();
        let at = rollout(&p, "measuredAt");
        (!at.is_null() && at != measured_at).then_some(p)
    });
    std::thread::sleep(Duration::from_secs(11));
    for p in [first, later, node.predictor()] {
        assert_eq!(rollout(&p, "phase"), "Analyzing", "{}", p["status"]);
        assert_eq!(rollout(&p, "reason"), "WaitingForSamples");
        assert!(
            rollout(&p, "message")
                .as_str()
                .unwrap()
                .starts_with(&format!("waiting: 0 of {MIN_SAMPLES} samples")),
            "{}",
            p["status"]["rollout"]
        );
        assert_eq!(p["status"]["modelSha256"], sha_t.as_str());
        assert_eq!(condition(&p, "Progressing").unwrap()["status"], "True");
    }
    eprintln!(
        "[node test] no traffic: {}",
        rollout(&node.predictor(), "message")
    );
    let r = measure_rollout(
        node,
        base,
        &canary(&url_h, &sha_h),
        &["--until-model", &sha_h, "--no-keep-alive"],
        &|p| rollout(p, "phase") == "Promoted" && p["status"]["modelSha256"] == sha_h.as_str(),
    );
    let samples = rollout(&node.predictor(), "measured")["samples"]
        .as_i64()
        .unwrap();
    eprintln!(
        "[node test] traffic back: promoted {:.1} s later on {samples} samples; {} requests, {} failed",
        r.ready_s, r.report["requests"], r.report["failed"]
    );
    assert!(samples >= MIN_SAMPLES);
    assert_eq!(r.report["failed"], 0, "{}", r.report);
}

/// Standard base64, as Secrets' `data` wants it.
fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Pods of the Predictor, as the API has them.
fn pods(node: &Node) -> Vec<Value> {
    node.json(&[
        "get",
        "pods",
        "-n",
        NS,
        "-l",
        &format!("app.kubernetes.io/instance={NAME}"),
    ])["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// The kernel's view of a container process: uid, effective capabilities, read-only root.
fn process_facts(pid: u32) -> (String, String, bool) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root_ro = mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(4) == Some(&"/"))
        .is_some_and(|f| f[5].split(',').any(|o| o == "ro"));
    (field("Uid:"), field("CapEff:"), root_ro)
}

/// Host pids of processes whose command line is `/predictor serve`.
fn predictor_pids() -> Vec<u32> {
    pids_running(b"/predictor\0serve")
}

/// Host pids of processes whose command line (NUL-separated) starts with `prefix`.
fn pids_running(prefix: &[u8]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(prefix))
        })
        .collect()
}

fn accuracy_line(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "eval failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find(|l| l.to_lowercase().contains("accuracy"))
        .unwrap_or_else(|| panic!("no accuracy in: {stdout}"))
        .trim()
        .to_string()
}

/// What one look at the autoscaled Predictor and its Application saw, `t` seconds into the load.
struct Look {
    t: f64,
    /// `kubectl get predictors`' READY (`status.ready`).
    ready: String,
    ready_replicas: i64,
    /// Pods of the Deployment (`status.replicas`, terminating ones not counted) and what the
    /// autoscaler wants.
    replicas: i64,
    desired: i64,
    /// The pods' average CPU use in percent of their request, as the autoscaler last measured it.
    cpu: Option<i64>,
    /// The Application's sync and health status.
    sync: String,
    health: String,
}

impl Look {
    /// A look; `None` while the Predictor or the Application does not exist yet.
    fn try_take(node: &Node, t: f64) -> Option<Look> {
        let get = |args: &[&str]| -> Option<Value> {
            let out = node.kubectl(&[args, &["-o", "json"]].concat());
            out.status
                .success()
                .then(|| serde_json::from_slice(&out.stdout).ok())
                .flatten()
        };
        let p = get(&["get", "predictor", NAME, "-n", TEAM_NS])?;
        let app = get(&["get", "application", APP, "-n", argocd::ARGOCD_NS])?;
        let hpa = get(&["get", "hpa", NAME, "-n", TEAM_NS]);
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        Some(Look {
            t,
            ready: text(&p["status"]["ready"]),
            ready_replicas: p["status"]["readyReplicas"].as_i64().unwrap_or(0),
            replicas: p["status"]["replicas"].as_i64().unwrap_or(0),
            desired: p["status"]["autoscaling"]["desiredReplicas"]
                .as_i64()
                .unwrap_or(0),
            cpu: hpa.and_then(|h| {
                h["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
                    .as_i64()
            }),
            sync: text(&app["status"]["sync"]["status"]),
            health: text(&app["status"]["health"]["status"]),
        })
    }

    fn take(node: &Node, t: f64) -> Look {
        Self::try_take(node, t).expect("the Predictor and its Application exist")
    }

    fn line(&self) -> String {
        let cpu = self.cpu.map_or("?".into(), |c| c.to_string());
        format!(
            "t={:6.1}s READY {:5} pods {} (autoscaler wants {}, CPU {cpu}% of request), app {} + {}",
            self.t, self.ready, self.replicas, self.desired, self.sync, self.health
        )
    }
}

/// Issue 17: a Predictor with `spec.autoscaling`, delivered by ArgoCD from Git (the committed
/// `argocd/` files, only the Git URL swapped: auto-sync, self-heal, server-side apply), under a
/// load ramp from `predictor probe`. The operator's HorizontalPodAutoscaler, fed by metrics-server
/// through `metrics.k8s.io`, scales it up and, once the load stops, back down to `minReplicas`;
/// a steady probe runs throughout. 0 failed requests, READY follows the scale, and the
/// Application stays Synced + Healthy at every look.
fn autoscaling_under_argocd(node: &Node, store: &str, models: &HashMap<String, String>) {
    // The team's namespace, as the platform makes it: Pod Security "restricted" and the registry's
    // pull Secret (copied from the test namespace). The model comes from the shared model store.
    node.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {TEAM_NS}\n  labels:\n    \
         pod-security.kubernetes.io/enforce: restricted\n"
    ));
    let mut secret = node.json(&["get", "secret", PULL_SECRET, "-n", NS]);
    secret["metadata"] = serde_json::json!({"name": PULL_SECRET, "namespace": TEAM_NS});
    node.apply(&secret.to_string());
    let (model_t, sha_t) = (&models["MODEL_T"], &models["MODEL_T_SHA256"]);
    let bin = argocd::bin_dir(&["argocd-repo-server", "argocd-application-controller"]);
    let target = argocd::Target {
        dir: &node.state,
        kubeconfig: &node.kubeconfig,
        bin: &node.bin,
    };
    argocd::install_config(target, &bin);

    // The team's repository: one Predictor, autoscaled, with no replica count anywhere.
    let model = ServedModel {
        url: format!("{store}/{model_t}"),
        sha: sha_t.clone(),
    };
    let mut p = predictor(NAME, &format!("{IMAGE}:0.2"), &model, 1);
    p.spec.image_pull_secrets = vec![PULL_SECRET.into()];
    // A small CPU request, so a load this machine can make is many times it; the target is
    // half of it. Scale-down after 10 s of low use (the default waits 5 minutes).
    p.spec.resources = Some(
        serde_json::from_value(serde_json::json!({
            "requests": {"cpu": "25m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"}
        }))
        .unwrap(),
    );
    p.spec.autoscaling = Some(
        serde_json::from_value(serde_json::json!({
            "minReplicas": MIN_REPLICAS,
            "maxReplicas": MAX_REPLICAS,
            "targetCPUUtilizationPercentage": 50,
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 10,
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 5}]
                }
            }
        }))
        .unwrap(),
    );
    let mut file = serde_json::to_value(&p).unwrap();
    file["spec"].as_object_mut().unwrap().remove("replicas");
    let repo = GitRepo::init(&node.state.join("git/predictors"));
    let path = format!("{}/american.yaml", argocd::GIT_PATH);
    let commit = repo.commit("autoscaled american", &[(&path, Some(&file.to_string()))]);

    let mut argo = ArgoCd::start(target, &bin, Components::Sync);
    let overlay = argocd::team_a_overlay(&node.state, &repo.url());
    node.kubectl_ok(&["apply", "-k", &overlay.display().to_string()]);
    let t_sync = Instant::now();
    wait_for(
        Duration::from_secs(180),
        "Application Synced + Healthy, Predictor Ready",
        || {
            let look = Look::try_take(node, 0.0)?;
            let app = node.json(&["get", "application", APP, "-n", argocd::ARGOCD_NS]);
            (look.sync == "Synced"
                && look.health == "Healthy"
                && app["status"]["sync"]["revision"] == commit.as_str()
                && look.ready == format!("{MIN_REPLICAS}/{MIN_REPLICAS}"))
            .then_some(())
        },
    );
    argo.check_running();
    eprintln!(
        "[node test] autoscaled Predictor synced by ArgoCD and Ready {MIN_REPLICAS}/{MIN_REPLICAS} in {:.1} s",
        t_sync.elapsed().as_secs_f64()
    );
    let hpa = node.json(&["get", "hpa", NAME, "-n", TEAM_NS]);
    assert_eq!(hpa["spec"]["maxReplicas"], MAX_REPLICAS);
    assert_eq!(hpa["metadata"]["ownerReferences"][0]["kind"], "Predictor");
    let deployment = node.json(&[
        "get",
        "deployment",
        NAME,
        "-n",
        TEAM_NS,
        "--show-managed-fields",
    ]);
    let managers: Vec<&str> = deployment["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["fieldsV1"]["f:spec"]["f:replicas"].is_object())
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(
        !managers.contains(&"predictor-operator"),
        "the operator owns no replica count: {managers:?}"
    );
    // The autoscaler measures the pods (metrics-server answers): the Autoscaling condition.
    wait_for(
        Duration::from_secs(60),
        "the autoscaler measuring the pods",
        || {
            let p = node.json(&["get", "predictor", NAME, "-n", TEAM_NS]);
            condition_is(&p, "Autoscaling", "True").then_some(())
        },
    );

    let ip = node.kubectl_ok(&[
        "get",
        "service",
        NAME,
        "-n",
        TEAM_NS,
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let base = format!("http://{ip}:5008");
    // A steady probe through it all, and the ramp on top: ~0 to RAMP_TO requests/s in 20 s, held.
    // The steady probe at 20 requests/s: light enough that 2 pods sharing it use well under half
    // the target (else the autoscaler keeps them both: at 100/s it did in 1 run of 2, and at 50/s
    // in 1 run of 3, with 26 % of the request each, ceil(2 × 26/50) = 2).
    let watch = Watch::start_every(
        node,
        "autoscaling",
        &base,
        "50ms",
        &["--max-duration", "120s"],
    );
    let load_json = node.state.join("reports/load-ramp.json");
    let load = spawn_predictor(&[
        "probe",
        "--url",
        &base,
        "--interval",
        "10ms",
        "--ramp-to",
        RAMP_TO,
        "--ramp",
        "20s",
        "--max-duration",
        LOAD_SECONDS,
        "--json",
        &load_json.display().to_string(),
    ]);
    let started = Instant::now();
    let mut looks: Vec<Look> = Vec::new();
    let mut load = Some(load);
    let mut load_out = None;
    let mut load_stopped = None;
    // Bounded: the load's 45 s plus up to 65 s to scale back down (28-29 s measured), within the
    // steady probe's 120 s, which must see the last pods drain.
    while started.elapsed() < Duration::from_secs(110) {
        let look = Look::take(node, started.elapsed().as_secs_f64());
        if looks.last().is_none_or(|l| {
            (&l.ready, l.replicas, l.desired, &l.sync, &l.health)
                != (
                    &look.ready,
                    look.replicas,
                    look.desired,
                    &look.sync,
                    &look.health,
                )
        }) {
            eprintln!("[node test] {}", look.line());
        }
        assert!(
            look.sync == "Synced" && look.health == "Healthy",
            "the Application left Synced + Healthy during the scale: {}\n{}",
            look.line(),
            argo.logs()
        );
        let back_down = load_stopped.is_some()
            && look.replicas == i64::from(MIN_REPLICAS)
            && look.ready == format!("{MIN_REPLICAS}/{MIN_REPLICAS}");
        looks.push(look);
        if let Some(child) = load.take_if(|c| c.try_wait().ok().flatten().is_some()) {
            load_stopped = Some(started.elapsed().as_secs_f64());
            load_out = Some(wait_output(child, Duration::from_secs(10), "load probe"));
        }
        if back_down {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    argo.check_running();
    let (out, watched) = watch.finish();
    let load_out = load_out.expect("the load ramp ended");
    let ramp: Value = serde_json::from_slice(&std::fs::read(&load_json).unwrap()).unwrap();
    let load_stopped = load_stopped.unwrap();

    let peak = looks.iter().map(|l| l.replicas).max().unwrap_or(0);
    let peak_cpu = looks.iter().filter_map(|l| l.cpu).max().unwrap_or(0);
    let first_new_ready = looks
        .iter()
        .find(|l| l.ready_replicas > i64::from(MIN_REPLICAS))
        .map(|l| l.t);
    let end = looks.last().unwrap();
    eprintln!(
        "[node test] autoscaling: load {} requests (ramp to {RAMP_TO}/s, {} failed) stopped at {load_stopped:.1} s; \
         first new pod Ready {:.1} s after the load started; peak {peak} pods (CPU at most {peak_cpu}% of \
         request); back to {MIN_REPLICAS} \
         {:.1} s after the load stopped; steady probe {} requests, {} failed",
        ramp["report"]["requests"],
        ramp["report"]["failed"],
        first_new_ready.unwrap_or(f64::NAN),
        end.t - load_stopped,
        watched["report"]["requests"],
        watched["report"]["failed"],
    );
    eprintln!("{}", node.kubectl_ok(&["get", "predictors", "-n", TEAM_NS]));
    assert!(
        load_out.status.success() && out.status.success(),
        "a probe failed:\n{}\n{}",
        String::from_utf8_lossy(&load_out.stdout),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(ramp["report"]["failed"], 0, "load: {}", ramp["report"]);
    assert_eq!(
        watched["report"]["failed"], 0,
        "steady probe: {}",
        watched["report"]
    );
    assert!(
        first_new_ready.is_some() && peak > i64::from(MIN_REPLICAS),
        "never scaled up: peak {peak}"
    );
    // READY followed the scale: it showed every pod of the peak ready, and is back at the minimum.
    assert!(
        looks
            .iter()
            .any(|l| l.ready_replicas > i64::from(MIN_REPLICAS)
                && l.ready == format!("{0}/{0}", l.ready_replicas)),
        "READY never showed the scaled-up pods all ready"
    );
    assert_eq!(
        end.ready,
        format!("{MIN_REPLICAS}/{MIN_REPLICAS}"),
        "not back down: {}",
        end.line()
    );
    assert_eq!(end.replicas, i64::from(MIN_REPLICAS));
    // The scale-down's drained pods were watched by the steady probe to the end.
    let watch_ms = watched["report"]["duration_ms"].as_f64().unwrap();
    assert!(
        watch_ms / 1e3 > end.t + 5.0,
        "the steady probe ended before the pods were gone"
    );
    let app = node.json(&["get", "application", APP, "-n", argocd::ARGOCD_NS]);
    assert_eq!(
        app["status"]["sync"]["revision"],
        commit.as_str(),
        "no new sync was needed"
    );
}

/// The Secret a team gives its Predictors for their model stores (`spec.model.credentials`).
const STORE_SECRET: &str = "model-stores";

/// The hostile team's namespace of section 13.
const HOSTILE_NS: &str = "mlops-hostile";
/// The store's image (dev/node/lib.sh): its fileserver also answers a 64 MiB `/metrics`.
const STORE_IMAGE: &str = "10.77.0.1:5443/mlops/model-store:node";

/// Host pids of the operator containers' processes (`/operator run`).
fn operator_pids() -> Vec<u32> {
    pids_running(b"/operator\0run")
}

/// A `/proc/<pid>/status` field in kB, as bytes.
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The memory cgroup's peak of `pid` (cgroup v1 `memory.max_usage_in_bytes`, page cache included;
/// v2 `memory.peak`), if the machine has one.
fn cgroup_peak(pid: u32) -> Option<u64> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let v1 = cgroups.lines().find_map(|l| {
        let (_, rest) = l.split_once(':')?;
        let (controllers, path) = rest.split_once(':')?;
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    });
    let file = match v1 {
        Some(path) => format!("/sys/fs/cgroup/memory{path}/memory.max_usage_in_bytes"),
        None => {
            let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
            format!("/sys/fs/cgroup{path}/memory.peak")
        }
    };
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Restarts of the operator pods' containers, summed.
fn operator_restarts(node: &Node) -> i64 {
    operator_pods(node)
        .iter()
        .map(|p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0)
        })
        .sum()
}

/// `"256Mi"` → bytes (the binary suffixes a memory limit uses).
fn quantity_bytes(q: &str) -> u64 {
    let (digits, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let n: u64 = digits.parse().unwrap_or_else(|_| panic!("quantity {q}"));
    n * match unit {
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "" => 1,
        other => panic!("unit {other} in {q}"),
    }
}

/// Issue 26, section 13: hostile tenants while another team rolls out. In a namespace of its own,
/// one team commits a Predictor whose model URL serves 1 GiB without a length, one whose model URL
/// never ends, and a Canary whose candidate image answers a 64 MiB `/metrics` to the analysis'
/// scrapes, all at once; meanwhile the test namespace's Predictor rolls out a new model under the
/// probe. The operator pods (from config/default) never restart, their memory stays under their
/// limit, the hostile Predictors are refused with their reasons, and the rollout fails no request.
fn hostile_tenants_under_load(
    node: &Node,
    base: &str,
    store: &str,
    models: &HashMap<String, String>,
) {
    node.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {HOSTILE_NS}\n  labels:\n    \
         pod-security.kubernetes.io/enforce: restricted\n"
    ));
    let mut secret = node.json(&["get", "secret", PULL_SECRET, "-n", NS]);
    secret["metadata"] = serde_json::json!({"name": PULL_SECRET, "namespace": HOSTILE_NS});
    node.apply(&secret.to_string());
    let (url_t, sha_t) = (
        format!("{store}/{}", models["MODEL_T"]),
        &models["MODEL_T_SHA256"],
    );
    let (url_b, sha_b) = (
        format!("{store}/{}", models["MODEL_B"]),
        &models["MODEL_B_SHA256"],
    );
    let hostile = |name: &str, image: &str, url: &str, sha: &str| {
        let mut p = predictor_object("0.2", url, sha);
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some(HOSTILE_NS.into());
        p.spec.image = image.into();
        p
    };
    let loud = |image: &str| {
        let mut p = hostile("loud", image, &url_t, sha_t);
        p.spec.replicas = 1;
        p = operator::fixtures::canary(p);
        manifest(&[p])
    };
    let get = |name: &str| node.json(&["get", "predictor", name, "-n", HOSTILE_NS]);
    let restarts_before = operator_restarts(node);

    // The Canary's stable pod, an honest one, first.
    node.apply(&loud(&format!("{IMAGE}:0.2")));
    wait_for(
        Duration::from_secs(90),
        "the loud Canary Predictor Ready",
        || {
            let p = get("loud");
            condition_is(&p, "Ready", "True").then_some(())
        },
    );

    // All at once: 1 GiB without a length, an endless body, the candidate with a 64 MiB /metrics.
    let junk = "0".repeat(64);
    node.apply(&manifest(&[
        hostile(
            "junk",
            &format!("{IMAGE}:0.2"),
            &format!("{store}/hostile/junk-1g"),
            &junk,
        ),
        hostile(
            "endless",
            &format!("{IMAGE}:0.2"),
            &format!("{store}/hostile/endless"),
            &junk,
        ),
    ]));
    node.apply(&loud(STORE_IMAGE));
    wait_for(
        Duration::from_secs(90),
        "the loud candidate's canary pod ready and analysed",
        || {
            let p = get("loud");
            let out = node.kubectl(&[
                "get",
                "deploy",
                "loud-canary",
                "-n",
                HOSTILE_NS,
                "-o",
                "json",
            ]);
            let canary: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            (p["status"]["rollout"]["phase"] == "Analyzing"
                && canary["status"]["readyReplicas"].as_i64() >= Some(1))
            .then_some(())
        },
    );

    // Another team's rollout under the probe meanwhile.
    let r = measure_rollout(
        node,
        base,
        &predictor_yaml("0.2", &url_t, sha_t),
        &["--until-model", sha_t],
        &|p| {
            p["status"]["modelSha256"] == sha_t.as_str()
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2
        },
    );
    assert_clean_rollout("model change beside hostile tenants", &r);

    // The hostile Predictors, refused with their reasons; nothing they served is shown.
    for name in ["junk", "endless"] {
        let p = wait_for(Duration::from_secs(120), &format!("{name} refused"), || {
            let p = get(name);
            condition_is(&p, "ModelVerified", "False").then_some(p)
        });
        let c = condition(&p, "ModelVerified").unwrap();
        eprintln!(
            "[node test] hostile {name}: {} {}",
            c["reason"], c["message"]
        );
        assert_eq!(c["reason"], "FetchFailed", "{name}: {c}");
        let text = p["status"].to_string();
        assert!(
            !text.contains("junk junk") && !text.contains("more and more"),
            "{text}"
        );
        let deployments = node.kubectl(&["get", "deploy", name, "-n", HOSTILE_NS]);
        assert!(!deployments.status.success(), "{name} got a Deployment");
    }
    let logs = node.kubectl_ok(&[
        "logs",
        "-n",
        OPERATOR_NS,
        "-l",
        OPERATOR_LABEL,
        "--tail",
        "-1",
        "--prefix",
    ]);
    let refused_scrapes: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("cannot read pod metrics"))
        .collect();
    eprintln!(
        "[node test] loud canary: {} scrapes refused, e.g. {}",
        refused_scrapes.len(),
        refused_scrapes.first().unwrap_or(&"(none)")
    );
    assert!(
        !refused_scrapes.is_empty(),
        "no scrape of the loud canary was refused"
    );
    assert!(
        refused_scrapes.iter().any(|l| l.contains("limit")),
        "no scrape refused for its size: {refused_scrapes:?}"
    );
    assert!(
        !logs.contains("predictor_predictions_total{model=\"x\""),
        "a scrape was echoed"
    );
    let loud_now = get("loud");
    assert_ne!(
        loud_now["status"]["rollout"]["phase"], "Promoted",
        "{loud_now}"
    );
    assert_ne!(
        loud_now["status"]["rollout"]["phase"], "Promoting",
        "{loud_now}"
    );

    // The operator held: no restart, memory under the limit.
    assert_eq!(
        operator_restarts(node),
        restarts_before,
        "an operator pod restarted"
    );
    let deployment = node.json(&["get", "deploy", "predictor-operator", "-n", OPERATOR_NS]);
    let limit = quantity_bytes(
        deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
            .as_str()
            .expect("the operator's memory limit"),
    );
    let pids = operator_pids();
    assert_eq!(pids.len(), 2, "two operator processes");
    for pid in pids {
        let (hwm, cgroup) = (proc_kb(pid, "VmHWM:"), cgroup_peak(pid));
        eprintln!(
            "[node test] operator pid {pid}: peak RSS {:.1} MiB, cgroup peak {} (page cache \
             included), limit {:.0} MiB",
            hwm as f64 / 1048576.0,
            cgroup.map_or("?".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
            limit as f64 / 1048576.0
        );
        assert!(hwm < limit / 2, "operator pid {pid} peaked at {hwm} bytes");
    }

    // Back to where section 3b left the test namespace; the hostile namespace goes.
    node.kubectl_ok(&["delete", "namespace", HOSTILE_NS, "--wait=false"]);
    node.apply(&predictor_yaml("0.2", &url_b, sha_b));
    wait_serving(node, sha_b, "model B served again after section 13");
}

/// `predictor <args>` (the static binary) on the host with `env`, as a team's CI runs it; its stdout.
fn predictor_with_env(args: &[&str], env: &[(&str, String)]) -> String {
    let bin = std::env::var("PREDICTOR_BIN").expect("PREDICTOR_BIN: the static predictor binary");
    let mut command = Command::new(bin);
    command.args(args).env_remove("REGISTRY_AUTH_FILE");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("run predictor");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "predictor {args:?}: {text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `name: value` line of `predictor publish`'s output.
fn published(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name}: line in\n{out}"))
        .to_string()
}

/// Issue 18: models in the node's S3 store (SeaweedFS on the node IP) and as OCI artifacts in its
/// registry, published by `predictor publish` and read by the pods and the operator's pre-flight with
/// the credentials of one Secret; model-only rollouts http -> s3:// -> oci:// under load, 0 failed.
fn model_stores_under_load(node: &Node, base: &str, models: &HashMap<String, String>) {
    let (model_t, sha_t) = (&models["MODEL_T"], &models["MODEL_T_SHA256"]);
    let (model_a, sha_a) = (&models["MODEL_A"], &models["MODEL_A_SHA256"]);
    let t_store = Instant::now();
    let endpoint = node.script("s3-store.sh", &["start"], Duration::from_secs(900));
    let endpoint = endpoint.trim().to_string();
    assert_eq!(endpoint, "http://10.77.0.1:8333");
    eprintln!(
        "[node test] S3 store (SeaweedFS) on {endpoint} in {:.1} s",
        t_store.elapsed().as_secs_f64()
    );
    let store_env: HashMap<String, String> =
        std::fs::read_to_string(node.state.join("s3/credentials.env"))
            .expect("the S3 store's credentials.env")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let (key, secret) = (
        store_env["AWS_ACCESS_KEY_ID"].clone(),
        store_env["AWS_SECRET_ACCESS_KEY"].clone(),
    );
    let docker_config = std::fs::read_to_string(node.state.join("registry/auth.json")).unwrap();
    let registry_password = std::fs::read_to_string(node.state.join("registry/password")).unwrap();
    let ca = std::fs::read_to_string(node.state.join("pki/ca.crt")).unwrap();

    // A team's CI publishes: model T to S3, model A to the registry as an OCI artifact.
    let s3_url = "s3://models/american/model-t.bin";
    let out = predictor_with_env(
        &[
            "publish",
            node.model_file(model_t).to_str().unwrap(),
            "--to",
            s3_url,
        ],
        &[
            ("AWS_ENDPOINT_URL", endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", key.clone()),
            ("AWS_SECRET_ACCESS_KEY", secret.clone()),
        ],
    );
    assert_eq!(published(&out, "url"), s3_url);
    assert_eq!(&published(&out, "sha256"), sha_t);
    let out = predictor_with_env(
        &[
            "publish",
            node.model_file(model_a).to_str().unwrap(),
            "--to",
            "oci://10.77.0.1:5443/mlops/models/american:a",
        ],
        &[
            ("PREDICTOR_REGISTRY_AUTH", docker_config.clone()),
            ("PREDICTOR_STORE_CA", ca.clone()),
        ],
    );
    let oci_url = published(&out, "url");
    assert!(
        oci_url.starts_with("oci://10.77.0.1:5443/mlops/models/american@sha256:"),
        "{oci_url}"
    );
    assert_eq!(&published(&out, "sha256"), sha_a);

    // One Secret for both stores: the S3 keys and the endpoint they are for, the registry's docker
    // config and its CA; labelled by its owner for Predictors to use.
    node.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {STORE_SECRET}\n  namespace: {NS}\n  \
         labels: {{mlops.dev/model-credentials: \"true\"}}\ntype: Opaque\n\
         data:\n  AWS_ENDPOINT_URL: {}\n  AWS_ACCESS_KEY_ID: {}\n  AWS_SECRET_ACCESS_KEY: {}\n  \
         .dockerconfigjson: {}\n  ca.crt: {}\n",
        b64(endpoint.as_bytes()),
        b64(key.as_bytes()),
        b64(secret.as_bytes()),
        b64(docker_config.as_bytes()),
        b64(ca.as_bytes()),
    ));
    let stored = |url: &str, sha: &str| {
        let mut p = predictor_object("0.2", url, sha);
        p.spec.model.credentials = Some(STORE_SECRET.into());
        if url.starts_with("s3://") {
            p.spec.model.s3 = Some(S3Spec {
                endpoint: Some(endpoint.clone()),
                ..S3Spec::default()
            });
        }
        manifest(&[p])
    };
    let on = |sha: &str| {
        let sha = sha.to_string();
        move |p: &Value| {
            p["status"]["modelSha256"] == sha.as_str()
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2
        }
    };
    for (what, url, sha) in [
        ("model-only change from http:// to s3://", s3_url, sha_t),
        (
            "model-only change from s3:// to oci://",
            oci_url.as_str(),
            sha_a,
        ),
    ] {
        let r = measure_rollout(
            node,
            base,
            &stored(url, sha),
            &["--until-model", sha],
            &on(sha),
        );
        assert_clean_rollout(what, &r);
        let p = node.predictor();
        assert!(condition_is(&p, "ModelVerified", "True"), "{what}: {p}");
    }

    // The pods got the credentials by reference; no secret in any object, Event or operator log.
    for pod in pods(node) {
        let env = &pod["spec"]["containers"][0]["env"];
        let secret_ref = env
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "AWS_SECRET_ACCESS_KEY")
            .unwrap_or_else(|| panic!("no AWS_SECRET_ACCESS_KEY in {env}"));
        assert_eq!(
            secret_ref["valueFrom"]["secretKeyRef"]["name"],
            STORE_SECRET
        );
    }
    let texts = [
        node.kubectl_ok(&["get", "predictor", NAME, "-n", NS, "-o", "yaml"]),
        node.kubectl_ok(&["get", "deployment", NAME, "-n", NS, "-o", "yaml"]),
        node.kubectl_ok(&["get", "pods", "-n", NS, "-o", "yaml"]),
        node.kubectl_ok(&["get", "events", "-n", NS]),
        node.kubectl_ok(&["logs", "-n", OPERATOR_NS, "-l", OPERATOR_LABEL, "--tail=-1"]),
        node.kubectl_ok(&[
            "logs",
            "-n",
            NS,
            "-l",
            &format!("app.kubernetes.io/instance={NAME}"),
            "--tail=-1",
        ]),
    ];
    for text in &texts {
        for leaked in [secret.as_str(), registry_password.trim()] {
            assert!(!text.contains(leaked), "a store credential leaked:\n{text}");
        }
    }
    eprintln!(
        "[node test] model stores: http -> s3:// -> oci:// with 0 failed requests, no credential shown"
    );
}

#[test]
#[ignore = "needs root, kubelet, containerd, runc, CNI, kube-proxy, docker-registry, coredns, static PREDICTOR_BIN/OPERATOR_BIN: ./dev/test runs it"]
fn predictors_run_and_roll_out_on_a_real_node() {
    require_node_prerequisites();
    predictor::tls::install_crypto_provider();
    let tweets = repo_root().join("../shared/data/tweets");
    let node = Node::up();
    let models = node.models();
    let (model_t, sha_t) = (&models["MODEL_T"], &models["MODEL_T_SHA256"]);
    let (model_b, sha_b) = (&models["MODEL_B"], &models["MODEL_B_SHA256"]);
    let model_a = &models["MODEL_A"];

    // Namespace (Pod Security "restricted", the registry pull Secret) + the in-cluster model store,
    // named by its cluster DNS name.
    let store = node.script("model-store.sh", &[NS], Duration::from_secs(180));
    let store = store.trim();
    assert_eq!(store, format!("http://model-store.{NS}.svc:8080"));

    // --- 1. the operator as users install it: kubectl apply -k, 2 pods, one leads ----------------
    let t_op = Instant::now();
    let leader = node.script("operator.sh", &[], Duration::from_secs(300));
    let leader = leader.trim().to_string();
    eprintln!(
        "[node test] operator installed with kubectl apply -k (config/default + dev/node/operator-overlay) \
         and leading in {:.1} s: leader {leader}",
        t_op.elapsed().as_secs_f64()
    );
    eprintln!(
        "{}",
        node.kubectl_ok(&["get", "pods", "-n", OPERATOR_NS, "-o", "wide"])
    );
    let ops = operator_pods(&node);
    assert_eq!(ops.len(), 2, "two operator pods");
    for pod in &ops {
        assert_eq!(pod["status"]["phase"], "Running", "{pod}");
        assert_eq!(pod["spec"]["containers"][0]["image"], OPERATOR_IMAGE);
        assert_eq!(pod["spec"]["imagePullSecrets"][0]["name"], PULL_SECRET);
        // In-cluster config: the service account token, no kubeconfig.
        assert_eq!(pod["spec"]["serviceAccountName"], "predictor-operator");
        assert!(pod_env(pod, "KUBECONFIG").is_none(), "{pod}");
    }
    assert!(
        ops.iter().any(|p| p["metadata"]["name"] == leader.as_str()),
        "the Lease holder {leader} is one of the operator pods"
    );
    let ns = node.json(&["get", "namespace", OPERATOR_NS]);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    assert_pulled(&node, OPERATOR_NS, OPERATOR_IMAGE);

    // --- 2. READY 2/2 with real containers, pulled from the registry -----------------------------
    let t0 = Instant::now();
    node.apply(&predictor_yaml("0.1", &format!("{store}/{model_t}"), sha_t));
    let p = wait_for(Duration::from_secs(120), "Predictor Ready 2/2", || {
        let p = node.predictor();
        (condition_is(&p, "Ready", "True") && p["status"]["ready"] == "2/2").then_some(p)
    });
    eprintln!(
        "[node test] Predictor READY 2/2 {:.1} s after kubectl apply (image pulled from the registry)",
        t0.elapsed().as_secs_f64()
    );
    assert_pulled(&node, NS, &format!("{IMAGE}:0.1"));
    let table = node.kubectl_ok(&["get", "predictors", "-n", NS]);
    eprintln!("{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], [NAME, "2/2", "0.1", &sha_t[..12]], "{table}");
    assert_eq!(p["status"]["modelSha256"], sha_t.as_str());
    let url = p["status"]["url"].as_str().expect("status.url").to_string();
    assert_eq!(url, format!("http://{NAME}.{NS}.svc:5008/api/american"));
    assert_eq!(row[4], url, "URL column: {table}");
    let ip = node.kubectl_ok(&[
        "get",
        "service",
        NAME,
        "-n",
        NS,
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    // The rollout probes below run on the host, through the ClusterIP.
    let base = format!("http://{ip}:5008");

    // The contract at status.url, by its DNS name, from the pod network (cluster DNS -> ClusterIP ->
    // kube-proxy DNAT to a pod). kube-proxy programs a new Service within about a second.
    let t_svc = Instant::now();
    let body = wait_for(Duration::from_secs(20), "status.url answers", || {
        let out = in_pod_network(
            "curl",
            &[
                "-sS",
                "--fail-with-body",
                "--max-time",
                "5",
                "-H",
                "content-type: application/json",
                "-d",
                r#"{"text": "Traffic on I-95 is a nightmare this morning, go Yankees"}"#,
                &url,
            ],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    eprintln!(
        "[node test] curl {url} (DNS name, from netns {CLIENT_NETNS}) answered {:.1} s after Ready: {body}",
        t_svc.elapsed().as_secs_f64()
    );
    let answer: Value = serde_json::from_str(&body).expect("a JSON answer");
    assert!(
        answer["is_american"] == 0 || answer["is_american"] == 1,
        "{answer}"
    );
    assert_eq!(answer["version"], "0.1", "{answer}");
    assert_eq!(answer["model"], &sha_t[..12], "{answer}");
    assert!(
        answer["model_date"]
            .as_str()
            .unwrap()
            .starts_with("2026-03-01"),
        "{answer}"
    );

    // `eval --url` by the DNS name, from the pod network, reproduces the offline evaluation.
    let test_csv = tweets.join("test.csv").display().to_string();
    let offline = accuracy_line(&predictor_cli(&[
        "eval",
        "--model",
        &node.model_file(model_t).display().to_string(),
        "--data",
        &test_csv,
    ]));
    let dns_base = url.strip_suffix("/api/american").unwrap();
    let predictor_bin = std::env::var("PREDICTOR_BIN").unwrap();
    let live = accuracy_line(&in_pod_network(
        &predictor_bin,
        &["eval", "--url", dns_base, "--data", &test_csv],
    ));
    eprintln!("[node test] offline: {offline} | {dns_base} from the pod network: {live}");
    assert_eq!(offline, live);

    // --- 6. restricted pods: the API's view and the kernel's --------------------------------------
    let ns = node.json(&["get", "namespace", NS]);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    for pod in pods(&node) {
        let c = &pod["spec"]["containers"][0]["securityContext"];
        assert_eq!(c["readOnlyRootFilesystem"], true, "{pod}");
        assert_eq!(c["allowPrivilegeEscalation"], false, "{pod}");
        assert_eq!(c["capabilities"]["drop"][0], "ALL", "{pod}");
        assert_eq!(
            pod["spec"]["securityContext"]["runAsNonRoot"], true,
            "{pod}"
        );
        assert_eq!(pod["spec"]["imagePullSecrets"][0]["name"], PULL_SECRET);
    }
    let pids = predictor_pids();
    assert_eq!(pids.len(), 2, "two predictor processes on the node");
    for pid in pids {
        let (uid, caps, root_ro) = process_facts(pid);
        assert_eq!(uid, "65532", "pid {pid} uid");
        assert_eq!(caps, "0000000000000000", "pid {pid} has capabilities");
        assert!(root_ro, "pid {pid}: root filesystem is writable");
    }
    // Issue 26, `/drain` off the network: inside each pod's own network namespace, a POST /drain from
    // 127.0.0.6 (where a mesh's sidecar proxy connects from) and from 127.0.0.1 both get the unknown
    // route's 404 and the pod stays ready; the drain socket is in the pod's emptyDir, its user's only.
    let port = pods(&node)[0]["spec"]["containers"][0]["ports"][0]["containerPort"]
        .as_i64()
        .unwrap();
    for pid in predictor_pids() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let socket =
            std::fs::symlink_metadata(format!("/proc/{pid}/root/run/predictor/drain.sock"))
                .unwrap_or_else(|e| panic!("pid {pid}: no drain socket: {e}"));
        assert!(socket.file_type().is_socket(), "pid {pid}");
        assert_eq!(
            (socket.mode() & 0o777, socket.uid()),
            (0o600, 65532),
            "pid {pid}"
        );
        let status_in_pod = |args: &[&str]| {
            let out = Command::new("nsenter")
                .args(["--target", &pid.to_string(), "--net", "curl", "-s"])
                .args(["-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"])
                .args(args)
                .output()
                .expect("run nsenter curl");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        for source in ["127.0.0.6", "127.0.0.1"] {
            let drain = format!("http://127.0.0.1:{port}/drain");
            let status = status_in_pod(&["--interface", source, "-X", "POST", &drain]);
            assert_eq!(status, "404", "pid {pid}: POST /drain from {source}");
        }
        let readyz = format!("http://127.0.0.1:{port}/readyz");
        assert_eq!(status_in_pod(&[&readyz]), "200", "pid {pid} still ready");
    }
    // The namespace really enforces: a root pod is refused at admission.
    let refused = run_kubectl(
        &node.bin,
        &node.kubeconfig,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: root, namespace: {NS}}}\nspec:\n  containers:\n  \
         - {{name: c, image: {IMAGE}:0.1, securityContext: {{runAsUser: 0}}}}\n"
        )),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("violates PodSecurity"),
        "{stderr}"
    );

    // --- 3a. image tag 0.1 -> 0.2 under load, the pull from the registry in the path --------------
    let url_t = format!("{store}/{model_t}");
    let r = measure_rollout(
        &node,
        &base,
        &predictor_yaml("0.2", &url_t, sha_t),
        &["--until-version", "0.2"],
        &|p| {
            p["status"]["version"] == "0.2"
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2
        },
    );
    assert_clean_rollout("image 0.1 -> 0.2 (pulled from the registry)", &r);
    assert_pulled(&node, NS, &format!("{IMAGE}:0.2"));
    for pod in pods(&node) {
        if pod["metadata"]["deletionTimestamp"].is_null() {
            let image = &pod["spec"]["containers"][0]["image"];
            assert!(
                image_is(image, &format!("{IMAGE}:0.2")),
                "pod image {image}"
            );
        }
    }

    // --- 3b. model-only change under load ----------------------------------------------------------
    let url_b = format!("{store}/{model_b}");
    let r = measure_rollout(
        &node,
        &base,
        &predictor_yaml("0.2", &url_b, sha_b),
        &["--until-model", sha_b],
        &|p| {
            p["status"]["modelSha256"] == sha_b.as_str()
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2
        },
    );
    assert_clean_rollout("model-only change", &r);

    // --- 13. hostile tenants beside another team's rollout (issue 26) ------------------------------
    hostile_tenants_under_load(&node, &base, store, &models);

    // --- 12. model stores: s3:// and oci:// models, a rollout from one store to the other ------------
    model_stores_under_load(&node, &base, &models);

    // --- issue 8: a predictor pod deleted, then one SIGKILLed, under load ---------------------------
    pod_faults_under_load(&node, &base);

    // --- 4. the leader operator pod deleted while a Predictor change is applied ---------------------
    let old_leader = lease_holder(&node).expect("a Lease holder");
    let t_hand = Instant::now();
    node.kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        OPERATOR_NS,
        &old_leader,
        "--wait=false",
    ]);
    node.apply(&predictor_yaml("0.2", &url_t, sha_t));
    let ready_s = wait_for(
        Duration::from_secs(120),
        "the change made during the hand-over rolled out",
        || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True")
                && p["status"]["modelSha256"] == sha_t.as_str()
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2)
                .then(|| t_hand.elapsed().as_secs_f64())
        },
    );
    let new_leader = wait_for(Duration::from_secs(60), "a new Lease holder", || {
        lease_holder(&node).filter(|h| *h != old_leader)
    });
    eprintln!(
        "[node test] leader {old_leader} deleted + Predictor changed: Ready on the change after {ready_s:.1} s, \
         Lease now held by {new_leader}"
    );
    let holder = operator_settled(&node, "2 operator pods again, one leading", &|_| true);
    assert_ne!(holder, old_leader);

    // --- 5. wrong digest with the pre-flight check off: old pods keep serving ------------------------
    // The check is turned off the way a user would: the operator Deployment's env, then restored.
    node.kubectl_ok(&[
        "set",
        "env",
        "-n",
        OPERATOR_NS,
        "deployment/predictor-operator",
        "SKIP_MODEL_CHECK=true",
    ]);
    operator_settled(
        &node,
        "the operator with SKIP_MODEL_CHECK=true leading",
        &|p| pod_env(p, "SKIP_MODEL_CHECK") == Some("true"),
    );
    let watch = Watch::start(&node, "wrong-digest", &base, &["--max-duration", "40s"]);
    let t_bad = Instant::now();
    // model-a's file, pinned to model-b's digest: every new pod refuses it.
    node.apply(&predictor_yaml("0.2", &format!("{store}/{model_a}"), sha_b));
    let degraded = wait_for(Duration::from_secs(60), "Predictor Degraded", || {
        let p = node.predictor();
        condition_is(&p, "Degraded", "True").then_some(p)
    });
    eprintln!(
        "[node test] Degraded after {:.1} s: {}",
        t_bad.elapsed().as_secs_f64(),
        condition(&degraded, "Degraded").unwrap()
    );
    let message = condition(&degraded, "Degraded").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("old pods keep serving"), "{message}");
    assert_eq!(
        degraded["status"]["modelSha256"],
        sha_t.as_str(),
        "status keeps what the ready pods serve"
    );
    // The new pod says why, in its log.
    let new_pod = pods(&node)
        .into_iter()
        .find(|p| p["status"]["containerStatuses"][0]["ready"] == false)
        .expect("a new, not-ready pod");
    let logs = node.kubectl_ok(&[
        "logs",
        "-n",
        NS,
        new_pod["metadata"]["name"].as_str().unwrap(),
    ]);
    assert!(logs.contains("sha256 mismatch"), "{logs}");
    // Only the old release and model answered.
    assert_watch_clean("during the bad rollout", watch, &["0.2"]);
    node.kubectl_ok(&[
        "set",
        "env",
        "-n",
        OPERATOR_NS,
        "deployment/predictor-operator",
        "SKIP_MODEL_CHECK-",
    ]);
    operator_settled(&node, "the operator with the model check back on", &|p| {
        pod_env(p, "SKIP_MODEL_CHECK").is_none()
    });

    // --- 8. images: refused before they roll out, pinned by digest, a registry down mid-rollout -------
    image_faults_under_load(&node, &base, &url_t, sha_t);

    // --- 9. the offline quality gate: a worse model with a valid digest never serves ---------------
    quality_gate_under_load(&node, &base, store, &models);

    // --- 10. the online gate: Canary + shadow rolls a worse model back, promotes a better one -------
    online_gate_under_load(&node, &base, store, &models);

    // --- 11. autoscaling under ArgoCD: up with the load, down after it, 0 failed requests ------------
    autoscaling_under_argocd(&node, store, &models);

    // --- 7. image sizes ----------------------------------------------------------------------------
    let sizes: Vec<(String, u64)> = std::fs::read_dir(node.state.join("images"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_str()?.strip_suffix(".tar")?.to_string();
            Some((name, e.metadata().ok()?.len()))
        })
        .collect();
    for (name, bytes) in &sizes {
        eprintln!(
            "[node test] image {name}: {:.2} MB ({bytes} bytes, docker-archive)",
            *bytes as f64 / 1e6
        );
    }
    let predictor_image = sizes
        .iter()
        .find(|(n, _)| n.starts_with("american-predictor"))
        .expect("predictor image");
    assert!(
        predictor_image.1 < 10_000_000,
        "predictor image {} bytes",
        predictor_image.1
    );
    assert!(
        sizes
            .iter()
            .any(|(n, _)| n.starts_with("predictor-operator")),
        "operator image built"
    );
    // No operator pod restarted along the way (the deleted leader was replaced, not restarted).
    for pod in operator_pods(&node) {
        assert_eq!(
            pod["status"]["containerStatuses"][0]["restartCount"], 0,
            "operator pod restarted: {pod}"
        );
    }
}
