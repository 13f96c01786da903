//! `predictor`: one CLI to train, evaluate and query the tweet classifier.
//! Thin: parses arguments and calls the library.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use std::time::Duration;

use predictor::client::{evaluate_live, predict_remote};
use predictor::evaluate::{Summary, evaluate_from};
use predictor::model::{Model, ModelFile, sha256_hex};
use predictor::server::{self, ServeConfig};
use predictor::text::TextSettings;
use predictor::train::{Pass, TrainSettings, train_from, train_from_bytes};

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
    /// Send steady requests to a server during a rollout and report versions seen, switch-over and failures.
    /// Exits non-zero if a request failed or --until-version was not reached.
    Watch(WatchArgs),
    /// Train on the built-in sample, evaluate it and show a prediction (no data or network needed).
    Demo,
}

#[derive(Args)]
struct TrainArgs {
    /// Training data: a local path, file://, http(s):// or hdfs:// URL.
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

/// `--char-ngrams`: a length range or `none`.
#[derive(Clone, Copy)]
struct CharRange(Option<(u8, u8)>);

#[derive(Args)]
struct WatchArgs {
    /// The server, e.g. http://127.0.0.1:5008.
    #[arg(long)]
    url: String,
    /// Time between requests, e.g. 20ms or 1s.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    interval: Duration,
    /// Stop once this version answers and nothing else has for --settle.
    #[arg(long)]
    until_version: Option<String>,
    /// Stop once this model (sha256, or its first 12+ hex digits) answers and nothing else has for
    /// --settle: for model-only rollouts. With --until-version, both must match.
    #[arg(long)]
    until_model: Option<String>,
    /// Quiet period that ends the watch once the wanted release answers alone.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    settle: Duration,
    /// Stop after this long in any case.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    max_duration: Duration,
    /// One request's time limit (a slower answer counts as failed).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    timeout: Duration,
    /// The tweet to send.
    #[arg(long, default_value = "#covid19 new york")]
    text: String,
    /// Write the report as markdown here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the report and every sample as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the timeline here (.png, or .svg).
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// `20ms`, `1.5s`, `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 20ms, 2s or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" | "" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

fn parse_range(text: &str) -> Result<CharRange, String> {
    if text == "none" {
        return Ok(CharRange(None));
    }
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let parse = |n: &str| {
        n.trim()
            .parse::<u8>()
            .map_err(|_| format!("{text:?} is not a range like 3-5, nor `none`"))
    };
    Ok(CharRange(Some((parse(lo)?, parse(hi)?))))
}

/// `--max-features`: a count or `all`.
#[derive(Clone, Copy)]
struct Limit(Option<u32>);

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("all"),
        }
    }
}

impl std::fmt::Display for CharRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some((lo, hi)) => write!(f, "{lo}-{hi}"),
            None => f.write_str("none"),
        }
    }
}

fn parse_limit(text: &str) -> Result<Limit, String> {
    match text {
        "all" => Ok(Limit(None)),
        n => n
            .parse()
            .map(|n| Limit(Some(n)))
            .map_err(|_| format!("{text:?} is not a number nor `all`")),
    }
}

/// What answers: a model file, or a running server.
#[derive(Args)]
struct Target {
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

impl Target {
    fn load_model(&self) -> Result<Model> {
        load_model(
            self.model
                .as_deref()
                .context("--model or --url is required")?,
        )
    }
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    target: Target,
    /// Labelled data: a local path, file://, http(s):// or hdfs:// URL.
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
    target: Target,
    /// Tweets to classify; none means one per line on stdin.
    texts: Vec<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// Where to fetch the model file: a path, file://, http(s):// or hdfs:// URL.
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
    /// After SIGTERM, keep answering this long (ms) with readiness false, so load balancers stop sending first.
    #[arg(long, env = "SHUTDOWN_DELAY_MS", default_value_t = 0)]
    shutdown_delay_ms: u64,
    /// Longest time (ms) in-flight requests get to finish at shutdown.
    #[arg(long, env = "DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    drain_timeout_ms: u64,
    /// Longest time (ms) one request may take.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Requests handled at once; more wait their turn.
    #[arg(long, env = "MAX_CONCURRENCY", default_value_t = 1024)]
    max_concurrency: usize,
}

fn main() -> std::process::ExitCode {
    // NB: Rust ignores SIGPIPE, so `predictor predict … | head -1` would panic on the next print.
    // Restore the default: a closed pipe ends the program quietly, as for any Unix filter.
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train(args),
        Command::Eval(args) => eval(args),
        Command::Predict(args) => predict(args),
        Command::Demo => demo(),
        Command::Serve(args) => serve(args),
        Command::Watch(args) => watch(args),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn serve(args: ServeArgs) -> Result<()> {
    init_logging();
    let mut config = ServeConfig::new(args.model_url, args.model_sha256, args.version);
    config.drain_timeout = Duration::from_millis(args.drain_timeout_ms);
    config.request_timeout = Duration::from_millis(args.request_timeout_ms);
    config.max_concurrency = args.max_concurrency.max(1);
    config.validate()?;
    let shutdown_delay = Duration::from_millis(args.shutdown_delay_ms);
    runtime()?.block_on(async move {
        let address = std::net::SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        tracing::info!(%address, version = %config.version, "listening");
        let shutdown = async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => shutdown_delay,
                _ = tokio::signal::ctrl_c() => Duration::ZERO,
            }
        };
        server::run(listener, config, shutdown).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A byte-count progress bar on stderr for inputs worth watching (hidden when stderr is not a terminal).
fn byte_progress(location: &str) -> ProgressBar {
    const WORTH_A_BAR: u64 = 8 << 20;
    match std::fs::metadata(location.strip_prefix("file://").unwrap_or(location)) {
        Ok(meta) if meta.len() < WORTH_A_BAR => ProgressBar::hidden(),
        Ok(meta) => ProgressBar::new(meta.len()).with_style(
            ProgressStyle::with_template("{msg:>16} [{bar:30}] {bytes}/{total_bytes} ({eta})")
                .expect("valid template")
                .progress_chars("=> "),
        ),
        Err(_) => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg:>16} {spinner} {bytes}").expect("valid template"),
        ),
    }
}

fn train(args: TrainArgs) -> Result<()> {
    let settings = args.pipeline.settings();
    let model_date = match args.model_date {
        Some(date) => {
            chrono::DateTime::parse_from_rfc3339(&date)
                .with_context(|| format!("--model-date {date:?} is not RFC 3339"))?;
            date
        }
        None => now_rfc3339(),
    };
    let bar = byte_progress(&args.data);
    let started = std::time::Instant::now();
    let file = train_from(&args.data, &settings, &model_date, &mut |pass, bytes| {
        if bar.position() > bytes {
            bar.reset();
        }
        bar.set_message(match pass {
            Pass::CountNgrams => "counting n-grams",
            Pass::Fit => "training",
        });
        bar.set_position(bytes);
    })?;
    bar.finish_and_clear();
    let bytes = file.to_bytes()?;
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let t = &file.training;
    println!(
        "trained on {} rows ({} skipped for missing text or country) in {:.4}s; {} n-grams",
        t.rows,
        t.skipped_rows,
        started.elapsed().as_secs_f64(),
        file.vectorizer.vocabulary.len()
    );
    println!(
        "wrote {} ({} bytes), model_date {}",
        args.out.display(),
        bytes.len(),
        file.model_date
    );
    println!("sha256 {}", sha256_hex(&bytes));
    Ok(())
}

fn load_model(path: &std::path::Path) -> Result<Model> {
    Model::load(path).with_context(|| format!("cannot load model {}", path.display()))
}

fn eval(args: EvalArgs) -> Result<()> {
    if let Some(url) = &args.target.url {
        return eval_live(url, &args);
    }
    let model = args.target.load_model()?;
    let bar = byte_progress(&args.data);
    let (summary, skipped) = evaluate_from(&model, &args.data, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    print_summary(&summary, skipped, args.json)
}

fn watch(args: WatchArgs) -> Result<()> {
    let config = predictor::watch::WatchConfig {
        url: args.url.clone(),
        interval: args.interval.max(Duration::from_millis(1)),
        until: predictor::watch::Until {
            version: args.until_version.clone(),
            model: args.until_model.clone(),
        },
        settle: args.settle,
        max_duration: args.max_duration,
        request_timeout: args.timeout,
        text: args.text,
    };
    let started_at = now_rfc3339();
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} requests, {msg}").expect("valid template"),
    );
    let samples = runtime()?.block_on(predictor::watch::watch(&config, |sample| {
        bar.inc(1);
        if let Some(release) = sample.release() {
            bar.set_message(format!("last answer from version {release}"));
        }
    }))?;
    bar.finish_and_clear();
    let report = predictor::watch::summarize(&samples, &started_at, config.interval);
    let markdown = predictor::watch::render_markdown(&report, &args.url);
    println!("{markdown}");
    if let Some(path) = &args.report {
        std::fs::write(path, &markdown)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({ "report": report, "samples": samples });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        predictor::watch::plot(&samples, &report, path)?;
    }
    if config.until.is_set() && !samples.iter().any(|s| config.until.wants(s)) {
        bail!(
            "the wanted release ({}) never answered within {:?}",
            [&args.until_version, &args.until_model]
                .into_iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            args.max_duration
        );
    }
    if report.failed > 0 {
        bail!("{} of {} requests failed", report.failed, report.requests);
    }
    Ok(())
}

fn eval_live(url: &str, args: &EvalArgs) -> Result<()> {
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} answers {per_sec}").expect("valid template"),
    );
    let report = {
        let bar = bar.clone();
        runtime()?.block_on(evaluate_live(
            url,
            &args.data,
            args.concurrency as usize,
            move |n| bar.set_position(n),
        ))?
    };
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{}", report.summary);
    let l = &report.latency_ms;
    println!(
        "latency ms         p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  ({:.0} req/s over {:.1}s, concurrency {})",
        l.p50, l.p90, l.p99, l.max, report.requests_per_second, report.seconds, args.concurrency
    );
    let versions: Vec<String> = report
        .versions
        .iter()
        .map(|(v, n)| format!("{v} ({n})"))
        .collect();
    println!("versions seen      {}", versions.join(", "));
    let errors: u64 = report.errors.values().sum();
    println!(
        "errors             {errors}{}",
        if errors > 0 {
            format!(" {:?}", report.errors)
        } else {
            String::new()
        }
    );
    if report.skipped_rows > 0 {
        println!(
            "skipped rows       {} (missing text or country)",
            report.skipped_rows
        );
    }
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}

fn print_summary(summary: &Summary, skipped: u64, json: bool) -> Result<()> {
    if json {
        let mut value = serde_json::to_value(summary)?;
        value["skipped_rows"] = skipped.into();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{summary}");
        if skipped > 0 {
            println!("skipped rows       {skipped} (missing text or country)");
        }
    }
    Ok(())
}

fn predict_live(url: &str, texts: &[String]) -> Result<()> {
    runtime()?.block_on(async {
        let client = predictor::client::http_client(Duration::from_secs(10))?;
        let mut failed = false;
        for text in texts {
            let (status, body) = predict_remote(&client, url, text).await?;
            println!("{}", serde_json::to_string(&body)?);
            failed |= !(200..300).contains(&status);
        }
        if failed {
            bail!("the server answered with an error");
        }
        Ok(())
    })
}

fn predict(args: PredictArgs) -> Result<()> {
    let texts = if args.texts.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<Vec<_>, _>>()
            .context("cannot read stdin (is it UTF-8?)")?
    } else {
        args.texts
    };
    if let Some(url) = &args.target.url {
        return predict_live(url, &texts);
    }
    let model = args.target.load_model()?;
    let mut out = std::io::stdout().lock();
    let mut answer = |text: &str| -> Result<()> {
        let p = model.predict(text);
        writeln!(
            out,
            "{}\t{:.4}\t{}",
            p.is_american,
            p.probability,
            text.replace(['\n', '\t'], " ")
        )?;
        Ok(())
    };
    texts.iter().try_for_each(|t| answer(t))
}

fn demo() -> Result<()> {
    let (train_csv, eval_csv) = predictor::sample::split();
    let settings = TrainSettings::default();
    let file: ModelFile = train_from_bytes(
        train_csv.as_bytes(),
        "built-in sample",
        &settings,
        &now_rfc3339(),
    )?;
    let bytes = file.to_bytes()?;
    let model = Model::from_bytes(&bytes)?;
    println!(
        "trained on the built-in sample: {} tweets, {} n-grams; model file {} bytes, sha256 {}",
        file.training.rows,
        file.vectorizer.vocabulary.len(),
        bytes.len(),
        sha256_hex(&bytes)
    );
    let tweets = predictor::data::read_all(eval_csv.as_bytes(), "built-in sample (held out)")?;
    if tweets.is_empty() {
        bail!("the built-in sample has no held-out rows");
    }
    let mut confusion = predictor::evaluate::Confusion::default();
    for (text, is_american) in &tweets {
        confusion.add(model.predict(text).is_american == 1, *is_american);
    }
    println!(
        "\nevaluated on {} held-out sample tweets:\n{}",
        tweets.len(),
        confusion.summary()
    );
    println!();
    for text in ["#covid19 new york", "Cheers mate, off to the pub in London"] {
        let p = model.predict(text);
        println!(
            "{text:?} -> is_american={} (p={:.3})",
            p.is_american, p.probability
        );
    }
    println!(
        "\nNext: predictor train --data ../shared/data/tweets/train.csv && predictor eval --model model.bin --data ../shared/data/tweets/test.csv"
    );
    Ok(())
}
