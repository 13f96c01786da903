//! `operator run`: the Predictor controller. Parses flags and hands them to
//! [`operator::manager::run`], which owns the process lifecycle.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use operator::manager::{self, Config};
use operator::watch::{self, Scope};
use predictor::cli::durations::{self, OldSpelling, Unit};

/// `run`'s durations as they were written before humantime (whole seconds: `--model-timeout-seconds`,
/// `MODEL_TIMEOUT_SECONDS`), read for one release with a deprecation line in the log.
const OLD_SPELLINGS: &[OldSpelling] = &[
    OldSpelling::suffixed("run", "registry-timeout", "REGISTRY_TIMEOUT", Unit::Seconds),
    OldSpelling::suffixed("run", "model-timeout", "MODEL_TIMEOUT", Unit::Seconds),
    OldSpelling::suffixed("run", "lease-duration", "LEASE_DURATION", Unit::Seconds),
    OldSpelling::suffixed("run", "renew-deadline", "RENEW_DEADLINE", Unit::Seconds),
    OldSpelling::suffixed("run", "retry-period", "RETRY_PERIOD", Unit::Seconds),
    OldSpelling::suffixed("run", "shutdown-timeout", "SHUTDOWN_TIMEOUT", Unit::Seconds),
];

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
    /// Timeout of one registry request of the image check.
    #[arg(long, env = "REGISTRY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    registry_timeout: Duration,
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
    /// Timeout of one model download.
    #[arg(long, env = "MODEL_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    model_timeout: Duration,
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
    /// How long a Lease stays valid without renewal (whole seconds: the Lease holds seconds).
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up and exits.
    #[arg(long, env = "RENEW_DEADLINE", default_value = "10s", value_parser = humantime::parse_duration)]
    renew_deadline: Duration,
    /// Time between election rounds.
    #[arg(long, env = "RETRY_PERIOD", default_value = "2s", value_parser = humantime::parse_duration)]
    retry_period: Duration,
    /// How long in-flight reconciles get to finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = manager::DEFAULT_SHUTDOWN_TIMEOUT, value_parser = humantime::parse_duration)]
    shutdown_timeout: Duration,
}

impl TryFrom<RunArgs> for Config {
    type Error = String;

    fn try_from(args: RunArgs) -> Result<Self, String> {
        let lease_duration = args.lease_duration;
        if lease_duration.subsec_nanos() != 0 {
            return Err(format!(
                "--lease-duration {}: the Lease holds whole seconds; write e.g. 15s",
                humantime::format_duration(lease_duration)
            ));
        }
        Ok(Self {
            metrics_addr: args.metrics_addr,
            skip_model_check: args.skip_model_check,
            skip_image_check: args.skip_image_check,
            registry_timeout: args.registry_timeout,
            model_max_bytes: args.model_max_bytes,
            spool_dir: args.spool_dir,
            memory_budget: args.memory_budget_mib << 20,
            model_timeout: args.model_timeout,
            scope: scope(args.namespaces, std::env::var("WATCH_NAMESPACE").ok())?,
            concurrency: args.concurrency,
            leader_elect: args.leader_elect,
            lease_name: args.lease_name,
            lease_namespace: args.lease_namespace,
            identity: args.identity.unwrap_or_else(manager::default_identity),
            lease_duration,
            renew_deadline: args.renew_deadline,
            retry_period: args.retry_period,
            shutdown_timeout: args.shutdown_timeout,
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
    let (cli, deprecations) =
        durations::parse_process::<Cli>(OLD_SPELLINGS).unwrap_or_else(|error| error.exit());
    for line in deprecations {
        tracing::warn!("{line}");
    }
    let Command::Run(args) = cli.command;
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

    fn parse_config(args: &[&str], env: &[(&str, &str)]) -> Result<(Config, Vec<String>), String> {
        let (cli, deprecations) = durations::parse::<Cli>(
            ["operator", "run"].iter().chain(args),
            OLD_SPELLINGS,
            |name| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into()),
        )
        .map_err(|e| e.to_string())?;
        let Command::Run(run) = cli.command;
        Ok((Config::try_from(run)?, deprecations))
    }

    #[test]
    fn durations_default_as_before_and_take_any_unit() {
        let (config, deprecations) = parse_config(&[], &[]).unwrap();
        assert!(deprecations.is_empty());
        let seconds = |config: &Config| {
            [
                config.registry_timeout,
                config.model_timeout,
                config.lease_duration,
                config.renew_deadline,
                config.retry_period,
                config.shutdown_timeout,
            ]
            .map(|d| d.as_secs_f64())
        };
        assert_eq!(seconds(&config), [10.0, 120.0, 15.0, 10.0, 2.0, 20.0]);
        let (config, _) =
            parse_config(&["--model-timeout", "2m 30s", "--retry-period=500ms"], &[]).unwrap();
        assert_eq!(config.model_timeout, Duration::from_secs(150));
        assert_eq!(config.retry_period, Duration::from_millis(500));
        let err = parse_config(&["--lease-duration", "1500ms"], &[]).unwrap_err();
        assert!(err.contains("the Lease holds whole seconds"), "{err}");
        let err = parse_config(&["--model-timeout", "120"], &[]).unwrap_err();
        assert!(err.contains("--model-timeout"), "{err}");
    }

    /// The flags and variables in whole seconds still work for one release, each with a line
    /// (logged at start) saying what to write now.
    #[test]
    fn seconds_still_work_and_say_what_to_write_now() {
        let (config, deprecations) = parse_config(
            &["--model-timeout-seconds", "5", "--lease-duration-seconds=4"],
            &[
                ("RENEW_DEADLINE_SECONDS", "3"),
                ("RETRY_PERIOD_SECONDS", "1"),
            ],
        )
        .unwrap();
        assert_eq!(config.model_timeout, Duration::from_secs(5));
        assert_eq!(config.lease_duration, Duration::from_secs(4));
        assert_eq!(config.renew_deadline, Duration::from_secs(3));
        assert_eq!(config.retry_period, Duration::from_secs(1));
        let later = "is deprecated and will be removed in the next release";
        assert_eq!(
            deprecations,
            [
                format!("--model-timeout-seconds 5 {later}: write --model-timeout 5s"),
                format!("--lease-duration-seconds 4 {later}: write --lease-duration 4s"),
                format!("RENEW_DEADLINE_SECONDS {later}: set RENEW_DEADLINE=3s"),
                format!("RETRY_PERIOD_SECONDS {later}: set RETRY_PERIOD=1s"),
            ]
        );
    }

    /// docs/settings.md names every variable the operator reads: its flags', the old spellings, and
    /// those its code (the predictor's and the stores' included) and libraries read by name.
    #[test]
    fn every_variable_it_reads_is_documented() {
        use clap::CommandFactory;
        use predictor::testing::settings;
        let libraries = [settings::LIBRARY_VARIABLES, &["KUBECONFIG"]].concat();
        settings::assert_documented(
            &Cli::command(),
            OLD_SPELLINGS,
            &["operator/src", "predictor/src", "model-store/src"],
            &libraries,
        );
    }
}
