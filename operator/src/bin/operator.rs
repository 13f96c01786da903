//! `operator run`: the Predictor controller. Parses flags and hands them to
//! [`operator::manager::run`], which owns the process lifecycle.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use operator::manager::{self, Config};
use operator::watch::{self, Scope};

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
    /// Do not resolve image tags to digests before rolling them out (for registries the operator
    /// cannot reach; the pods then pull `spec.image` by its tag).
    #[arg(long, env = "SKIP_IMAGE_CHECK")]
    skip_image_check: bool,
    /// Timeout of one registry request of the image check, in seconds.
    #[arg(long, env = "REGISTRY_TIMEOUT_SECONDS", default_value_t = 10)]
    registry_timeout_seconds: u64,
    /// Largest model file the pre-flight check downloads, in bytes. Verifying one takes up to
    /// ~7 times its size in memory and scoring it on validation data twice that, within
    /// --memory-budget-mib (8 MiB: a model of the default 3,000 features is ~100 KB).
    #[arg(long, env = "MODEL_MAX_BYTES", default_value_t = manager::DEFAULT_MODEL_MAX_BYTES)]
    model_max_bytes: u64,
    /// Directory downloads are spooled to, one operator process per directory: model files and
    /// validation data, each at most its limit; files an earlier process spooled there are deleted
    /// at start (config/manager mounts an emptyDir with a sizeLimit here). Default: a new
    /// temporary directory, removed at exit.
    #[arg(long, env = "SPOOL_DIR")]
    spool_dir: Option<std::path::PathBuf>,
    /// MiB that all reads of URLs together (downloads, model decodes, quality-gate scoring,
    /// /metrics scrapes) may hold in memory at once; more wait. Keep it below the pod's memory
    /// limit minus the operator's own ~64 MiB (config/manager/deployment.yaml).
    #[arg(long, env = "MEMORY_BUDGET_MIB", default_value_t = manager::DEFAULT_MEMORY_BUDGET_MIB)]
    memory_budget_mib: u64,
    /// Timeout of one model download, in seconds.
    #[arg(long, env = "MODEL_TIMEOUT_SECONDS", default_value_t = 120)]
    model_timeout_seconds: u64,
    /// Watch and act only in these namespaces, comma-separated (default: all namespaces). Each is
    /// watched on its own, so RoleBindings there suffice (config/components/namespaced).
    #[arg(
        long,
        alias = "namespace",
        env = "WATCH_NAMESPACES",
        value_delimiter = ',',
        value_parser = watch::namespace_name
    )]
    namespaces: Vec<String>,
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

impl TryFrom<RunArgs> for Config {
    type Error = String;

    fn try_from(args: RunArgs) -> Result<Self, String> {
        Ok(Self {
            metrics_addr: args.metrics_addr,
            skip_model_check: args.skip_model_check,
            skip_image_check: args.skip_image_check,
            registry_timeout: Duration::from_secs(args.registry_timeout_seconds),
            model_max_bytes: args.model_max_bytes,
            spool_dir: args.spool_dir,
            memory_budget: args.memory_budget_mib << 20,
            model_timeout: Duration::from_secs(args.model_timeout_seconds),
            scope: scope(args.namespaces, std::env::var("WATCH_NAMESPACE").ok())?,
            concurrency: args.concurrency,
            leader_elect: args.leader_elect,
            lease_name: args.lease_name,
            lease_namespace: args.lease_namespace,
            identity: args.identity.unwrap_or_else(manager::default_identity),
            lease_duration: Duration::from_secs(args.lease_duration_seconds),
            renew_deadline: Duration::from_secs(args.renew_deadline_seconds),
            retry_period: Duration::from_secs(args.retry_period_seconds),
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_seconds),
        })
    }
}

/// The namespaces of `--namespaces`/WATCH_NAMESPACES or, when neither is set, of `legacy`
/// (WATCH_NAMESPACE: this operator's variable before WATCH_NAMESPACES, and what OLM's OperatorGroups
/// set; comma-separated, empty for all). Ignoring it would widen the operator to every namespace.
fn scope(namespaces: Vec<String>, legacy: Option<String>) -> Result<Scope, String> {
    if !namespaces.is_empty() {
        return Scope::new(namespaces);
    }
    let legacy = legacy.unwrap_or_default();
    Scope::new(
        legacy
            .split(',')
            .filter(|n| !n.trim().is_empty())
            .map(String::from),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    operator::telemetry::init();
    let Command::Run(args) = Cli::parse().command;
    let config = Config::try_from(args).map_err(anyhow::Error::msg)?;
    manager::run(config).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Scope, String> {
        let cli = Cli::try_parse_from(["operator", "run"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        let Command::Run(run) = cli.command;
        scope(run.namespaces, None)
    }

    #[test]
    fn namespaces_flag_limits_the_scope_and_the_single_namespace_flag_still_works() {
        assert_eq!(parse(&[]), Ok(Scope::Cluster));
        assert_eq!(
            parse(&["--namespaces", "team-b,team-a"]),
            Ok(Scope::Namespaces(vec!["team-a".into(), "team-b".into()]))
        );
        assert_eq!(
            parse(&["--namespace", "solo"]),
            Ok(Scope::Namespaces(vec!["solo".into()]))
        );
        let err = parse(&["--namespaces", "team-a,Team_B"]).unwrap_err();
        assert!(err.contains("\"Team_B\" is not a namespace name"), "{err}");
    }

    #[test]
    fn the_old_single_namespace_variable_is_honoured_not_ignored() {
        let legacy = |v: &str| scope(Vec::new(), Some(v.into()));
        assert_eq!(legacy("solo"), Ok(Scope::Namespaces(vec!["solo".into()])));
        assert_eq!(
            legacy("team-a,team-b"),
            Ok(Scope::Namespaces(vec!["team-a".into(), "team-b".into()]))
        );
        assert_eq!(legacy(""), Ok(Scope::Cluster));
        assert!(legacy("Bad").is_err());
        // The flag (or WATCH_NAMESPACES) wins.
        assert_eq!(
            scope(vec!["team-a".into()], Some("other".into())),
            Ok(Scope::Namespaces(vec!["team-a".into()]))
        );
    }
}
