//! `operator run`: the Predictor controller. Parses flags, wires the library together, and owns
//! the process lifecycle: leader election, `/metrics` + `/healthz`, graceful shutdown on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::events::Reporter;
use kube::{Api, Client};
use operator::controller::{self, Children, Context};
use operator::leader::LeaderElector;
use operator::metrics::Metrics;
use operator::model_check::ModelChecker;
use tokio::sync::watch;

#[derive(Parser)]
#[command(version, about = "Runs Predictor objects as Deployments and Services")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (kubeconfig from KUBECONFIG, ~/.kube/config, or the in-cluster service account).
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address of the /metrics and /healthz endpoints.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Do not download and verify new models before rolling them out (for clusters where the
    /// operator cannot reach model storage; the pods still verify the digest).
    #[arg(long, env = "SKIP_MODEL_CHECK")]
    skip_model_check: bool,
    /// Largest model file the pre-flight check downloads, in bytes.
    #[arg(long, env = "MODEL_MAX_BYTES", default_value_t = 512 << 20)]
    model_max_bytes: u64,
    /// Timeout of one model download, in seconds.
    #[arg(long, env = "MODEL_TIMEOUT_SECONDS", default_value_t = 120)]
    model_timeout_seconds: u64,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Predictors reconciled at the same time. At 1,000 new Predictors on a busy 2-core control
    /// plane 32 was fastest: 16 leaves the apiserver idle between requests, 128 queues them in
    /// API Priority and Fairness and costs memory (one connection each).
    #[arg(long, env = "CONCURRENCY", default_value_t = 32)]
    concurrency: u16,
    /// Elect a leader through a Lease, so several replicas can run safely.
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Name of the leader election Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "predictor-operator")]
    lease_name: String,
    /// Namespace of the leader election Lease (the operator's own namespace in a cluster).
    #[arg(long, env = "POD_NAMESPACE", default_value = "predictor-system")]
    lease_namespace: String,
    /// This replica's identity in the Lease and in Events (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds the leader keeps trying to renew before it gives up and exits.
    #[arg(long, env = "RENEW_DEADLINE_SECONDS", default_value_t = 10)]
    renew_deadline_seconds: u64,
    /// Seconds between election rounds.
    #[arg(long, env = "RETRY_PERIOD_SECONDS", default_value_t = 2)]
    retry_period_seconds: u64,
    /// Seconds in-flight reconciles get to finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 20)]
    shutdown_timeout_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    operator::telemetry::init();
    let Command::Run(args) = Cli::parse().command;
    run(args).await
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    // One rustls provider (ring) for the Kubernetes client and the model checker alike.
    predictor::tls::install_crypto_provider();
    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration (set KUBECONFIG or run in a pod)")?;
    let metrics = Arc::new(Metrics::default());
    let identity = args.identity.clone().unwrap_or_else(default_identity);

    // Stop on SIGTERM/SIGINT: `stop` tells every part to wind down.
    let (stop_tx, stop) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            let _ = stop_tx.send(true);
        }
    });

    // /healthz and /metrics serve from the start, also on standby replicas.
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics and /healthz");
    let server = tokio::spawn({
        let app = operator::server::app(metrics.clone());
        let mut stop = stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        }
    });

    let elector = args.leader_elect.then(|| {
        LeaderElector::new(
            Api::<Lease>::namespaced(client.clone(), &args.lease_namespace),
            &args.lease_name,
            &identity,
            Duration::from_secs(args.lease_duration_seconds),
        )
    });
    let retry = Duration::from_secs(args.retry_period_seconds);
    if let Some(elector) = &elector {
        tracing::info!(lease = %args.lease_name, namespace = %args.lease_namespace, %identity, "waiting for leadership");
        if !elector.acquire(retry, &stop).await {
            return finish(server).await;
        }
        tracing::info!(%identity, "became the leader");
    }
    metrics.set_leader(true);

    let (children, child_writers) = Children::new();
    let ctx = Arc::new(Context {
        reporter: Reporter {
            controller: "predictor-operator".into(),
            instance: Some(identity.clone()),
        },
        checker: ModelChecker::new(
            !args.skip_model_check,
            args.model_max_bytes,
            Duration::from_secs(args.model_timeout_seconds),
        )?,
        metrics: metrics.clone(),
        client: client.clone(),
        children,
    });
    if args.skip_model_check {
        tracing::warn!("pre-flight model check disabled (--skip-model-check)");
    }

    // Keep the Lease while working; losing it stops the controller like a signal does.
    let (lost_tx, mut lost) = watch::channel(false);
    let renewer = elector.map(|elector| {
        let stop = stop.clone();
        let deadline = Duration::from_secs(args.renew_deadline_seconds);
        tokio::spawn(async move {
            let kept = elector.keep_renewing(retry, deadline, &stop).await;
            if !kept {
                let _ = lost_tx.send(true);
            }
            (elector, kept)
        })
    });
    let controller_stop = {
        let mut stop = stop.clone();
        async move {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                // Without leader election nobody holds the sender: `Err` then means "never lost".
                Ok(_) = lost.wait_for(|l| *l) => {}
            }
        }
    };
    let controller = controller::run(
        ctx,
        child_writers,
        args.namespace.as_deref(),
        args.concurrency,
        controller_stop,
    );
    tokio::pin!(controller);
    let mut stop_watch = stop.clone();
    tokio::select! {
        _ = &mut controller => {}
        _ = stop_watch.wait_for(|s| *s) => {
            // Give in-flight reconciles a bounded time to finish.
            let timeout = Duration::from_secs(args.shutdown_timeout_seconds);
            if tokio::time::timeout(timeout, &mut controller).await.is_err() {
                tracing::warn!(?timeout, "in-flight reconciles did not finish in time");
            }
        }
    }
    metrics.set_leader(false);

    let _ = stop_tx.send(true);
    if let Some(renewer) = renewer {
        let (elector, kept) = renewer.await.context("lease renewal task")?;
        if !kept {
            anyhow::bail!(
                "lost leadership of Lease {}; exiting so a fresh process can stand again",
                args.lease_name
            );
        }
        match elector.release().await {
            Ok(()) => tracing::info!("released the Lease"),
            Err(e) => tracing::warn!(error = %e, "could not release the Lease"),
        }
    }
    finish(server).await
}

async fn finish(server: tokio::task::JoinHandle<std::io::Result<()>>) -> anyhow::Result<()> {
    server
        .await
        .context("metrics server task")?
        .context("metrics server")?;
    tracing::info!("stopped");
    Ok(())
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "operator".into());
    format!("{host}-{}", std::process::id())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
