//! Node tier: the product installed the way users install it, on a real single node that is a
//! cluster like a user's (kubelet + containerd + runc + CNI bridge + kube-proxy, a private registry
//! with TLS and htpasswd, CoreDNS cluster DNS; `dev/node/up.sh` starts it, `dev/node/down.sh` stops
//! it). One node is brought up for the whole binary; the scenarios below run on it in this order,
//! each its own test, so one can run alone:
//! `cargo test -p operator --test node -- canary --include-ignored` brings the node up, installs the
//! operator, makes the Predictor READY and runs the canary scenario only.
//!
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
//! 14. ArgoCD's web UI (issue 29) in Chromium, at NodePort 32535: a team logs in, changes its password
//!     in User Info, creates its application in the New App form and follows the Predictor's health in
//!     the resource tree (Healthy; Progressing under a canary's analysis; Degraded once rolled back,
//!     0 failed requests); another team sees none of it. Screenshots of each step.
//! 15. Drift (issue 31): team-a's Predictor, synced by ArgoCD with `spec.monitoring.drift`, asked about
//!     tweets like its training set (Drift False), then only about authors abroad (True, the signal
//!     named), then as first (False); Ready, Healthy and the pods unmoved throughout; a format-1 model
//!     file serves with Drift Unknown (NoReference).
//! 16. More than one node (issue 30): two workers join (dev/node/worker.sh); 2 replicas on 2 nodes and
//!     3 on 3; both workers drained at once under the probe, beside team-a's Predictor delivered by
//!     ArgoCD (the PodDisruptionBudget makes the second eviction wait; 0 failed requests, the
//!     Application Healthy throughout); a node lost under the probe (the window of failed requests
//!     measured, READY saying so, the pod replaced, the node back without a flap); autoscaled, the
//!     budget following minReplicas and the new pods spread; the operator leader's node lost (another
//!     pod leads within the Lease). The workers leave after it.
//! 17. The operator by Helm (issue 28, last: it replaces the operator pods): the `kubectl apply -k`
//!     installation removed as docs/install.md says, `helm install` of charts/predictor-operator
//!     with the node's values, `helm upgrade` to a new image tag, `helm uninstall` (the Predictor
//!     keeps serving, unreconciled) and `helm install` again (the change made meanwhile rolls out),
//!     all under `predictor probe` with 0 failed requests.
//!
//! A scenario that fails prints what the node looked like; the scenarios after it on the same node
//! fail at once, naming it (they would only wait out their timeouts on a node in an unknown state).
//!
//! Root only, one node at a time on a machine (`flock /tmp/mlops-node.lock`). Ignored by a plain
//! `cargo test`; `./dev/test` runs it as root with `PREDICTOR_BIN`/`OPERATOR_BIN` (static release
//! builds that go into the images). When selected without them it fails at once and says what to
//! install.
//!
//! NB: its own harness (libtest-mimic, `harness = false`): libtest has no fixture shared by tests
//! that is torn down after the last one, and the node must go down (`down.sh`) when the run ends.

#[path = "../support/mod.rs"]
mod support;

mod argocd_ui;
mod autoscaling;
mod cluster;
mod drift;
mod gates;
mod helm;
mod hostile;
mod images;
mod install;
mod looks;
mod nodes;
mod probe;
mod rollouts;
mod stores;

use std::any::Any;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{NS, Node, condition_is, predictor_yaml, require_node_prerequisites, wait_for};
use libtest_mimic::{Arguments, Failed, Trial};

/// What every scenario starts from: the node, its in-cluster model store, the operator installed
/// and leading, and the Predictor READY 2/2 on image 0.1 with model T.
pub(crate) struct Setup {
    pub(crate) node: Node,
    /// The model store by its cluster DNS name, `http://model-store.<ns>.svc:8080`.
    pub(crate) store: String,
    /// The Predictor's Service by its ClusterIP: the rollout probes run on the host.
    pub(crate) base: String,
    /// The model files and their sha256 (dev/node/images.sh's models.env).
    pub(crate) models: HashMap<String, String>,
    /// The operator pod that held the Lease once installed.
    pub(crate) leader: String,
}

impl Setup {
    /// The store URL of model `key` (`MODEL_T`, `MODEL_A`, `MODEL_B`) and its sha256.
    pub(crate) fn model(&self, key: &str) -> (String, &str) {
        let file = &self.models[key];
        let sha = &self.models[&format!("{key}_SHA256")];
        (format!("{}/{file}", self.store), sha)
    }
}

type Scenario = fn(&Setup);

/// The scenarios, in the order they run on the one node.
const SCENARIOS: &[(&str, Scenario)] = &[
    (
        "operator_installed_with_kubectl_apply_k",
        install::operator_installed,
    ),
    (
        "ready_and_answering_by_dns_name",
        install::ready_and_answering,
    ),
    (
        "restricted_pods_and_drain_off_the_network",
        install::restricted_pods,
    ),
    ("image_rollout_under_load", rollouts::image_rollout),
    ("model_rollout_under_load", rollouts::model_rollout),
    (
        "hostile_tenants_beside_a_rollout",
        hostile::hostile_tenants_under_load,
    ),
    ("model_stores_http_s3_oci", |s| {
        stores::model_stores_under_load(&s.node, &s.base, &s.models)
    }),
    ("pod_deleted_and_killed_under_load", |s| {
        rollouts::pod_faults_under_load(&s.node, &s.base)
    }),
    ("leader_handover_during_a_change", rollouts::leader_handover),
    ("wrong_digest_old_pods_keep_serving", rollouts::wrong_digest),
    ("image_faults", |s| {
        let (url_t, sha_t) = s.model("MODEL_T");
        images::image_faults_under_load(&s.node, &s.base, &url_t, sha_t)
    }),
    ("quality_gate_offline", gates::quality_gate_under_load),
    ("canary_online_gate", gates::online_gate_under_load),
    ("autoscaling_under_argocd", |s| {
        autoscaling::autoscaling_under_argocd(&s.node, &s.store, &s.models)
    }),
    ("argocd_web_ui", argocd_ui::argocd_web_ui),
    ("drift_under_argocd", drift::drift_under_load),
    ("nodes_spread_and_two_drained", nodes::spread_and_drain),
    ("nodes_one_lost_under_load", nodes::node_lost),
    ("nodes_autoscaled_spread", nodes::autoscaled_spread),
    ("nodes_operator_leader_lost", nodes::leader_node_lost),
    ("image_sizes", install::image_sizes),
    ("no_operator_pod_restarted", install::no_operator_restarts),
    // Replaces the operator pods: after the scenarios that count their restarts.
    (
        "operator_by_helm_install_upgrade_uninstall",
        helm::operator_by_helm,
    ),
];

/// The node of this run: brought up by the first scenario selected, down when the run ends.
#[derive(Default)]
struct Shared {
    setup: Option<Setup>,
    /// Why the scenarios left cannot run: the setup or an earlier scenario failed.
    broken: Option<String>,
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // One node: the scenarios run one after another, in order, on the main thread.
    args.test_threads = Some(1);
    let shared = Arc::new(Mutex::new(Shared::default()));
    let trials = SCENARIOS
        .iter()
        .map(|&(name, scenario)| {
            let shared = shared.clone();
            Trial::test(name, move || run(&shared, name, scenario)).with_ignored_flag(true)
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    // down.sh, before the exit code.
    drop(lock(&shared).setup.take());
    conclusion.exit_code()
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one scenario on the node (bringing it up first if no scenario has yet).
fn run(shared: &Mutex<Shared>, name: &str, scenario: Scenario) -> Result<(), Failed> {
    let mut shared = lock(shared);
    if let Some(why) = &shared.broken {
        return Err(format!("not run: {why}").into());
    }
    if shared.setup.is_none() {
        match catch_unwind(set_up) {
            Ok(setup) => shared.setup = Some(setup),
            Err(panic) => {
                shared.broken = Some(format!("the node's setup failed in {name}"));
                return Err(panic_message(panic).into());
            }
        }
    }
    let setup = shared.setup.as_ref().expect("set up");
    let panic = match catch_unwind(AssertUnwindSafe(|| scenario(setup))) {
        Ok(()) => return Ok(()),
        Err(panic) => panic,
    };
    setup.node.diagnose();
    shared.broken = Some(format!("{name} failed before it on the same node"));
    Err(panic_message(panic).into())
}

fn panic_message(panic: Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

/// The node up, the model store in it, the operator installed as users install it, and the
/// Predictor READY 2/2 on image 0.1 with model T.
fn set_up() -> Setup {
    require_node_prerequisites();
    model_store::tls::install_crypto_provider();
    let node = Node::up();
    let models = node.models();
    match catch_unwind(AssertUnwindSafe(|| settle(&node, &models))) {
        Ok((store, leader, base)) => Setup {
            models,
            node,
            store,
            base,
            leader,
        },
        Err(panic) => {
            node.diagnose();
            resume_unwind(panic)
        }
    }
}

/// On a node just up: (the store URL, the leading operator pod, the Service's base URL).
fn settle(node: &Node, models: &HashMap<String, String>) -> (String, String, String) {
    let (model_t, sha_t) = (&models["MODEL_T"], &models["MODEL_T_SHA256"]);
    // Namespace (Pod Security "restricted", the registry pull Secret) + the in-cluster model store,
    // named by its cluster DNS name.
    let store = node.script("model-store.sh", &[NS], Duration::from_secs(180));
    let store = store.trim().to_string();
    assert_eq!(store, format!("http://model-store.{NS}.svc:8080"));

    let t_op = Instant::now();
    let leader = node.script("operator.sh", &[], Duration::from_secs(300));
    let leader = leader.trim().to_string();
    eprintln!(
        "[node test] operator installed with kubectl apply -k (config/default + dev/node/operator-overlay) \
         and leading in {:.1} s: leader {leader}",
        t_op.elapsed().as_secs_f64()
    );

    let t0 = Instant::now();
    node.apply(&predictor_yaml("0.1", &format!("{store}/{model_t}"), sha_t));
    wait_for(Duration::from_secs(120), "Predictor Ready 2/2", || {
        let p = node.predictor();
        (condition_is(&p, "Ready", "True") && p["status"]["ready"] == "2/2").then_some(())
    });
    eprintln!(
        "[node test] Predictor READY 2/2 {:.1} s after kubectl apply (image pulled from the registry)",
        t0.elapsed().as_secs_f64()
    );
    (store, leader, cluster::service_base(node, NS))
}
