//! The operator process from start to stop, as named steps: connect, serve `/metrics` and
//! `/healthz`, elect a leader, build the reconcile context, run the controller, shut down.
//!
//! One [`CancellationToken`] is the shutdown signal every task watches; losing the Lease cancels a
//! child of it, which stops the controller but tells the caller to exit with an error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::events::Reporter;
use kube::{Api, Client};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::image::ImageChecker;
use crate::leader::LeaderElector;
use crate::metrics::Metrics;
use crate::model_check::ModelChecker;
use crate::quality::QualityGate;
use crate::reconcile::{self, Children, Context};
use crate::spool::Spool;
use crate::watch::Scope;

/// Everything `operator run` is told (flags and their environment variables).
#[derive(Clone, Debug)]
pub struct Config {
    /// Address of `/metrics` and `/healthz`.
    pub metrics_addr: SocketAddr,
    /// Skip the pre-flight model check (the pods still verify the digest).
    pub skip_model_check: bool,
    /// Skip the image pre-flight (pods pull `spec.image` as written, by tag).
    pub skip_image_check: bool,
    /// Timeout of one registry request of the image pre-flight.
    pub registry_timeout: Duration,
    /// Largest model file the pre-flight check downloads.
    pub model_max_bytes: u64,
    /// Where downloads are spooled (the spool's files there are deleted at start); `None`: a new
    /// temporary directory, removed at exit.
    pub spool_dir: Option<std::path::PathBuf>,
    /// What all reads of URLs together may hold in memory at once, in bytes.
    pub memory_budget: u64,
    /// Timeout of one model download.
    pub model_timeout: Duration,
    /// The namespaces watched and acted in (all, or a list).
    pub scope: Scope,
    /// Predictors reconciled at the same time.
    pub concurrency: u16,
    /// Elect a leader through a Lease.
    pub leader_elect: bool,
    /// Name of the leader election Lease.
    pub lease_name: String,
    /// Namespace of the leader election Lease.
    pub lease_namespace: String,
    /// This replica's identity in the Lease and in Events.
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up.
    pub renew_deadline: Duration,
    /// Pause between election rounds.
    pub retry_period: Duration,
    /// Time in-flight reconciles get to finish after shutdown begins.
    pub shutdown_timeout: Duration,
}

/// Runs the operator until SIGTERM or SIGINT (then shuts down gracefully) or until it loses its
/// Lease (then returns an error, so the process exits and a fresh one can stand for election).
pub async fn run(config: Config) -> Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    run_until(config, shutdown).await
}

/// [`run`] with the shutdown signal given by the caller.
pub async fn run_until(config: Config, shutdown: CancellationToken) -> Result<()> {
    // One rustls provider (ring) for the Kubernetes client and the model checker alike.
    model_store::tls::install_crypto_provider();
    let client = Client::try_default().await.map_err(Error::Config)?;
    let metrics = Arc::new(Metrics::default());
    // /healthz and /metrics serve from the start, also on standby replicas.
    let server = serve_metrics(config.metrics_addr, metrics.clone(), shutdown.clone()).await?;

    let elector = config.leader_elect.then(|| {
        LeaderElector::new(
            Api::<Lease>::namespaced(client.clone(), &config.lease_namespace),
            &config.lease_name,
            &config.identity,
            config.lease_duration,
        )
    });
    if let Some(elector) = &elector
        && !elect(elector, &config, &shutdown).await
    {
        return finish(server).await;
    }
    metrics.set_leader(true);

    let (ctx, writers) = build_context(&config, client, metrics.clone())?;
    let outcome = run_controller(ctx, writers, elector, &config, &shutdown).await;
    metrics.set_leader(false);
    shutdown.cancel();
    let result = step_down(outcome, &config).await;
    finish(server).await?;
    result
}

/// Step: bind `addr` and serve `/metrics` and `/healthz` until `shutdown`.
async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %local, "serving /metrics and /healthz");
    Ok(tokio::spawn(crate::server::serve(
        listener, metrics, shutdown,
    )))
}

/// Step: wait for leadership; `false` if shutdown came first.
async fn elect(elector: &LeaderElector, config: &Config, shutdown: &CancellationToken) -> bool {
    tracing::info!(lease = %config.lease_name, namespace = %config.lease_namespace, identity = %config.identity, "waiting for leadership");
    let won = elector.acquire(config.retry_period, shutdown).await;
    if won {
        tracing::info!(identity = %config.identity, "became the leader");
    }
    won
}

/// `--shutdown-timeout`'s default: within config/manager's `terminationGracePeriodSeconds`, with
/// room to release the Lease afterwards (see the test that checks the Deployment against it).
pub const DEFAULT_SHUTDOWN_TIMEOUT: &str = "20s";

/// `--memory-budget-mib`'s default: what config/manager's memory limit is sized for (see
/// [`BASELINE_MEMORY`] and the test that checks the Deployment against these).
pub const DEFAULT_MEMORY_BUDGET_MIB: u64 = 160;
/// `--model-max-bytes`'s default: scoring a model this large on the largest data set fits the
/// default budget (a model of the default 3,000 features is ~100 KB).
pub const DEFAULT_MODEL_MAX_BYTES: u64 = 8 << 20;
/// What the operator holds outside the budget (watch caches, clients, status building): the scale
/// bench's target at 1,000 Predictors (`cargo bench -p operator --bench scale`: 47.6 MiB peak RSS).
pub const BASELINE_MEMORY: u64 = 64 << 20;

/// The smallest in-flight memory budget the operator starts with: a download, a /metrics scrape,
/// a registry answer and the decode of a 1 MiB model at once.
pub const MIN_MEMORY_BUDGET: u64 = 16 << 20;

/// Step: what every reconcile shares (client, Event reporter, model checker, metrics, caches).
fn build_context(
    config: &Config,
    client: Client,
    metrics: Arc<Metrics>,
) -> Result<(Arc<Context>, reconcile::ChildWriters)> {
    tracing::info!(scope = %config.scope, "watching and acting in");
    if config.skip_model_check {
        tracing::warn!("pre-flight model check disabled (--skip-model-check)");
    }
    if config.skip_image_check {
        tracing::warn!("pre-flight image check disabled (--skip-image-check)");
    }
    let (children, writers) = Children::new();
    let fetcher = model_store::Fetcher::new(config.model_timeout)
        .map_err(|e| Error::Settings(e.to_string()))?;
    let spool = match &config.spool_dir {
        Some(dir) => Spool::new(dir, fetcher),
        None => Spool::scratch(fetcher),
    }
    .map_err(|e| Error::Settings(format!("cannot use the spool directory (--spool-dir): {e}")))?;
    if config.memory_budget < MIN_MEMORY_BUDGET {
        return Err(Error::Settings(format!(
            "--memory-budget-mib {} is less than the {} MiB one model check, one scrape and one \
             registry answer need at once",
            config.memory_budget >> 20,
            MIN_MEMORY_BUDGET >> 20
        )));
    }
    let budget = Arc::new(Budget::new(config.memory_budget));
    tracing::info!(spool = %spool.dir().display(), memory_budget_mib = config.memory_budget >> 20, model_max_bytes = config.model_max_bytes, "downloads are spooled to disk, reads of URLs share the memory budget");
    let checker = ModelChecker::new(
        !config.skip_model_check,
        config.model_max_bytes,
        Arc::new(spool),
        budget,
    );
    let images = ImageChecker::new(!config.skip_image_check, config.registry_timeout)?
        .within(checker.budget().clone());
    let ctx = Context {
        reporter: Reporter {
            controller: "predictor-operator".into(),
            instance: Some(config.identity.clone()),
        },
        gate: QualityGate::new(&checker, crate::quality::DATA_MAX_BYTES),
        checker,
        images,
        // NB: a pod answers /metrics from memory: two seconds means it is in trouble, and a canary
        // analysis then just waits for the next poll.
        pod_metrics: Arc::new(crate::scrape::HttpPodMetrics::new(Duration::from_secs(2))?),
        metrics,
        client,
        children,
        own_writes: Default::default(),
        drift: Default::default(),
    };
    Ok((Arc::new(ctx), writers))
}

/// How the controller stopped: the elector (if any) and whether it kept the Lease throughout.
struct Outcome {
    elector: Option<LeaderElector>,
    kept_lease: bool,
}

/// Step: run the controller while keeping the Lease; it stops on shutdown or when the Lease is
/// lost. In-flight reconciles get `shutdown_timeout` to finish.
async fn run_controller(
    ctx: Arc<Context>,
    writers: reconcile::ChildWriters,
    elector: Option<LeaderElector>,
    config: &Config,
    shutdown: &CancellationToken,
) -> Outcome {
    // Cancelled by shutdown, or by the renewer when the Lease is lost. Without leader election
    // only shutdown cancels it, so the controller runs until then.
    let work = shutdown.child_token();
    let renewer = elector.map(|elector| {
        let (work, stop) = (work.clone(), shutdown.clone());
        let (retry, deadline) = (config.retry_period, config.renew_deadline);
        tokio::spawn(async move {
            let kept = elector.keep_renewing(retry, deadline, &stop).await;
            if !kept {
                work.cancel();
            }
            (elector, kept)
        })
    });
    let controller = reconcile::run(
        ctx,
        writers,
        &config.scope,
        config.concurrency,
        work.clone().cancelled_owned(),
    );
    tokio::pin!(controller);
    tokio::select! {
        _ = &mut controller => {}
        _ = work.cancelled() => {
            let timeout = config.shutdown_timeout;
            if tokio::time::timeout(timeout, &mut controller).await.is_err() {
                tracing::warn!(?timeout, "in-flight reconciles did not finish in time");
            }
        }
    }
    // Stops the renewer if the controller ended on its own.
    shutdown.cancel();
    match renewer {
        Some(renewer) => match renewer.await {
            Ok((elector, kept)) => Outcome {
                elector: Some(elector),
                kept_lease: kept,
            },
            Err(e) => {
                tracing::error!(error = %e, "the Lease renewal task failed");
                Outcome {
                    elector: None,
                    kept_lease: false,
                }
            }
        },
        None => Outcome {
            elector: None,
            kept_lease: true,
        },
    }
}

/// Step: give the Lease back (so a standby need not wait for it to expire), or report its loss.
async fn step_down(outcome: Outcome, config: &Config) -> Result<()> {
    if !outcome.kept_lease {
        return Err(Error::Leader {
            lease: config.lease_name.clone(),
            reason: "lost leadership; exiting so a fresh process can stand again".into(),
        });
    }
    if let Some(elector) = outcome.elector {
        match elector.release().await {
            Ok(()) => tracing::info!("released the Lease"),
            Err(e) => tracing::warn!(error = %e, "could not release the Lease"),
        }
    }
    Ok(())
}

/// Step: wait for the metrics server to close.
async fn finish(server: JoinHandle<()>) -> Result<()> {
    match server.await {
        Ok(()) => {
            tracing::info!("stopped");
            Ok(())
        }
        Err(e) => Err(Error::Serve(std::io::Error::other(e))),
    }
}

/// Cancels `shutdown` on SIGTERM (the kubelet) or SIGINT (Ctrl-C).
async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}

/// This replica's identity when `--identity`/`POD_NAME` is not set: host name and process id.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "operator".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `1Gi`, `512Mi`, `64Ki` or plain bytes.
    fn quantity(q: &str) -> u64 {
        let (number, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
        let shift = match unit {
            "" => 0,
            "Ki" => 10,
            "Mi" => 20,
            "Gi" => 30,
            other => panic!("unit {other:?}"),
        };
        number.parse::<u64>().unwrap() << shift
    }

    /// config/manager/deployment.yaml, the flags' defaults and the limits agree: the shutdown
    /// timeout fits the termination grace period, the budget and the baseline fit the memory
    /// limit with room to spare, the largest single reservation fits the budget, and the spool's
    /// worst case fits the emptyDir's sizeLimit.
    #[test]
    fn the_operator_deployment_and_the_flag_defaults_agree() {
        use k8s_openapi::api::apps::v1::Deployment;
        let yaml = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../config/manager/deployment.yaml"),
        )
        .unwrap();
        let deployment: Deployment = serde_saphyr::from_str(&yaml).unwrap();
        let pod = deployment.spec.template.spec.unwrap();
        let container = &pod.containers[0];
        let env = |name: &str| {
            crate::resources::env_value(container, name).unwrap_or_else(|| panic!("no {name}"))
        };
        // After SIGTERM: in-flight reconciles, then the Lease's release (one request) and the
        // metrics server's close, before the kubelet kills the pod.
        let grace = Duration::from_secs(pod.termination_grace_period_seconds.unwrap() as u64);
        let shutdown = humantime::parse_duration(DEFAULT_SHUTDOWN_TIMEOUT).unwrap();
        assert!(
            shutdown + Duration::from_secs(5) <= grace,
            "shutdown timeout {shutdown:?} + 5 s > terminationGracePeriodSeconds {grace:?}"
        );
        let budget_mib: u64 = env("MEMORY_BUDGET_MIB").parse().unwrap();
        let model_max: u64 = env("MODEL_MAX_BYTES").parse().unwrap();
        assert_eq!(budget_mib, DEFAULT_MEMORY_BUDGET_MIB);
        assert_eq!(model_max, DEFAULT_MODEL_MAX_BYTES);
        let limit = quantity(
            &container
                .resources
                .as_ref()
                .unwrap()
                .limits
                .as_ref()
                .unwrap()["memory"]
                .0,
        );
        let budget = budget_mib << 20;
        assert!(
            budget + BASELINE_MEMORY + (32 << 20) <= limit,
            "budget {budget} + baseline {BASELINE_MEMORY} + 32 MiB > limit {limit}"
        );
        let largest = crate::quality::scoring_memory(model_max, crate::quality::DATA_MAX_BYTES);
        assert!(
            largest <= budget,
            "scoring needs {largest}, the budget is {budget}"
        );

        let spool = env("SPOOL_DIR");
        let mount = container
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == spool)
            .expect("the spool is mounted");
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .expect("the spool's volume");
        let empty_dir = volume.empty_dir.as_ref().expect("an emptyDir");
        assert_eq!(
            empty_dir.medium, None,
            "on disk: tmpfs would count as memory"
        );
        let size_limit = quantity(&empty_dir.size_limit.as_ref().unwrap().0);
        let files = (crate::spool::KEPT
            + crate::spool::PARALLEL_DOWNLOADS
            + crate::quality::PARALLEL_RUNS * 3) as u64;
        let largest_file = model_max.max(crate::quality::DATA_MAX_BYTES);
        assert!(
            files * largest_file <= size_limit,
            "{files} files of {largest_file} bytes > sizeLimit {size_limit}"
        );
    }

    #[tokio::test]
    async fn the_metrics_server_stops_on_shutdown_and_a_taken_port_is_an_error() {
        let shutdown = CancellationToken::new();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = serve_metrics(addr, Arc::default(), shutdown.clone())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on {addr}")),
            "{err}"
        );
        drop(taken);

        let server = serve_metrics(addr, Arc::default(), shutdown.clone())
            .await
            .unwrap();
        assert!(!server.is_finished());
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), finish(server))
            .await
            .expect("the server stops within 5 s of shutdown")
            .unwrap();
    }
}
