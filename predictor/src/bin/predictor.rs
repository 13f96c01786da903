//! `predictor`: one CLI to train, evaluate and query the tweet classifier.
//! Thin: parses arguments and calls the library.

/// mimalloc: per-thread free lists; 0.56× → 0.65× the limit's requests/s over glibc's malloc
/// (docs/serving.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use predictor::cli::commands::{
    self, DeliveryReportOptions, EvalOptions, ProbeOptions, ServeOptions, TrainOptions,
};
use predictor::cli::durations::{self, OldSpelling, Unit};
use predictor::cli::values::{
    CharRange, Limit, parse_limit, parse_range, parse_rate, parse_switch,
};
use predictor::probe::delivery::Mode;
use predictor::probe::{Load, ProbeConfig, Until};
use predictor::server::ServeConfig;
use predictor::shadow::ShadowConfig;
use predictor::text::TextSettings;
use predictor::train::TrainSettings;

/// Durations as they were written before humantime, read for one release with a deprecation line:
/// `serve`'s in whole milliseconds (`--request-timeout-ms`, `REQUEST_TIMEOUT_MS`), `probe`'s and
/// `drain`'s also as a bare number of seconds.
const OLD_SPELLINGS: &[OldSpelling] = &[
    OldSpelling::suffixed("serve", "shutdown-delay", "SHUTDOWN_DELAY", Unit::Millis),
    OldSpelling::suffixed("serve", "drain-timeout", "DRAIN_TIMEOUT", Unit::Millis),
    OldSpelling::suffixed("serve", "request-timeout", "REQUEST_TIMEOUT", Unit::Millis),
    OldSpelling::suffixed(
        "serve",
        "max-connection-age",
        "MAX_CONNECTION_AGE",
        Unit::Millis,
    ),
    OldSpelling::bare_seconds("probe", "interval"),
    OldSpelling::bare_seconds("probe", "ramp"),
    OldSpelling::bare_seconds("probe", "settle"),
    OldSpelling::bare_seconds("probe", "max-duration"),
    OldSpelling::bare_seconds("probe", "timeout"),
    OldSpelling::bare_seconds("drain", "wait"),
];

#[derive(Parser)]
#[command(
    name = "predictor",
    version,
    about = "Does a tweet's author live in the US? Train, evaluate and query the classifier."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model from a CSV with `text` and `country_code` columns and write the model file.
    Train(TrainArgs),
    /// Score a model file, or a live server (--url), against a labelled CSV.
    Eval(EvalArgs),
    /// Predict tweets given as arguments (or one per line on stdin) with a model file, or ask a live server.
    Predict(PredictArgs),
    /// Serve a model over HTTP: fetch it from a URL, verify its sha256, answer POST /api/american.
    Serve(ServeArgs),
    /// Send steady requests (or a rising load: --ramp-to) to a server during a rollout and report versions
    /// seen, switch-over and failures.
    /// Exits non-zero if a request failed or --until-version was not reached.
    Probe(ProbeArgs),
    /// Write dev/delivery-report's report from its runs: per run a timeline with the delivery's stages
    /// marked, then report.md and summary.json. Exits non-zero if a run failed requests or never served
    /// the new version.
    DeliveryReport(DeliveryReportArgs),
    /// Tell the server on its drain socket to drain now (readiness false, every answer closes its
    /// connection, still answering), then wait: a pod's preStop hook, so kept-alive clients move on at once.
    Drain(DrainArgs),
    /// Upload a model file to s3://bucket/key or oci://registry/repository:tag and print its URL and
    /// sha256 (an oci:// URL pinned by the artifact's digest); with --update, also write both into a
    /// Predictor manifest and commit it in its Git checkout.
    Publish(PublishArgs),
    /// Train on the built-in sample, evaluate it and show a prediction (no data or network needed).
    Demo,
}

#[derive(Args)]
struct PublishArgs {
    /// The model file (what `predictor train` wrote).
    model: PathBuf,
    /// Where to: s3://bucket/key (the usual AWS_* variables; AWS_ENDPOINT_URL for a non-AWS store) or
    /// oci://registry/repository:tag (credentials from PREDICTOR_REGISTRY_AUTH, REGISTRY_AUTH_FILE or
    /// ~/.docker/config.json; PREDICTOR_STORE_CA for a private CA).
    #[arg(long)]
    to: String,
    /// A Predictor manifest in a Git checkout: set its spec.model.url and sha256 and commit that file.
    #[arg(long)]
    update: Option<PathBuf>,
}

#[derive(Args)]
struct DrainArgs {
    /// The Unix socket the server answers the drain on (what `serve --drain-socket` was given).
    #[arg(long, env = "DRAIN_SOCKET")]
    drain_socket: Option<PathBuf>,
    /// How long to keep answering afterwards before returning (what the preStop pause was): endpoints
    /// and kube-proxy rules catch up meanwhile.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    wait: Duration,
}

#[derive(Args)]
struct TrainArgs {
    /// Training data: a local path, file://, http(s)://, hdfs:// or s3:// URL (s3: the usual AWS_* variables,
    /// AWS_ENDPOINT_URL for a non-AWS store).
    #[arg(long, env = "TRAIN_DATA")]
    data: String,
    /// Where to write the model file.
    #[arg(long, default_value = "model.bin")]
    out: PathBuf,
    /// When the model was trained (RFC 3339); defaults to now. Fix it to reproduce a file byte for byte.
    #[arg(long, env = "MODEL_DATE")]
    model_date: Option<String>,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

/// Pipeline options; the defaults are the measured best (docs/pipeline.md).
#[derive(Args)]
struct PipelineArgs {
    /// Longest word n-gram (1 = words, 2 = words + pairs, 3 = + triples).
    #[arg(long, default_value_t = TextSettings::default().ngram_max, value_parser = clap::value_parser!(u8).range(1..=3))]
    ngram_max: u8,
    /// Remove English stop words before building n-grams.
    #[arg(long)]
    stop_words: bool,
    /// Use raw term counts instead of 1 + ln(count).
    #[arg(long)]
    linear_tf: bool,
    /// Keep n-grams found in at least this many tweets.
    #[arg(long, default_value_t = TextSettings::default().min_df, value_parser = clap::value_parser!(u32).range(1..))]
    min_df: u32,
    /// Keep at most this many n-grams (best χ² against the label first), or `all`.
    #[arg(long, default_value_t = Limit(TextSettings::default().max_features), value_parser = parse_limit)]
    max_features: Limit,
    /// Character n-grams inside words, lengths LO-HI (e.g. 3-5), or `none`.
    #[arg(long, default_value_t = CharRange(TextSettings::default().char_ngrams), value_parser = parse_range)]
    char_ngrams: CharRange,
    /// Naive Bayes additive smoothing.
    #[arg(long, default_value_t = TrainSettings::default().alpha)]
    alpha: f64,
}

impl PipelineArgs {
    fn settings(&self) -> TrainSettings {
        TrainSettings {
            text: TextSettings {
                ngram_max: self.ngram_max,
                stop_words: self.stop_words,
                sublinear_tf: !self.linear_tf,
                min_df: self.min_df,
                max_features: self.max_features.0,
                char_ngrams: self.char_ngrams.0,
            },
            alpha: self.alpha,
        }
    }
}

#[derive(Args)]
struct ProbeArgs {
    /// The server, e.g. http://127.0.0.1:5008.
    #[arg(long)]
    url: String,
    /// Time between requests, e.g. 20ms or 1s (at least 1ms: above 1000 requests/s, use --rate).
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Requests per second instead of --interval, e.g. 50 (= --interval 20ms) or 3000.
    #[arg(long, value_parser = parse_rate, conflicts_with = "interval")]
    rate: Option<f64>,
    /// Ramp the load: from the base rate (--rate, or one per --interval) the rate grows linearly to this
    /// many requests per second over --ramp, then stays there until the probe stops (--max-duration, or
    /// --until-version/--until-model). E.g. --ramp-to 3000 --ramp 20s.
    #[arg(long, value_parser = parse_rate, requires = "ramp")]
    ramp_to: Option<f64>,
    /// How long the rate takes to reach --ramp-to, e.g. 20s (0s: at once).
    #[arg(long, value_parser = humantime::parse_duration, requires = "ramp_to")]
    ramp: Option<Duration>,
    /// Stop once this version answers and nothing else has for --settle.
    #[arg(long)]
    until_version: Option<String>,
    /// Stop once this model (sha256, or its first 12+ hex digits) answers and nothing else has for
    /// --settle: for model-only rollouts. With --until-version, both must match.
    #[arg(long)]
    until_model: Option<String>,
    /// Quiet period that ends the probe once the wanted release answers alone.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Stop after this long in any case.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    max_duration: Duration,
    /// One request's time limit (a slower answer counts as failed).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// The tweet to send.
    #[arg(long, default_value = "#covid19 new york", conflicts_with = "texts")]
    text: String,
    /// Send the tweets of this CSV (the training format: a local path, file://, http(s)://, hdfs:// or s3://
    /// URL) in turn instead, e.g. real traffic for a canary analysis that compares predictions.
    #[arg(long)]
    texts: Option<String>,
    /// Open a connection per request, like many independent clients (a Service spreads connections,
    /// so one kept-alive client sticks to one pod until the pod closes the connection).
    #[arg(long)]
    no_keep_alive: bool,
    /// Write the report as markdown here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the report and every sample as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the timeline here (.png, or .svg). Needs the `plot` cargo feature (on by default).
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Args)]
struct DeliveryReportArgs {
    /// The pipeline the runs measured: gitops (a GitOps commit) or code (a code commit and its release).
    #[arg(long, value_enum)]
    mode: Mode,
    /// The URL the probes asked (the report names it).
    #[arg(long)]
    url: String,
    /// The probes' --interval (the report names it).
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Where to write report.md, summary.json, and each run's timeline-N.png and probe-N.md.
    #[arg(long)]
    out: PathBuf,
    /// Each run's marks file: `key value` lines (run, old, new, page, load, gitops_commit, probe_started,
    /// committed, synced, rolled, ready, healthy: epoch seconds; probe_json, probe_report: the probe's
    /// --json and --report files) and a `stage <name> <epoch seconds>` line per release stage.
    #[arg(required = true)]
    marks: Vec<PathBuf>,
}

/// What answers: a model file, or a running server.
#[derive(Args)]
struct TargetArgs {
    /// The model file.
    #[arg(
        long,
        env = "MODEL",
        required_unless_present = "url",
        conflicts_with = "url"
    )]
    model: Option<PathBuf>,
    /// A running server instead, e.g. http://127.0.0.1:5008.
    #[arg(long)]
    url: Option<String>,
}

impl TargetArgs {
    fn target(self) -> commands::Target {
        match (self.model, self.url) {
            (_, Some(url)) => commands::Target::Url(url),
            // clap requires one of the two.
            (model, None) => commands::Target::Model(model.unwrap_or_default()),
        }
    }
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Labelled data: a local path, file://, http(s)://, hdfs:// or s3:// URL.
    #[arg(long)]
    data: String,
    /// Requests in flight at once (with --url).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PredictArgs {
    /// With --url, prints the server's JSON answers.
    #[command(flatten)]
    target: TargetArgs,
    /// Tweets to classify; none means one per line on stdin.
    texts: Vec<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// Where to fetch the model file: a path, file://, http(s)://, hdfs://, s3:// or oci:// URL (s3: the
    /// usual AWS_* variables; oci: a docker config, PREDICTOR_REGISTRY_AUTH or REGISTRY_AUTH_FILE).
    #[arg(long, env = "MODEL_URL")]
    model_url: String,
    /// The sha256 the model file must have (what `predictor train` printed).
    #[arg(long, env = "MODEL_SHA256")]
    model_sha256: String,
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 5008)]
    port: u16,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    host: std::net::IpAddr,
    /// Version reported in every answer (the image tag in Kubernetes).
    #[arg(long = "version-label", env = "VERSION", default_value = env!("CARGO_PKG_VERSION"))]
    version: String,
    /// After SIGTERM, keep answering this long (e.g. 2s) with readiness false, so load balancers stop
    /// sending first.
    #[arg(long, env = "SHUTDOWN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    shutdown_delay: Duration,
    /// Longest time in-flight requests get to finish at shutdown.
    #[arg(long, env = "DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Longest time one request may take.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// After this long, a connection's next answer closes it, so keep-alive clients reconnect and
    /// are spread again over the Service's current pods (a canary or new replicas get their share).
    /// 0s: never.
    #[arg(long, env = "MAX_CONNECTION_AGE", default_value = "5s", value_parser = humantime::parse_duration)]
    max_connection_age: Duration,
    /// Requests handled at once (shared evenly among the serving threads); more wait their turn.
    #[arg(long, env = "MAX_CONCURRENCY", default_value_t = 1024)]
    max_concurrency: usize,
    /// Threads serving connections, each with its own event loop. Default: the CPUs this process may
    /// use (its cgroup's CPU limit included: a pod limited to 1 CPU gets 1).
    #[arg(long, env = "SERVE_THREADS")]
    threads: Option<usize>,
    /// Copy a sample of answered predictions to this candidate server (http://host:port), without
    /// waiting for it, and count whether it agrees (`predictor_shadow_requests_total`): a canary's
    /// shadow traffic. Empty: no copies.
    #[arg(long, env = "SHADOW_URL")]
    shadow_url: Option<String>,
    /// Percent (0-100) of live single-text predictions copied to --shadow-url.
    #[arg(long, env = "SHADOW_PERCENT", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    shadow_percent: u8,
    /// Answer `POST /drain` (`predictor drain`, a pod's preStop hook) on a Unix socket created at this
    /// path (mode 0600; a stale socket there is replaced). Never over TCP. Empty: no drain endpoint.
    #[arg(long, env = "DRAIN_SOCKET")]
    drain_socket: Option<PathBuf>,
    /// Count every answer into the drift histograms (`predictor_drift_<signal>`) and export the model
    /// file's reference beside them on /metrics: `on` or `off` (off: no drift series; to measure
    /// what they cost).
    #[arg(long, env = "DRIFT_SIGNALS", default_value = "on", value_parser = parse_switch, action = clap::ArgAction::Set)]
    drift_signals: bool,
}

fn main() -> std::process::ExitCode {
    // NB: Rust ignores SIGPIPE, so `predictor predict … | head -1` would panic on the next print.
    // Restore the default: a closed pipe ends the program quietly, as for any Unix filter.
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let (cli, deprecations) =
        durations::parse_process::<Cli>(OLD_SPELLINGS).unwrap_or_else(|error| error.exit());
    for line in deprecations {
        eprintln!("warning: {line}");
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The person's own data: what it said helps them fix it (see `predictor::error::Quoted`).
            eprintln!("error: {}", error.quoted());
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> predictor::Result<()> {
    match cli.command {
        Command::Train(args) => commands::train(TrainOptions {
            settings: args.pipeline.settings(),
            data: args.data,
            out: args.out,
            model_date: args.model_date,
        }),
        Command::Eval(args) => commands::eval(EvalOptions {
            target: args.target.target(),
            data: args.data,
            concurrency: args.concurrency as usize,
            json: args.json,
        }),
        Command::Predict(args) => commands::predict(&args.target.target(), args.texts),
        Command::Demo => commands::demo(),
        Command::Drain(args) => commands::drain(
            args.drain_socket
                .filter(|path| !path.as_os_str().is_empty()),
            args.wait,
        ),
        Command::Serve(args) => commands::serve(args.options()),
        Command::Publish(args) => commands::publish(&args.model, &args.to, args.update.as_deref()),
        Command::Probe(args) => commands::probe(args.options()),
        Command::DeliveryReport(args) => commands::delivery_report(DeliveryReportOptions {
            mode: args.mode,
            url: args.url,
            interval: args.interval,
            out: args.out,
            marks: args.marks,
        }),
    }
}

impl ServeArgs {
    fn options(self) -> ServeOptions {
        let mut config = ServeConfig::new(self.model_url, self.model_sha256, self.version);
        config.drain_timeout = self.drain_timeout;
        config.request_timeout = self.request_timeout;
        config.max_connection_age =
            (!self.max_connection_age.is_zero()).then_some(self.max_connection_age);
        config.max_concurrency = self.max_concurrency.max(1);
        config.threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        config.shadow = self
            .shadow_url
            .filter(|url| !url.is_empty())
            .map(|url| ShadowConfig::new(url, self.shadow_percent));
        config.drain_socket = self
            .drain_socket
            .filter(|path| !path.as_os_str().is_empty());
        config.drift_signals = self.drift_signals;
        ServeOptions {
            config,
            address: std::net::SocketAddr::new(self.host, self.port),
            shutdown_delay: self.shutdown_delay,
        }
    }
}

impl ProbeArgs {
    fn options(self) -> ProbeOptions {
        let base = match self.rate {
            Some(rate) => Load::steady(rate),
            None => Load::every(self.interval.max(Duration::from_millis(1))),
        };
        let load = match (self.ramp_to, self.ramp) {
            (Some(peak_rate), Some(ramp)) => base.ramping_to(peak_rate, ramp),
            // clap requires both or neither.
            _ => base,
        };
        ProbeOptions {
            config: ProbeConfig {
                url: self.url,
                load,
                until: Until {
                    version: self.until_version,
                    model: self.until_model,
                },
                settle: self.settle,
                max_duration: self.max_duration,
                request_timeout: self.timeout,
                texts: vec![self.text],
                keep_alive: !self.no_keep_alive,
            },
            texts_from: self.texts,
            report: self.report,
            json: self.json,
            plot: self.plot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serve`'s durations in milliseconds, as flags and as variables, still work for one release,
    /// each with a line saying what to write now.
    #[test]
    fn serve_still_reads_milliseconds_and_says_what_to_write_now() {
        let env = [
            ("SHUTDOWN_DELAY_MS", "2000"),
            ("MAX_CONNECTION_AGE_MS", "0"),
        ];
        let (cli, deprecations) = durations::parse::<Cli>(
            [
                "predictor",
                "serve",
                "--model-url",
                "model.bin",
                "--model-sha256",
                "ab",
                "--request-timeout-ms",
                "250",
                "--drain-timeout-ms=1500",
            ],
            OLD_SPELLINGS,
            |name| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into()),
        )
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        let options = args.options();
        assert_eq!(options.shutdown_delay, Duration::from_secs(2));
        assert_eq!(options.config.request_timeout, Duration::from_millis(250));
        assert_eq!(options.config.drain_timeout, Duration::from_millis(1500));
        assert_eq!(options.config.max_connection_age, None);
        let later = "is deprecated and will be removed in the next release";
        assert_eq!(
            deprecations,
            [
                format!("--request-timeout-ms 250 {later}: write --request-timeout 250ms"),
                format!("--drain-timeout-ms 1500 {later}: write --drain-timeout 1500ms"),
                format!("SHUTDOWN_DELAY_MS {later}: set SHUTDOWN_DELAY=2000ms"),
                format!("MAX_CONNECTION_AGE_MS {later}: set MAX_CONNECTION_AGE=0ms"),
            ]
        );
    }

    /// docs/settings.md names every variable `predictor` reads: its flags', the old spellings, and
    /// those its code (the stores' included) and libraries read by name.
    #[test]
    fn every_variable_it_reads_is_documented() {
        use clap::CommandFactory;
        use predictor::testing::settings;
        settings::assert_documented(
            &Cli::command(),
            OLD_SPELLINGS,
            &["predictor/src", "model-store/src"],
            settings::LIBRARY_VARIABLES,
        );
    }
}
