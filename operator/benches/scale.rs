//! Scale benchmark (not a test): creates 1,000 Predictors on a fresh control plane with kwok nodes
//! and reports how long the operator takes to reconcile all of them, how long until all are Ready
//! (pods scheduled and made ready by kwok), and the operator's peak RSS. Targets: all reconciled in
//! < 60 s, peak RSS < 64 MiB.
//!
//! "Reconciled" means, for every Predictor: its Deployment and its Service exist, and its status
//! was written for its current generation (`status.observedGeneration == metadata.generation`).
//! The benchmark follows all three kinds with watches (not repeated lists), so it adds little load.
//!
//! Run: `MLOPS_K8S_BIN=… cargo bench -p operator --bench scale`. Env: `SCALE_PREDICTORS` (1000),
//! `SCALE_REPLICAS` (1; 0 leaves out the pods), `SCALE_CONCURRENCY` (the operator's `--concurrency`, 32).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::PostParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use operator::crd::Predictor;
use predictor::testing::FileServer;
use support::manifests::predictor;
use support::{ServedModel, TestCluster, client_for};

const NAMESPACE: &str = "scale";
const TARGET_SECONDS: f64 = 60.0;
const TARGET_RSS_MIB: f64 = 64.0;

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
    let load_before = load_average();
    let setup = Instant::now();
    let cluster = TestCluster::start(2);
    let operator_kubeconfig = cluster.install_operator_prerequisites();
    cluster.create_namespace(NAMESPACE);
    let files = FileServer::start();
    let model = ServedModel::put(&files, "/models/a.model", "2026-11-24T00:00:00Z");
    let operator = cluster.start_operator(
        "operator-bench",
        &operator_kubeconfig,
        &["--concurrency", &concurrency],
    );
    let client = client_for(&cluster.kubeconfig).await;
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
            async move {
                let p = predictor(
                    &format!("p-{i:04}"),
                    "registry.local/american-predictor:0.2",
                    &model,
                    replicas,
                );
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
    let deadline = started + Duration::from_secs(600);
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
    let writes: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("predictor_operator_writes_total"))
        .collect();

    println!(
        "operator scale benchmark: {count} Predictors ({replicas} replica(s) each) on 2 kwok nodes, concurrency {concurrency}"
    );
    println!("  created in            {:>7.1} s", created.as_secs_f64());
    println!(
        "  all reconciled after  {:>7.1} s   (target < {TARGET_SECONDS} s: {})",
        secs(reconciled_at),
        verdict(secs(reconciled_at) < TARGET_SECONDS)
    );
    println!(
        "  all Ready after       {:>7.1} s   (pods via KCM + scheduler + kwok)",
        secs(ready_at)
    );
    println!(
        "  operator peak RSS     {:>7.1} MiB (target < {TARGET_RSS_MIB} MiB: {})",
        peak,
        verdict(peak < TARGET_RSS_MIB)
    );
    println!("  reconciles            {reconciles:>7}");
    println!("  operator writes       {}", writes.join(", "));
    let mut cpu = cluster.cpu_seconds();
    cpu.push((
        "operator".into(),
        operator.proc.cpu_seconds().unwrap_or(f64::NAN),
    ));
    let cpu: Vec<String> = cpu.iter().map(|(n, s)| format!("{n} {s:.1}")).collect();
    println!("  CPU seconds           {}", cpu.join(", "));
    let wall = started.elapsed().as_secs_f64();
    println!(
        "  (wall {wall:.1} s on {} cores; load average before {load_before}, after {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
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
    drop(operator);
    drop(cluster);
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
