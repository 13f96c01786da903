//! Scale benchmark (not a test): creates 1,000 Predictors on a fresh control plane with kwok nodes
//! and reports how long the operator takes to reconcile all of them, how long until all are Ready
//! (pods scheduled and made ready by kwok), the operator's peak RSS, its apiserver writes per
//! Predictor and its CPU seconds as a share of the control plane's, in the same run.
//!
//! The pre-flights run for real: every Predictor names the same model on a loopback file server
//! and an image tag in a loopback `docker-registry` (htpasswd, a pull Secret in the namespace), so
//! the operator downloads and verifies the model once and resolves the tag once, then pins its
//! digest in each Deployment. The operator may connect to loopback only (`MLOPS_EGRESS_ONLY`).
//!
//! "Reconciled" means, for every Predictor: its Deployment and its Service exist, and its status
//! was written for its current generation (`status.observedGeneration == metadata.generation`).
//! The benchmark follows all three kinds with watches (not repeated lists), so it adds little load.
//!
//! Targets (a miss prints `[scale] MISSED: …` with the operator's log and exits 1): all reconciled
//! and Ready, within 1.25 x the control plane's CPU seconds per core (the wall time follows the
//! machine's speed: the same requests took 86-115 control-plane CPU seconds in three runs here);
//! peak RSS < 64 MiB; <= 4 writes per Predictor; operator CPU <= 5 % of the control plane's.
//! 2026-12-05, 2 cores, release build, three runs: all reconciled after 48.6, 64.4 and 63.5 s
//! (1.13, 1.12, 1.12 x the floor; Ready 0.3 s later), peak RSS 57.8 MiB, 4.00 writes per Predictor
//! (Deployment 1, Service 1, status 2: one when the rollout begins, one when Ready; no Events),
//! operator CPU 3.6-5.2 s = 4.2-4.6 % of the control plane's (kube-apiserver 62-81 s). `SCALE_SMOKE=1`
//! (CI, a debug build, 50 Predictors): all reconciled within 120 s, RSS < 128 MiB, <= 6 writes.
//!
//! Run: `MLOPS_K8S_BIN=… cargo bench -p operator --bench scale`. Env: `SCALE_PREDICTORS` (1000),
//! `SCALE_REPLICAS` (1; 0 leaves out the pods), `SCALE_CONCURRENCY` (the operator's `--concurrency`,
//! 32), `SCALE_SMOKE=1`, `SCALE_IMAGE` (another image for every Predictor, e.g. one that cannot
//! resolve: the bench then fails, having reconciled nothing).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::PostParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use model_store::testing::FileServer;
use operator::crd::Predictor;
use support::manifests::predictor;
use support::registry::{PASSWORD, Registry, pull_secret};
use support::{ServedModel, TestCluster, client_for};

const NAMESPACE: &str = "scale";
const REPOSITORY: &str = "bench/american-predictor";
const PULL_SECRET: &str = "registry-bench";
/// What a run must meet, or it exits 1 naming what it missed.
struct Bounds {
    /// All reconciled after (seconds from the first create), at most.
    reconciled_s: Option<f64>,
    /// All reconciled after, at most this many times the control plane's CPU seconds per core:
    /// the operator keeps up with what the machine can do. (Its wall time tracks the machine's
    /// speed: three runs of the same requests here took 86-115 control-plane CPU seconds.)
    floor_ratio: Option<f64>,
    rss_mib: f64,
    /// Deployment, Service, status and Events, all kinds, per Predictor.
    writes: f64,
    /// The operator's CPU seconds against the control plane's (etcd, apiserver, KCM, scheduler,
    /// kwok); none in a smoke run, whose build and size say nothing about it.
    cpu_percent: Option<f64>,
    /// How long to wait for all to be Ready before giving up.
    deadline: Duration,
}

/// The figures the bench exists for (release build, 1,000 Predictors).
const TARGETS: Bounds = Bounds {
    reconciled_s: None,
    floor_ratio: Some(1.25),
    rss_mib: 64.0,
    writes: 4.0,
    cpu_percent: Some(5.0),
    deadline: Duration::from_secs(600),
};

/// `SCALE_SMOKE=1` (CI, a debug build, ~50 Predictors): generous bounds that still fail a bench
/// that stopped measuring (nothing reconciled, a write storm, a leak).
const SMOKE: Bounds = Bounds {
    reconciled_s: Some(120.0),
    floor_ratio: None,
    rss_mib: 128.0,
    writes: 6.0,
    cpu_percent: None,
    deadline: Duration::from_secs(150),
};

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("SCALE_PREDICTORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let concurrency = std::env::var("SCALE_CONCURRENCY").unwrap_or_else(|_| "32".into());
    // 0 isolates the operator from the pod machinery (no ReplicaSet pods for KCM/scheduler/kwok).
    let replicas: i32 = std::env::var("SCALE_REPLICAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let smoke = std::env::var("SCALE_SMOKE").is_ok_and(|v| v == "1");
    let bounds = if smoke { SMOKE } else { TARGETS };
    if cfg!(debug_assertions) && !smoke {
        eprintln!(
            "[scale] a debug build: its CPU and RSS are not the release's (use `cargo bench`)"
        );
    }
    let load_before = load_average();
    let setup = Instant::now();
    let cluster = TestCluster::start(2);
    let operator_kubeconfig = cluster.install_operator_prerequisites();
    cluster.create_namespace(NAMESPACE);
    let files = FileServer::start();
    let model = ServedModel::put(&files, "/models/a.model", "2026-11-24T00:00:00Z");
    // The image pre-flight runs for real: every Predictor names a tag in a private loopback
    // registry, with a pull Secret, as a team's would.
    let registry_dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::start(registry_dir.path());
    registry.push(REPOSITORY, "0.2", 2).await;
    // SCALE_IMAGE names another image (e.g. one that cannot resolve, to see the bench fail).
    let image = std::env::var("SCALE_IMAGE")
        .unwrap_or_else(|_| format!("{}/{REPOSITORY}:0.2", registry.host));
    let operator = cluster.start_operator(
        "operator-bench",
        &operator_kubeconfig,
        &["--concurrency", &concurrency],
    );
    let client = client_for(&cluster.kubeconfig).await;
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(
            &PostParams::default(),
            &pull_secret(PULL_SECRET, &registry.docker_config(PASSWORD)),
        )
        .await
        .expect("create the pull Secret");
    let predictors: Api<Predictor> = Api::namespaced(client.clone(), NAMESPACE);
    let predictor_store = follow(predictors.clone());
    let deployment_store = follow(Api::<Deployment>::namespaced(client.clone(), NAMESPACE));
    let service_store = follow(Api::<Service>::namespaced(client.clone(), NAMESPACE));
    eprintln!("[scale] setup took {:.1}s", setup.elapsed().as_secs_f64());

    // Create them all, 32 requests in flight.
    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let predictors = predictors.clone();
            let model = model.clone();
            let image = image.clone();
            async move {
                let mut p = predictor(&format!("p-{i:04}"), &image, &model, replicas);
                p.spec.image_pull_secrets = vec![PULL_SECRET.into()];
                predictors
                    .create(&PostParams::default(), &p)
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("create predictors");
    let created = started.elapsed();
    eprintln!(
        "[scale] created {count} Predictors in {:.1}s",
        created.as_secs_f64()
    );

    let (mut reconciled_at, mut ready_at) = (None, None);
    let deadline = started + bounds.deadline;
    let mut last_report = Instant::now();
    while ready_at.is_none() && Instant::now() < deadline {
        let list = predictor_store.state();
        let reconciled = list
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .is_some_and(|s| s.observed_generation == p.metadata.generation)
                    && has_child(&deployment_store, p)
                    && has_child(&service_store, p)
            })
            .count();
        let ready = list.iter().filter(|p| settled(p, replicas)).count();
        if reconciled == count && reconciled_at.is_none() {
            reconciled_at = Some(started.elapsed());
        }
        if ready == count {
            ready_at = Some(started.elapsed());
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "[scale] t={:.0}s reconciled {reconciled}/{count} ready {ready}/{count} rss {:.1} MiB",
                started.elapsed().as_secs_f64(),
                mib(operator.peak_rss_bytes())
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let peak = mib(operator.peak_rss_bytes());
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    let metrics = operator
        .get("/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    let reconciles = metrics
        .lines()
        .find_map(|l| l.strip_prefix("predictor_operator_reconcile_duration_seconds_count "))
        .unwrap_or("?");

    let writes = sum_by(&metrics, "predictor_operator_writes_total", &["kind"]);
    let writes_per_predictor = writes.iter().map(|(_, n)| n).sum::<f64>() / count as f64;
    let resolves = sum_by(
        &metrics,
        "predictor_operator_image_checks_total",
        &["result"],
    );
    let control_plane = cluster.cpu_seconds();
    let control_plane_cpu: f64 = control_plane.iter().map(|(_, s)| s).sum();
    let operator_cpu = operator.proc.cpu_seconds().unwrap_or(f64::NAN);
    let cpu_share = 100.0 * operator_cpu / control_plane_cpu;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The least wall time the control plane's work could take on this machine.
    let floor = control_plane_cpu / cores as f64;
    let reconciled_s = secs(reconciled_at);
    // NaN (never reconciled) compares false: a miss.
    let targets = [
        (
            "all reconciled",
            reconciled_at.is_some()
                && bounds.reconciled_s.is_none_or(|max| reconciled_s < max)
                && bounds
                    .floor_ratio
                    .is_none_or(|max| reconciled_s / floor <= max),
        ),
        ("peak RSS", peak < bounds.rss_mib),
        (
            "writes per Predictor",
            writes_per_predictor <= bounds.writes,
        ),
        (
            "operator CPU share",
            bounds.cpu_percent.is_none_or(|max| cpu_share <= max),
        ),
    ];

    println!(
        "operator scale benchmark: {count} Predictors ({replicas} replica(s) each) on 2 kwok nodes, concurrency {concurrency}"
    );
    if smoke {
        println!("  SMOKE run (SCALE_SMOKE=1): generous bounds, CPU share not asserted");
    }
    println!("  pre-flights           model, image ({image}, pull Secret), all on");
    println!("  created in            {:>7.1} s", created.as_secs_f64());
    let mut bound = Vec::new();
    if let Some(max) = bounds.reconciled_s {
        bound.push(format!("< {max} s"));
    }
    if let Some(max) = bounds.floor_ratio {
        bound.push(format!(
            "<= {max} x the control plane's CPU s per core, {floor:.1} s: {:.2} x",
            reconciled_s / floor
        ));
    }
    println!(
        "  all reconciled after  {reconciled_s:>7.1} s   (target {}: {})",
        bound.join(", "),
        verdict(targets[0].1)
    );
    println!(
        "  all Ready after       {:>7.1} s   (pods via KCM + scheduler + kwok)",
        secs(ready_at)
    );
    println!(
        "  operator peak RSS     {:>7.1} MiB (target < {} MiB: {})",
        peak,
        bounds.rss_mib,
        verdict(targets[1].1)
    );
    println!("  reconciles            {reconciles:>7}");
    println!(
        "  image checks          {}",
        resolves
            .iter()
            .map(|(result, n)| format!("{result} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  writes per Predictor  {writes_per_predictor:>7.2}   (target <= {}: {}): {}",
        bounds.writes,
        verdict(targets[2].1),
        writes
            .iter()
            .map(|(kind, n)| format!("{kind} {:.2}", n / count as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  operator CPU          {operator_cpu:>7.1} s = {cpu_share:.1} % of the control plane's {control_plane_cpu:.1} s ({})",
        match bounds.cpu_percent {
            Some(max) => format!("target <= {max} %: {}", verdict(targets[3].1)),
            None => "not asserted".into(),
        }
    );
    let cpu: Vec<String> = control_plane
        .iter()
        .map(|(n, s)| format!("{n} {s:.1}"))
        .collect();
    println!("  control plane CPU s   {}", cpu.join(", "));
    let wall = started.elapsed().as_secs_f64();
    println!(
        "  (wall {wall:.1} s on {cores} cores; load average before {load_before}, after {})",
        load_average()
    );
    println!(
        "  operator reconcile time: {:.0} s in all, by bucket (le seconds: count): {}",
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("predictor_operator_reconcile_duration_seconds_sum "))
            .unwrap_or("?")
            .parse::<f64>()
            .unwrap_or(f64::NAN),
        metrics
            .lines()
            .filter_map(|l| l.strip_prefix("predictor_operator_reconcile_duration_seconds_bucket"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let apiserver = cluster.kubectl_ok(&["get", "--raw", "/metrics"]);
    println!("  busiest apiserver requests (verb resource subresource: count):");
    let requests = sum_by(
        &apiserver,
        "apiserver_request_total",
        &["verb", "resource", "subresource"],
    );
    for (what, n) in requests.into_iter().take(12) {
        println!("    {what:<40} {n:>7}");
    }
    // Time requests spent queued by API Priority and Fairness (the operator's ServiceAccount is
    // `workload-low`; the admin-authenticated control plane is exempt).
    let waited = sum_by(
        &apiserver,
        "apiserver_flowcontrol_request_wait_duration_seconds_sum",
        &["priority_level"],
    );
    let queued = sum_by(
        &apiserver,
        "apiserver_flowcontrol_request_wait_duration_seconds_count",
        &["priority_level"],
    );
    println!("  APF queueing (priority level: requests, total wait s):");
    for (level, n) in queued {
        let wait = waited
            .iter()
            .find(|(l, _)| *l == level)
            .map_or(0.0, |w| w.1);
        println!("    {level:<40} {n:>7} {wait:>9.1}");
    }
    let missed: Vec<&str> = targets
        .iter()
        .filter(|(_, met)| !met)
        .map(|(what, _)| *what)
        .collect();
    if !missed.is_empty() {
        eprintln!("[scale] MISSED: {}", missed.join(", "));
        eprintln!("[scale] operator log:\n{}", operator.proc.tail(40));
    }
    drop(operator);
    drop(cluster);
    if !missed.is_empty() {
        std::process::exit(1);
    }
}

/// A store that a watch keeps up to date in the background.
fn follow<K>(api: Api<K>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K: Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    tokio::spawn(stream.for_each(|_| async {}));
    reader
}

/// Whether the child of `p` with the same name is in `store`.
fn has_child<K: Resource<DynamicType = ()> + Clone>(store: &Store<K>, p: &Predictor) -> bool {
    store
        .get(&reflector::ObjectRef::new(&p.name_any()).within(NAMESPACE))
        .is_some()
}

/// The 1, 5 and 15 minute load averages, from /proc/loadavg.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Ready, or for zero replicas, rolled out (a Predictor scaled to zero is never Ready).
fn settled(p: &Predictor, replicas: i32) -> bool {
    if replicas > 0 {
        return operator::status::is_ready(p);
    }
    p.status.as_ref().is_some_and(|s| {
        s.observed_generation == p.metadata.generation
            && operator::status::find_condition(s, operator::status::PROGRESSING)
                .is_some_and(|c| c.reason == "RolloutComplete")
    })
}

/// Samples of `metric` in the Prometheus text `metrics`, summed by the values of `labels` (joined
/// with spaces), largest first.
fn sum_by(metrics: &str, metric: &str, labels: &[&str]) -> Vec<(String, f64)> {
    let mut totals = std::collections::BTreeMap::<String, f64>::new();
    let prefix = format!("{metric}{{");
    for line in metrics.lines().filter(|l| l.starts_with(&prefix)) {
        let Some((sample, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let label = |name: &str| {
            sample
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let key: Vec<String> = labels.iter().map(|l| label(l)).collect();
        *totals.entry(key.join(" ")).or_default() += value.parse::<f64>().unwrap_or(0.0);
    }
    let mut totals: Vec<_> = totals.into_iter().collect();
    totals.sort_by(|a, b| b.1.total_cmp(&a.1));
    totals
}

fn mib(bytes: Option<u64>) -> f64 {
    bytes.map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
