//! What each `predictor` subcommand does, from parsed options to output: orchestration only (the work is
//! in [`crate::train`], [`crate::evaluate`], [`crate::client`], [`crate::server`], [`crate::probe`]).
//! Each returns the crate's [`Error`]; the binary prints it and sets the exit code.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{output, progress};
use crate::client::{evaluate_live, http_client, predict_remote};
use crate::error::{Error, Result};
use crate::evaluate::{Confusion, drift_report, evaluate_from};
use crate::model::{Model, sha256_hex};
use crate::probe::delivery::{self, DeliveryReport, DeliveryRun, Marks, Mode, ProbeFile};
use crate::probe::{self, ProbeConfig};
use crate::server::{self, ServeConfig};
use crate::train::{Pass, TrainSettings, train_from, train_from_bytes};

/// What answers: a model file, or a running server.
#[derive(Clone, Debug)]
pub enum Target {
    Model(PathBuf),
    /// e.g. `http://127.0.0.1:5008`.
    Url(String),
}

/// `predictor train`.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Training data: a local path, file://, http(s)://, hdfs:// or s3:// URL.
    pub data: String,
    pub out: PathBuf,
    /// RFC 3339; `None` means now.
    pub model_date: Option<String>,
    pub settings: TrainSettings,
}

/// `predictor eval`.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub target: Target,
    pub data: String,
    /// Requests in flight at once against a server.
    pub concurrency: usize,
    pub json: bool,
}

/// `predictor serve`.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub config: ServeConfig,
    pub address: SocketAddr,
    /// After SIGTERM, how long to keep answering with readiness false before closing the listener.
    pub shutdown_delay: Duration,
}

/// `predictor probe`.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    pub config: ProbeConfig,
    /// A CSV whose tweets replace `config.texts`.
    pub texts_from: Option<String>,
    /// Where to write the report as markdown, and as JSON with every sample.
    pub report: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// Where to draw the timeline (.png or .svg).
    pub plot: Option<PathBuf>,
}

/// `predictor delivery-report`.
#[derive(Clone, Debug)]
pub struct DeliveryReportOptions {
    pub mode: Mode,
    /// What the probes asked, and how often: named in the report.
    pub url: String,
    pub interval: Duration,
    /// Where to write report.md, summary.json, and each run's timeline-N.png and probe-N.md.
    pub out: PathBuf,
    /// Each run's marks file ([`Marks`]).
    pub marks: Vec<PathBuf>,
}

/// The async runtime of the subcommands that talk HTTP.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("the async runtime", e))
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, contents).map_err(|e| Error::io(path.display().to_string(), e))
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path.display().to_string(), e))
}

fn load_model(path: &Path) -> Result<Model> {
    Model::load(path).map_err(|e| Error::LoadModel {
        path: path.display().to_string(),
        cause: Box::new(e),
    })
}

/// Trains on `data` and writes the model file; prints its size and sha256.
pub fn train(options: TrainOptions) -> Result<()> {
    let model_date = match options.model_date {
        Some(date) => {
            chrono::DateTime::parse_from_rfc3339(&date).map_err(|e| {
                Error::Settings(format!("--model-date {date:?} is not RFC 3339: {e}"))
            })?;
            date
        }
        None => now_rfc3339(),
    };
    let bar = progress::bytes(&options.data);
    let started = Instant::now();
    let file = train_from(
        &options.data,
        &options.settings,
        &model_date,
        &mut |pass, bytes| {
            // The second pass starts over from byte 0.
            if bar.position() > bytes {
                bar.reset();
            }
            bar.set_message(match pass {
                Pass::CountNgrams => "counting n-grams",
                Pass::Fit => "training",
                Pass::Reference => "profiling the rows (drift reference)",
            });
            bar.set_position(bytes);
        },
    )?;
    bar.finish_and_clear();
    let bytes = file.to_bytes()?;
    write_file(&options.out, &bytes)?;
    println!(
        "{}",
        output::trained(
            &file,
            &options.out.display().to_string(),
            bytes.len(),
            &sha256_hex(&bytes),
            started.elapsed()
        )
    );
    Ok(())
}

/// Scores a model file, or a live server, against labelled data. A live evaluation with failed requests
/// is an error (after printing the report).
pub fn eval(options: EvalOptions) -> Result<()> {
    match &options.target {
        Target::Model(path) => {
            let model = load_model(path)?;
            let bar = progress::bytes(&options.data);
            let evaluation = evaluate_from(&model, &options.data, &mut |n| bar.set_position(n))?;
            bar.finish_and_clear();
            let drift = drift_report(&evaluation.profile, model.reference());
            println!(
                "{}",
                output::summary(
                    &evaluation.summary,
                    evaluation.skipped,
                    &drift,
                    options.json
                )?
            );
            Ok(())
        }
        Target::Url(url) => {
            let bar = progress::answers();
            let report =
                runtime()?.block_on(evaluate_live(url, &options.data, options.concurrency, {
                    let bar = bar.clone();
                    move |n| bar.set_position(n)
                }))?;
            bar.finish_and_clear();
            println!(
                "{}",
                output::live_report(&report, options.concurrency, options.json)?
            );
            let errors: u64 = report.errors.values().sum();
            // NB: with --json the failures are in the report and the exit code stays 0, as before.
            if errors > 0 && !options.json {
                return Err(Error::Failed(format!("{errors} requests failed")));
            }
            Ok(())
        }
    }
}

/// Classifies `texts` (none: one per line on stdin) with a model file (tab-separated lines), or asks a
/// server (its JSON answers).
pub fn predict(target: &Target, texts: Vec<String>) -> Result<()> {
    let texts = if texts.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::io("stdin (is it UTF-8?)", e))?
    } else {
        texts
    };
    match target {
        Target::Model(path) => {
            let model = load_model(path)?;
            let mut out = std::io::stdout().lock();
            for text in &texts {
                writeln!(out, "{}", output::prediction(&model.predict(text), text))
                    .map_err(|e| Error::io("stdout", e))?;
            }
            Ok(())
        }
        Target::Url(url) => runtime()?.block_on(async {
            let client = http_client(Duration::from_secs(10))?;
            let mut failed = false;
            for text in &texts {
                let (status, body) = predict_remote(&client, url, text).await?;
                println!("{body}");
                failed |= !(200..300).contains(&status);
            }
            if failed {
                return Err(Error::Failed("the server answered with an error".into()));
            }
            Ok(())
        }),
    }
}

/// Logs to stderr: `RUST_LOG` if set, else info (a line per answer is at debug).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Serves until SIGTERM (after `shutdown_delay`) or Ctrl-C (at once), then drains. Logs to stderr.
pub fn serve(options: ServeOptions) -> Result<()> {
    init_logging();
    options.config.validate()?;
    let ServeOptions {
        config,
        address,
        shutdown_delay,
    } = options;
    // The main thread's runtime is single-threaded like the other serving threads' (see server::run).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("the async runtime", e))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| Error::io(format!("listen address {address}"), e))?;
        tracing::info!(%address, version = %config.version, threads = config.threads, "listening");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Error::io("the SIGTERM handler", e))?;
        let shutdown = async move {
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

/// `predictor publish`: uploads the model file, prints its URL and sha256, and with `update` writes
/// them into that Predictor manifest and commits it.
pub fn publish(model: &Path, to: &str, update: Option<&Path>) -> Result<()> {
    let bytes = std::fs::read(model).map_err(|e| Error::io(model.display().to_string(), e))?;
    let len = bytes.len();
    let title = model
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.bin".into());
    let access = model_store::StoreAccess::from_env()?;
    let published = runtime()?.block_on(crate::publish::publish(bytes, to, &title, &access))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "published {} ({len} bytes)", model.display());
    let _ = writeln!(out, "url: {}", published.url);
    let _ = writeln!(out, "sha256: {}", published.sha256);
    if let Some(manifest) = update {
        let commit = crate::publish::update_and_commit(manifest, &published)?;
        let _ = writeln!(out, "updated {} in commit {commit}", manifest.display());
    }
    Ok(())
}

/// Asks the server on its drain socket to drain (`POST /drain`), then waits `wait` while it keeps
/// answering; fails (after the wait, so the pod's pause is kept) when there is no socket to ask or the
/// server did not accept.
pub fn drain(socket: Option<PathBuf>, wait: Duration) -> Result<()> {
    let asked = match socket {
        Some(path) => runtime()?.block_on(server::request_drain(&path, Duration::from_secs(2))),
        None => Err(Error::Settings(
            "no drain socket: set --drain-socket or DRAIN_SOCKET to what `predictor serve` was given"
                .into(),
        )),
    };
    match &asked {
        Ok(()) => eprintln!("draining; waiting {} ms", wait.as_millis()),
        Err(error) => eprintln!("error: {error}; waiting {} ms anyway", wait.as_millis()),
    }
    std::thread::sleep(wait);
    asked
}

/// Probes a rollout: prints the report, writes the files asked for, and fails when a request failed or
/// the wanted release never answered.
pub fn probe(options: ProbeOptions) -> Result<()> {
    let ProbeOptions {
        mut config,
        texts_from,
        report: report_path,
        json: json_path,
        plot: plot_path,
    } = options;
    if plot_path.is_some() {
        probe::check_can_plot()?;
    }
    if let Some(location) = texts_from {
        let opened = model_store::open(&location)?;
        config.texts = crate::data::read_all(opened.reader, &model_store::redact(&location))?
            .into_iter()
            .map(|(text, _)| text)
            .collect();
        if config.texts.is_empty() {
            return Err(Error::Data(format!(
                "{}: no tweets to send",
                model_store::redact(&location)
            )));
        }
    }
    let started_at = now_rfc3339();
    let bar = progress::requests();
    let samples = runtime()?.block_on(probe::run(&config, |sample| {
        bar.inc(1);
        if let Some(release) = sample.release() {
            bar.set_message(format!("last answer from version {release}"));
        }
    }))?;
    bar.finish_and_clear();
    let report = probe::summarize(&samples, &started_at, &config.load);
    let markdown = probe::render_markdown(&report, &config.url);
    println!("{markdown}");
    if let Some(path) = &report_path {
        write_file(path, &markdown)?;
    }
    if let Some(path) = &json_path {
        let json = serde_json::json!({ "report": report, "samples": samples });
        let text = serde_json::to_string_pretty(&json)
            .map_err(|e| Error::Data(format!("cannot write JSON: {e}")))?;
        write_file(path, text)?;
    }
    if let Some(path) = &plot_path {
        probe::plot(&samples, &report, path)?;
    }
    let until = &config.until;
    if until.is_set() && !samples.iter().any(|s| until.wants(s)) {
        let wanted: Vec<&str> = [&until.version, &until.model]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        return Err(Error::Failed(format!(
            "the wanted release ({}) never answered within {:?}",
            wanted.join(", "),
            config.max_duration
        )));
    }
    if report.failed > 0 {
        return Err(Error::Failed(format!(
            "{} of {} requests failed",
            report.failed, report.requests
        )));
    }
    Ok(())
}

/// Writes the delivery report of `dev/delivery-report`'s runs: per run its record, its timeline with the
/// stages marked and its probe's report; then report.md and summary.json. Fails (after writing them) when a
/// run failed requests or never served the new version.
pub fn delivery_report(options: DeliveryReportOptions) -> Result<()> {
    probe::check_can_plot()?;
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out.display().to_string(), e))?;
    let mut runs: Vec<(DeliveryRun, String)> = Vec::new();
    for path in &options.marks {
        let marks = Marks::parse(&read_file(path)?, &path.display().to_string())?;
        let probe: ProbeFile = serde_json::from_str(&read_file(Path::new(&marks.probe_json))?)
            .map_err(|e| Error::DeliveryInput {
                path: marks.probe_json.clone(),
                reason: format!("not what `predictor probe --json` writes: {e}"),
            })?;
        let record = DeliveryRun::new(&marks, &probe.report);
        let stages = delivery::stage_markers(&marks, &probe.report);
        let timeline = out.join(format!("timeline-{}.png", record.run));
        probe::plot_with_stages(&probe.samples, &probe.report, &stages, &timeline)?;
        let markdown = read_file(Path::new(&marks.probe_report))?;
        write_file(&out.join(format!("probe-{}.md", record.run)), &markdown)?;
        let last_old = record
            .last_old_answer
            .map_or("-".into(), |s| format!("{s}"));
        eprintln!(
            "run {}: every client on {} {last_old} s after the commit; {} of {} failed",
            record.run, record.new, record.failed, record.requests
        );
        runs.push((record, markdown));
    }
    runs.sort_by_key(|(record, _)| record.run);
    let (records, probe_markdown): (Vec<_>, Vec<_>) = runs.into_iter().unzip();
    let report = DeliveryReport::new(options.mode, records);
    write_file(&out.join("summary.json"), report.summary_json()?)?;
    let interval = humantime::format_duration(options.interval).to_string();
    write_file(
        &out.join("report.md"),
        report.to_markdown(&options.url, &interval, &probe_markdown),
    )?;
    let undelivered = report.undelivered();
    if !undelivered.is_empty() {
        return Err(Error::Failed(format!(
            "run(s) {undelivered:?} failed requests or never served the new version (see report.md)"
        )));
    }
    Ok(())
}

/// Trains on the built-in sample, evaluates on its held-out part and shows two predictions.
pub fn demo() -> Result<()> {
    let (train_csv, eval_csv) = crate::sample::split();
    let file = train_from_bytes(
        train_csv.as_bytes(),
        "built-in sample",
        &TrainSettings::default(),
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
    let tweets = crate::data::read_all(eval_csv.as_bytes(), "built-in sample (held out)")?;
    if tweets.is_empty() {
        return Err(Error::Data(
            "the built-in sample has no held-out rows".into(),
        ));
    }
    let mut confusion = Confusion::default();
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
