//! `predictor`: one CLI to train, evaluate and query the tweet classifier.
//! Thin: parses arguments and calls the library.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use predictor::evaluate::{Summary, evaluate_from};
use predictor::model::{Model, ModelFile, sha256_hex};
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
    /// Score a model file against a labelled CSV.
    Eval(EvalArgs),
    /// Predict tweets given as arguments, or one per line on stdin.
    Predict(PredictArgs),
    /// Train on the built-in sample, evaluate it and show a prediction (no data or network needed).
    Demo,
}

#[derive(Args)]
struct TrainArgs {
    /// Training data: a local path, file://, http:// or https:// URL.
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

#[derive(Args)]
struct EvalArgs {
    /// The model file to evaluate.
    #[arg(long, env = "MODEL")]
    model: PathBuf,
    /// Labelled data: a local path, file://, http:// or https:// URL.
    #[arg(long)]
    data: String,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PredictArgs {
    /// The model file.
    #[arg(long, env = "MODEL")]
    model: PathBuf,
    /// Tweets to classify; none means one per line on stdin.
    texts: Vec<String>,
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
    }
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
    let model = load_model(&args.model)?;
    let bar = byte_progress(&args.data);
    let (summary, skipped) = evaluate_from(&model, &args.data, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    print_summary(&summary, skipped, args.json)
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

fn predict(args: PredictArgs) -> Result<()> {
    let model = load_model(&args.model)?;
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
    if args.texts.is_empty() {
        for line in std::io::stdin().lock().lines() {
            answer(&line.context("cannot read stdin (is it UTF-8?)")?)?;
        }
    } else {
        args.texts.iter().try_for_each(|t| answer(t))?;
    }
    Ok(())
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
