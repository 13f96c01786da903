//! `predictor probe`: a steady stream of requests during a rollout, and what it saw — when each version was
//! first and last answered, the switch-over time, failed requests and the longest gap between answers.
//! The stream may also ramp up ([`Load`]), to drive an autoscaler.
//!
//! [`run`] does the I/O; [`Load`] (when each request is due) and [`summarize`] (samples in, report out) are
//! pure, and [`render_markdown`] and [`plot`] only format the report.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

use crate::client::{
    Percentiles, endpoint, http_client, http_client_without_keep_alive, predict_remote,
};
use crate::error::{Error, Result};

/// The most requests per second a probe may be asked for: one process's loopback client manages a few
/// tens of thousands, and every request is kept as a [`Sample`] until the end.
pub const MAX_RATE: f64 = 100_000.0;

/// The fewest requests in flight a probe allows (its only bound before ramps).
pub const MIN_IN_FLIGHT: usize = 256;

/// The ticker's shortest period: tokio's timers have millisecond resolution. Higher rates send several
/// requests per tick.
const TICK: Duration = Duration::from_millis(1);

/// How far behind its schedule the probe catches up on one tick: at most what this long at the current
/// rate gives (and at least one request).
// NB: requests due but not sent yet (a late tick, a stalled process) are sent late, never dropped: a short
// delay (timer jitter) is made up on the next tick, a long stall at most 10 ms' worth per tick (10× the
// rate on 1 ms ticks) instead of all at once. A steady load of up to 100 requests/s thus sends at most
// one per tick: what the fixed-interval ticker (missed ticks skipped) did before ramps.
const CATCH_UP: Duration = Duration::from_millis(10);

/// A request due within this fraction of one is due now.
// NB: on a steady load each tick should find exactly one more request due; f64 and nanosecond rounding can
// put the integral a hair below the whole number on the tick's deadline.
const EARLY: f64 = 1e-3;

/// The request rate over time: `base_rate` requests/s at the start, rising (or falling) linearly to
/// `peak_rate` over `ramp`, then `peak_rate` until the probe stops. Steady: `peak_rate == base_rate`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Load {
    pub base_rate: f64,
    pub peak_rate: f64,
    pub ramp: Duration,
}

impl Load {
    /// Steady: `rate` requests/s.
    pub fn steady(rate: f64) -> Self {
        Self {
            base_rate: rate,
            peak_rate: rate,
            ramp: Duration::ZERO,
        }
    }

    /// Steady: one request every `interval` (> 0).
    pub fn every(interval: Duration) -> Self {
        Self::steady(1.0 / interval.as_secs_f64())
    }

    /// This load's start, then a linear change to `peak_rate` requests/s over `ramp`, then `peak_rate`.
    pub fn ramping_to(self, peak_rate: f64, ramp: Duration) -> Self {
        Self {
            peak_rate,
            ramp,
            ..self
        }
    }

    /// Whether the rate changes over time.
    pub fn is_ramp(&self) -> bool {
        self.peak_rate != self.base_rate
    }

    /// Fails unless both rates are positive and at most [`MAX_RATE`].
    pub fn check(&self) -> Result<()> {
        for rate in [self.base_rate, self.peak_rate] {
            check_rate(rate).map_err(Error::Settings)?;
        }
        Ok(())
    }

    /// Requests per second at `elapsed`.
    pub fn rate(&self, elapsed: Duration) -> f64 {
        let (t, ramp) = (elapsed.as_secs_f64(), self.ramp.as_secs_f64());
        if t < ramp {
            self.base_rate + (self.peak_rate - self.base_rate) * t / ramp
        } else {
            self.peak_rate
        }
    }

    /// How many requests are due by `elapsed`: the first at 0 (the probe starts with one, as it always
    /// did), then one each time the integral of the rate since the start passes a whole number.
    pub fn due(&self, elapsed: Duration) -> u64 {
        let (t, ramp) = (elapsed.as_secs_f64(), self.ramp.as_secs_f64());
        let integral = if t < ramp {
            self.base_rate * t + (self.peak_rate - self.base_rate) * t * t / (2.0 * ramp)
        } else {
            (self.base_rate + self.peak_rate) / 2.0 * ramp + self.peak_rate * (t - ramp)
        };
        (integral + EARLY).floor() as u64 + 1
    }

    /// How many requests to send at `elapsed` when `sent` went already: those due, at most
    /// [`CATCH_UP`]'s worth at the current rate (at least 1).
    pub fn to_send(&self, elapsed: Duration, sent: u64) -> u64 {
        let most = (self.rate(elapsed) * CATCH_UP.as_secs_f64())
            .ceil()
            .max(1.0) as u64;
        self.due(elapsed).saturating_sub(sent).min(most)
    }

    /// The ticker's period: a steady load's interval (one request per tick, as before ramps), else (or
    /// above 1000 requests/s) [`TICK`].
    pub fn tick(&self) -> Duration {
        if self.is_ramp() {
            return TICK;
        }
        // NB: 1 / rate overflows a Duration only for an interval of centuries.
        Duration::try_from_secs_f64(1.0 / self.base_rate)
            .unwrap_or(Duration::MAX)
            .max(TICK)
    }

    /// How many requests may be in flight at once: what the peak rate puts in flight when every answer
    /// takes the whole `request_timeout` (Little's law), and at least [`MIN_IN_FLIGHT`].
    // NB: a request slower than the timeout fails anyway, so this bound never turns an answer that would
    // have come in time into a failure; it only stops a hung server from piling up connections without end
    // (at 3000/s and the 2 s default timeout: 6000).
    pub fn max_in_flight(&self, request_timeout: Duration) -> usize {
        let rate = self.base_rate.max(self.peak_rate);
        ((rate * request_timeout.as_secs_f64()).ceil() as usize).max(MIN_IN_FLIGHT)
    }
}

/// `rate` if it is a usable requests/s figure (positive, at most [`MAX_RATE`]), else why not.
pub fn check_rate(rate: f64) -> Result<f64, String> {
    if rate > 0.0 && rate <= MAX_RATE {
        Ok(rate)
    } else {
        Err(format!(
            "{rate} requests/s: a rate must be above 0 and at most {MAX_RATE}"
        ))
    }
}

/// What to probe and when to stop.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    pub url: String,
    /// When to send requests (on schedule, not after the previous answer).
    pub load: Load,
    /// Stop once what answers is what [`Until`] wants, and nothing else has answered for `settle`.
    pub until: Until,
    pub settle: Duration,
    /// Stop after this long in any case.
    pub max_duration: Duration,
    /// Give up on one request after this long (counted as a failure).
    pub request_timeout: Duration,
    /// The tweets to send, in turn (request `i` sends `texts[i % len]`); at least one.
    pub texts: Vec<String>,
    /// Reuse connections (one client), or open one per request (many clients: a Service's
    /// kube-proxy then spreads requests, not connections, over its endpoints).
    pub keep_alive: bool,
}

/// The release a probe waits for: a code version, a model (sha256 or a prefix of it), or both.
/// Empty means "run until `max_duration`".
#[derive(Clone, Debug, Default)]
pub struct Until {
    pub version: Option<String>,
    pub model: Option<String>,
}

impl Until {
    pub fn is_set(&self) -> bool {
        self.version.is_some() || self.model.is_some()
    }

    /// Whether this answer comes from the wanted release. Answers carry the first 12 hex digits of the
    /// model's sha256, so a full digest and a prefix both match.
    pub fn wants(&self, sample: &Sample) -> bool {
        let version_ok = self
            .version
            .as_ref()
            .is_none_or(|v| sample.version.as_ref() == Some(v));
        let model_ok = self.model.as_ref().is_none_or(|wanted| {
            sample.model.as_ref().is_some_and(|m| {
                !m.is_empty() && (wanted.starts_with(m.as_str()) || m.starts_with(wanted.as_str()))
            })
        });
        self.is_set() && sample.failure.is_none() && version_ok && model_ok
    }
}

/// One request's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// When it was sent, ms after the probe started.
    pub sent_ms: f64,
    pub latency_ms: f64,
    /// The version that answered, if it answered 200.
    pub version: Option<String>,
    /// The model that answered (first 12 hex digits of its sha256), if the answer says.
    pub model: Option<String>,
    /// Why it failed (`HTTP 503`, `cannot connect`, …), if it did.
    pub failure: Option<String>,
}

impl Sample {
    /// What answered, as one label: `0.2` or `0.2 · model 1a2b3c4d5e6f`. None for a failure.
    pub fn release(&self) -> Option<String> {
        let version = self.version.as_ref()?;
        Some(match &self.model {
            Some(model) => format!("{version} · model {model}"),
            None => version.clone(),
        })
    }
}

/// When one release (version, and model when the answers name it) was seen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VersionSpan {
    pub version: String,
    pub first_ms: f64,
    pub last_ms: f64,
    pub answers: u64,
}

/// What the probe found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeReport {
    pub started_at: String,
    pub requests: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    /// In order of first appearance.
    pub versions: Vec<VersionSpan>,
    /// From the first answer of the last version to the last answer of any other version (0 if only one).
    pub switch_over_ms: Option<f64>,
    /// Longest time between two consecutive successful answers (by send time).
    pub longest_gap_ms: f64,
    pub latency_ms: Percentiles,
    pub duration_ms: f64,
    /// Time between requests at the start (1000 / the base rate).
    pub interval_ms: f64,
    /// How the rate rose, when it did.
    pub ramp: Option<RampReport>,
    /// Requests sent in the busiest whole second of the run (second k is [k, k+1) s after the start): the
    /// highest rate reached, in requests/s.
    pub peak_requests_per_second: u64,
}

/// A ramp's configuration, as [`ProbeReport`] states it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RampReport {
    /// Requests/s at the end of the ramp and after it.
    pub peak_rate: f64,
    pub duration_ms: f64,
}

/// Pure: the report of a list of samples (in send order) sent as `load` scheduled them.
pub fn summarize(samples: &[Sample], started_at: &str, load: &Load) -> ProbeReport {
    let mut versions: Vec<VersionSpan> = Vec::new();
    let mut failures = BTreeMap::new();
    let mut latencies = Vec::new();
    let (mut previous_ok, mut longest_gap_ms) = (None::<f64>, 0.0f64);
    for sample in samples {
        match (sample.release(), &sample.failure) {
            (Some(version), None) => {
                match versions.iter_mut().find(|v| v.version == version) {
                    Some(span) => {
                        span.first_ms = span.first_ms.min(sample.sent_ms);
                        span.last_ms = span.last_ms.max(sample.sent_ms);
                        span.answers += 1;
                    }
                    None => versions.push(VersionSpan {
                        version,
                        first_ms: sample.sent_ms,
                        last_ms: sample.sent_ms,
                        answers: 1,
                    }),
                }
                if let Some(previous) = previous_ok {
                    longest_gap_ms = longest_gap_ms.max(sample.sent_ms - previous);
                }
                previous_ok = Some(sample.sent_ms);
                latencies.push(Duration::from_secs_f64(sample.latency_ms / 1e3));
            }
            _ => {
                let kind = sample
                    .failure
                    .clone()
                    .unwrap_or_else(|| "no version in answer".into());
                *failures.entry(kind).or_insert(0u64) += 1;
            }
        }
    }
    let switch_over_ms = versions.last().map(|newest| {
        let old_last = versions[..versions.len() - 1]
            .iter()
            .map(|v| v.last_ms)
            .fold(f64::NEG_INFINITY, f64::max);
        if old_last.is_finite() {
            (old_last - newest.first_ms).max(0.0)
        } else {
            0.0
        }
    });
    let duration_ms = samples.last().map_or(0.0, |s| s.sent_ms + s.latency_ms);
    let mut per_second = BTreeMap::<u64, u64>::new();
    for sample in samples {
        *per_second.entry((sample.sent_ms / 1e3) as u64).or_default() += 1;
    }
    ProbeReport {
        started_at: started_at.to_string(),
        requests: samples.len() as u64,
        failed: failures.values().sum(),
        failures,
        versions,
        switch_over_ms,
        longest_gap_ms,
        latency_ms: Percentiles::of(&mut latencies),
        duration_ms,
        interval_ms: 1e3 / load.base_rate,
        ramp: load.is_ramp().then_some(RampReport {
            peak_rate: load.peak_rate,
            duration_ms: load.ramp.as_secs_f64() * 1e3,
        }),
        peak_requests_per_second: per_second.into_values().max().unwrap_or(0),
    }
}

/// What the stop condition needs from the answers so far, updated as each arrives: when the wanted release
/// first answered, and when anything else last did (a failed request counts as "something else").
#[derive(Clone, Copy, Debug)]
struct Quiet {
    first_wanted_ms: f64,
    last_other_ms: f64,
}

impl Default for Quiet {
    fn default() -> Self {
        Self {
            first_wanted_ms: f64::INFINITY,
            last_other_ms: f64::NEG_INFINITY,
        }
    }
}

impl Quiet {
    fn add(&mut self, until: &Until, sample: &Sample) {
        if until.wants(sample) {
            self.first_wanted_ms = self.first_wanted_ms.min(sample.sent_ms);
        } else {
            self.last_other_ms = self.last_other_ms.max(sample.sent_ms);
        }
    }

    /// Whether the probe may stop: the wanted release answered, and nothing else has for `settle_ms`.
    // NB: kept up to date instead of recomputed from every answer on every tick: at thousands of requests
    // per second on 1 ms ticks, that rescan was quadratic.
    fn settled(&self, settle_ms: f64, now_ms: f64) -> bool {
        self.first_wanted_ms.is_finite()
            && now_ms - self.last_other_ms.max(self.first_wanted_ms) >= settle_ms
    }
}

/// What every request's task shares.
struct Requests {
    client: reqwest::Client,
    endpoint: String,
    started: Instant,
    /// Bounds requests in flight, so a hung server cannot make the probe pile up connections.
    in_flight: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<(usize, Sample)>,
}

impl Requests {
    /// Sends request `index` with `text` in a task of its own, which reports its sample on the channel.
    /// Beyond the in-flight bound it is not sent, and is a failure ("too many requests in flight").
    fn spawn(&self, index: usize, text: String) {
        let (client, endpoint, tx) = (self.client.clone(), self.endpoint.clone(), self.tx.clone());
        let (started, permit) = (self.started, self.in_flight.clone().try_acquire_owned());
        tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = match permit {
                Ok(_permit) => predict_remote(&client, &endpoint, &text).await,
                Err(_) => Err(Error::Source {
                    location: endpoint.clone(),
                    reason: "too many requests in flight".into(),
                }),
            };
            let (version, model, failure) = match outcome {
                Ok((200, body)) => match body["version"].as_str() {
                    Some(v) => (
                        Some(v.to_string()),
                        body["model"].as_str().map(str::to_string),
                        None,
                    ),
                    None => (None, None, Some("no version in answer".to_string())),
                },
                Ok((status, _)) => (None, None, Some(format!("HTTP {status}"))),
                Err(Error::Source { reason, .. }) => (
                    None,
                    None,
                    Some(reason.split(':').next().unwrap_or("failed").to_string()),
                ),
                Err(other) => (None, None, Some(other.to_string())),
            };
            let sample = Sample {
                sent_ms: sent.duration_since(started).as_secs_f64() * 1e3,
                latency_ms: sent.elapsed().as_secs_f64() * 1e3,
                version,
                model,
                failure,
            };
            let _ = tx.send((index, sample));
        });
    }
}

/// Sends requests as `config.load` schedules them until a stop condition holds; returns the samples in
/// send order.
pub async fn run(config: &ProbeConfig, mut on_sample: impl FnMut(&Sample)) -> Result<Vec<Sample>> {
    if config.texts.is_empty() {
        return Err(Error::Data("the probe has no text to send".into()));
    }
    config.load.check()?;
    let client = if config.keep_alive {
        http_client(config.request_timeout)?
    } else {
        http_client_without_keep_alive(config.request_timeout)?
    };
    let started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Sample)>();
    let requests = Requests {
        client,
        endpoint: endpoint(&config.url),
        started,
        in_flight: Arc::new(Semaphore::new(
            config.load.max_in_flight(config.request_timeout),
        )),
        tx,
    };
    // Ticks on the schedule's own clock: a steady load's request k is due at k intervals after `started`.
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::from_std(started), config.load.tick());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut samples: Vec<Option<Sample>> = Vec::new();
    // Requests sent and not yet answered.
    let mut pending = 0usize;
    let mut quiet = Quiet::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let elapsed = started.elapsed();
                let stop = config.until.is_set()
                    && quiet.settled(config.settle.as_secs_f64() * 1e3, elapsed.as_secs_f64() * 1e3);
                if stop || elapsed >= config.max_duration {
                    break;
                }
                for _ in 0..config.load.to_send(elapsed, samples.len() as u64) {
                    let index = samples.len();
                    samples.push(None);
                    pending += 1;
                    requests.spawn(index, config.texts[index % config.texts.len()].clone());
                }
            }
            Some((index, sample)) = rx.recv() => {
                on_sample(&sample);
                quiet.add(&config.until, &sample);
                samples[index] = Some(sample);
                pending -= 1;
            }
        }
    }
    drop(requests);
    // Wait (bounded by the request timeout) for the answers still in flight.
    let deadline = tokio::time::Instant::now() + config.request_timeout + Duration::from_secs(1);
    while pending > 0 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((index, sample))) => {
                on_sample(&sample);
                samples[index] = Some(sample);
                pending -= 1;
            }
            _ => break,
        }
    }
    Ok(samples.into_iter().flatten().collect())
}

/// The report as markdown: a table per version, then the figures.
pub fn render_markdown(report: &ProbeReport, url: &str) -> String {
    let mut load = if report.interval_ms >= 1.0 {
        format!("one request every {:.0} ms", report.interval_ms)
    } else {
        format!("{:.0} requests/s", 1e3 / report.interval_ms)
    };
    if let Some(ramp) = &report.ramp {
        load.push_str(&format!(
            ", then linearly to {:.0} requests/s over {:.1} s",
            ramp.peak_rate,
            ramp.duration_ms / 1e3
        ));
    }
    let mut out = format!(
        "## Rollout probe of {url}\n\nStarted {} · {load} · {} requests over {:.1} s\n\n",
        report.started_at,
        report.requests,
        report.duration_ms / 1e3
    );
    out.push_str("| version | first answer (s) | last answer (s) | answers |\n|---|---|---|---|\n");
    for v in &report.versions {
        out.push_str(&format!(
            "| {} | {:.3} | {:.3} | {} |\n",
            v.version,
            v.first_ms / 1e3,
            v.last_ms / 1e3,
            v.answers
        ));
    }
    let failures = if report.failures.is_empty() {
        "none".to_string()
    } else {
        report
            .failures
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!(
        "\n| figure | value |\n|---|---|\n| failed requests | {} ({failures}) |\n| switch-over (first new answer → last old answer) | {} |\n| longest gap between answers | {:.0} ms |\n| latency p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |\n| requests in the busiest second | {} |\n",
        report.failed,
        report.switch_over_ms.map_or("-".into(), |ms| format!("{:.3} s", ms / 1e3)),
        report.longest_gap_ms,
        report.latency_ms.p50,
        report.latency_ms.p99,
        report.latency_ms.max,
        report.peak_requests_per_second,
    ));
    out
}

/// Fails unless this build can draw timelines: the `plot` cargo feature (on by default, off in the serving
/// image). Checked before probing, so a missing feature costs no rollout.
pub fn check_can_plot() -> Result<()> {
    if cfg!(feature = "plot") {
        Ok(())
    } else {
        Err(Error::Settings(
            "--plot needs the `plot` cargo feature, which this build of predictor leaves out \
             (built with --no-default-features); rebuild with `--features plot`"
                .into(),
        ))
    }
}

/// Without the `plot` feature: the error of [`check_can_plot`].
#[cfg(not(feature = "plot"))]
pub fn plot(_samples: &[Sample], _report: &ProbeReport, _path: &Path) -> Result<()> {
    check_can_plot()
}

/// Where the plot's font comes from: the system's DejaVu Sans (Debian `fonts-dejavu-core`).
#[cfg(feature = "plot")]
const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Draws the timeline (latency of each answer over time, one colour per version, failures in red at the
/// top) to `path`: SVG if it ends in `.svg`, else PNG.
#[cfg(feature = "plot")]
pub fn plot(samples: &[Sample], report: &ProbeReport, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let font = FONT_PATHS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or_else(|| {
            Error::Settings(format!(
                "plotting needs a font: install fonts-dejavu-core ({})",
                FONT_PATHS[0]
            ))
        })?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| Error::Settings("the DejaVu font could not be loaded".into()))?;
    if path.extension().is_some_and(|e| e == "svg") {
        draw_timeline(
            SVGBackend::new(path, (1000, 500)).into_drawing_area(),
            samples,
            report,
            path,
        )
    } else {
        draw_timeline(
            BitMapBackend::new(path, (1000, 500)).into_drawing_area(),
            samples,
            report,
            path,
        )
    }
}

#[cfg(feature = "plot")]
fn draw_timeline<DB: plotters::prelude::DrawingBackend>(
    root: plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    samples: &[Sample],
    report: &ProbeReport,
    path: &Path,
) -> Result<()> {
    use plotters::prelude::*;
    let fail = |e: &dyn std::fmt::Display| {
        Error::io(
            path.display().to_string(),
            std::io::Error::other(e.to_string()),
        )
    };
    let x_max = (report.duration_ms / 1e3).max(0.001);
    let y_max = samples.iter().map(|s| s.latency_ms).fold(1.0, f64::max) * 1.15;
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Requests during the rollout: latency by version",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("latency ms")
        .draw()
        .map_err(|e| fail(&e))?;
    let palette = [BLUE, GREEN, MAGENTA, CYAN, BLACK];
    for (i, span) in report.versions.iter().enumerate() {
        let color = palette[i % palette.len()];
        let points = samples
            .iter()
            .filter(|s| s.release().as_deref() == Some(span.version.as_str()));
        chart
            .draw_series(
                points.map(|s| Circle::new((s.sent_ms / 1e3, s.latency_ms), 2, color.filled())),
            )
            .map_err(|e| fail(&e))?
            .label(format!("version {}", span.version))
            .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
    }
    let failures = samples.iter().filter(|s| s.failure.is_some());
    chart
        .draw_series(
            failures.map(|s| Cross::new((s.sent_ms / 1e3, y_max * 0.97), 4, RED.stroke_width(2))),
        )
        .map_err(|e| fail(&e))?
        .label(format!("failed ({})", report.failed))
        .legend(|(x, y)| Cross::new((x, y), 4, RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `samples`, answered in any order, let the probe stop at `now_ms`.
    fn settled(samples: &[Sample], until: &Until, settle_ms: f64, now_ms: f64) -> bool {
        let mut quiet = Quiet::default();
        for sample in samples {
            quiet.add(until, sample);
        }
        quiet.settled(settle_ms, now_ms)
    }

    fn config(url: String, texts: &[&str]) -> ProbeConfig {
        ProbeConfig {
            url,
            load: Load::every(Duration::from_millis(5)),
            until: Until::default(),
            settle: Duration::from_secs(1),
            max_duration: Duration::from_millis(300),
            request_timeout: Duration::from_secs(2),
            texts: texts.iter().map(|t| t.to_string()).collect(),
            keep_alive: true,
        }
    }

    /// What the recording server saw: each request's text and the client port it came from.
    type Seen = Arc<std::sync::Mutex<Vec<(String, u16)>>>;

    /// A server on loopback that answers every prediction and records what it was sent.
    async fn recording_server() -> (String, Seen) {
        use axum::extract::{ConnectInfo, State};
        use axum::{Json, Router, routing::post};
        use std::net::SocketAddr;
        let seen = Seen::default();
        let app = Router::new()
            .route(
                "/api/american",
                post(
                    |State(seen): State<Seen>,
                     ConnectInfo(peer): ConnectInfo<SocketAddr>,
                     Json(body): Json<serde_json::Value>| async move {
                        let text = body["text"].as_str().unwrap().to_string();
                        seen.lock().unwrap().push((text, peer.port()));
                        Json(serde_json::json!({"is_american": 1, "version": "1", "model": "abc"}))
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, seen)
    }

    /// Distinct client connections among what the server saw.
    fn connections(seen: &[(String, u16)]) -> usize {
        seen.iter()
            .map(|(_, port)| port)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    }

    #[tokio::test]
    async fn sends_the_texts_in_turn() {
        let (url, seen) = recording_server().await;
        let samples = run(&config(url, &["a", "b", "c"]), |_| {}).await.unwrap();
        assert!(samples.len() >= 6, "{} samples", samples.len());
        assert!(samples.iter().all(|s| s.failure.is_none()), "{samples:?}");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), samples.len());
        let count = |t: &str| seen.iter().filter(|(s, _)| s == t).count();
        // In turn: a, b, c, a, … (answers may come back out of order, the counts cannot).
        let (a, b, c) = (count("a"), count("b"), count("c"));
        assert_eq!(a + b + c, seen.len(), "{seen:?}");
        assert!(a >= b && b >= c && a - c <= 1, "{seen:?}");
        // One client: kept-alive connections are reused.
        assert!(connections(&seen) < seen.len(), "{seen:?}");
    }

    #[tokio::test]
    async fn without_keep_alive_every_request_has_its_own_connection() {
        let (url, seen) = recording_server().await;
        let mut config = config(url, &["a"]);
        config.keep_alive = false;
        let samples = run(&config, |_| {}).await.unwrap();
        assert!(samples.iter().all(|s| s.failure.is_none()), "{samples:?}");
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 6, "{seen:?}");
        assert_eq!(connections(&seen), seen.len(), "{seen:?}");
    }

    #[tokio::test]
    async fn no_text_is_an_error_before_any_request() {
        let (url, seen) = recording_server().await;
        let err = run(&config(url, &[]), |_| {}).await.unwrap_err();
        assert!(err.to_string().contains("no text"), "{err}");
        assert!(seen.lock().unwrap().is_empty());
    }

    fn ok(sent_ms: f64, version: &str) -> Sample {
        Sample {
            sent_ms,
            latency_ms: 1.0,
            version: Some(version.into()),
            model: None,
            failure: None,
        }
    }

    fn failed(sent_ms: f64, why: &str) -> Sample {
        Sample {
            sent_ms,
            latency_ms: 5.0,
            version: None,
            model: None,
            failure: Some(why.into()),
        }
    }

    #[test]
    fn rollout_with_overlap_and_a_failure() {
        let samples = vec![
            ok(0.0, "0.1"),
            ok(20.0, "0.1"),
            ok(40.0, "0.2"),
            failed(60.0, "HTTP 503"),
            ok(80.0, "0.1"),
            ok(100.0, "0.2"),
            ok(120.0, "0.2"),
        ];
        let report = summarize(&samples, "t0", &Load::every(Duration::from_millis(20)));
        assert_eq!(report.requests, 7);
        assert_eq!(report.failed, 1);
        assert_eq!(report.failures["HTTP 503"], 1);
        assert_eq!(report.versions.len(), 2);
        assert_eq!(
            (
                report.versions[0].first_ms,
                report.versions[0].last_ms,
                report.versions[0].answers
            ),
            (0.0, 80.0, 3)
        );
        assert_eq!(
            (
                report.versions[1].first_ms,
                report.versions[1].last_ms,
                report.versions[1].answers
            ),
            (40.0, 120.0, 3)
        );
        assert_eq!(report.switch_over_ms, Some(40.0));
        assert_eq!(report.longest_gap_ms, 40.0);
        let md = render_markdown(&report, "http://x");
        assert!(
            md.contains("| 0.2 | 0.040 | 0.120 | 3 |")
                && md.contains("failed requests | 1 (HTTP 503: 1)"),
            "{md}"
        );
    }

    #[test]
    fn a_single_version_has_no_switch_over() {
        let report = summarize(
            &[ok(0.0, "0.1"), ok(20.0, "0.1")],
            "t0",
            &Load::every(Duration::from_millis(20)),
        );
        assert_eq!(report.switch_over_ms, Some(0.0));
        assert_eq!(report.failed, 0);
        assert_eq!(
            summarize(&[], "t0", &Load::every(Duration::from_millis(20))).switch_over_ms,
            None
        );
    }

    #[test]
    fn settles_only_after_the_quiet_period() {
        let samples = vec![
            ok(0.0, "0.1"),
            ok(20.0, "0.2"),
            ok(40.0, "0.1"),
            ok(60.0, "0.2"),
        ];
        let version = |v: &str| Until {
            version: Some(v.into()),
            model: None,
        };
        assert!(!settled(&samples, &version("0.2"), 100.0, 100.0));
        assert!(settled(&samples, &version("0.2"), 100.0, 140.0));
        assert!(!settled(&samples, &version("0.3"), 0.0, 1000.0));
        assert!(!settled(&samples, &Until::default(), 0.0, 1000.0));
    }

    #[test]
    fn a_model_only_rollout_is_told_apart_by_the_model_digest() {
        let with_model = |sent_ms: f64, model: &str| Sample {
            model: Some(model.into()),
            ..ok(sent_ms, "0.2")
        };
        let samples = vec![
            with_model(0.0, "aaaaaaaaaaaa"),
            with_model(20.0, "bbbbbbbbbbbb"),
            with_model(40.0, "aaaaaaaaaaaa"),
            with_model(60.0, "bbbbbbbbbbbb"),
        ];
        let report = summarize(&samples, "t0", &Load::every(Duration::from_millis(20)));
        let labels: Vec<_> = report.versions.iter().map(|v| v.version.as_str()).collect();
        assert_eq!(
            labels,
            ["0.2 · model aaaaaaaaaaaa", "0.2 · model bbbbbbbbbbbb"]
        );
        assert_eq!(report.switch_over_ms, Some(20.0));
        // A full sha256 matches the 12-digit prefix the answers carry; another digest does not.
        let full = format!("{}{}", "b".repeat(12), "0".repeat(52));
        let until = |model: &str| Until {
            version: None,
            model: Some(model.into()),
        };
        assert!(until(&full).wants(&samples[1]));
        assert!(!until(&full).wants(&samples[0]));
        assert!(settled(&samples, &until(&full), 50.0, 110.0));
        assert!(!settled(&samples, &until(&"c".repeat(64)), 0.0, 1000.0));
        // Both set: the version must match too.
        let both = Until {
            version: Some("0.3".into()),
            model: Some(full),
        };
        assert!(!both.wants(&samples[1]));
    }

    /// 10 requests/s rising by 10/s each second to 110/s at 10 s: whole numbers all along.
    fn ten_to_110_over_10s() -> Load {
        Load::steady(10.0).ramping_to(110.0, Duration::from_secs(10))
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_steady_load_is_one_request_per_interval_from_the_start() {
        let load = Load::every(Duration::from_millis(20));
        assert_eq!(load, Load::steady(50.0));
        assert!(!load.is_ramp());
        assert_eq!(load.tick(), Duration::from_millis(20));
        assert_eq!(
            [0.0, 0.019, 0.020, 0.039, 1.0].map(|s| load.due(secs(s))),
            [1, 1, 2, 2, 51]
        );
        // A tick a hair before its deadline (rounding) still sends that request.
        assert_eq!(load.due(Duration::from_nanos(19_999_990)), 2);
        // On schedule, one per tick; behind it, still one per tick (50/s × 10 ms < 1).
        assert_eq!(load.to_send(secs(1.0), 50), 1);
        assert_eq!(load.to_send(secs(1.0), 51), 0);
        assert_eq!(load.to_send(secs(1.0), 0), 1);
        // Above 1000/s: 1 ms ticks, several requests per tick.
        assert_eq!(Load::steady(3000.0).tick(), Duration::from_millis(1));
        assert_eq!(Load::steady(3000.0).due(secs(1.0)), 3001);
    }

    #[test]
    fn a_ramp_sends_the_integral_of_its_rate() {
        let load = ten_to_110_over_10s();
        assert!(load.is_ramp());
        assert_eq!(load.tick(), Duration::from_millis(1));
        // Mid-ramp: 10·t + 10·t²/2 requests after the first.
        assert_eq!((load.rate(secs(2.0)), load.due(secs(2.0))), (30.0, 41));
        assert_eq!((load.rate(secs(5.0)), load.due(secs(5.0))), (60.0, 176));
        // The ramp's end: (10 + 110) / 2 · 10 s; after it, 110/s.
        assert_eq!((load.rate(secs(10.0)), load.due(secs(10.0))), (110.0, 601));
        assert_eq!((load.rate(secs(12.0)), load.due(secs(12.0))), (110.0, 821));
        // A zero-length ramp is a step to the peak.
        let step = Load::steady(50.0).ramping_to(3000.0, Duration::ZERO);
        assert_eq!((step.rate(secs(0.0)), step.due(secs(1.0))), (3000.0, 3001));
    }

    #[test]
    fn one_tick_catches_up_at_most_10_ms_at_the_current_rate() {
        let load = Load::steady(50.0).ramping_to(3000.0, Duration::from_secs(10));
        let at_peak = secs(11.0);
        let due = load.due(at_peak);
        // (50 + 3000) / 2 · 10 s + 3000 · 1 s, and the first.
        assert_eq!(due, 18_251);
        assert_eq!(load.to_send(at_peak, due - 3), 3);
        // 3000/s × 10 ms.
        assert_eq!(load.to_send(at_peak, due - 1000), 30);
        assert_eq!(load.to_send(at_peak, 0), 30);
        assert_eq!(load.to_send(at_peak, due), 0);
        // At least one per tick however low the rate: 1525/s × 10 ms = 15.25 → 16; 50/s → 1.
        assert_eq!(load.to_send(secs(5.0), 0), 16);
        assert_eq!(load.to_send(secs(0.0), 0), 1);
    }

    #[test]
    fn the_in_flight_bound_is_what_the_peak_rate_needs_within_the_timeout() {
        let timeout = Duration::from_secs(2);
        assert_eq!(Load::steady(50.0).max_in_flight(timeout), MIN_IN_FLIGHT);
        let ramp = Load::steady(50.0).ramping_to(3000.0, Duration::from_secs(10));
        assert_eq!(ramp.max_in_flight(timeout), 6000);
        assert!(ramp.check().is_ok());
        for bad in [
            Load::steady(0.0),
            Load::steady(50.0).ramping_to(1e6, timeout),
        ] {
            let error = bad.check().unwrap_err().to_string();
            assert!(error.contains("at most 100000"), "{error}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_follows_a_ramp() {
        let (url, seen) = recording_server().await;
        let mut config = config(url, &["a", "b"]);
        config.load = Load::steady(100.0).ramping_to(2000.0, Duration::from_millis(200));
        config.max_duration = Duration::from_millis(400);
        let samples = run(&config, |_| {}).await.unwrap();
        // (100 + 2000) / 2 · 0.2 s + 2000 · 0.2 s + the first = 611 by 400 ms, never more; at least half
        // of them even on a busy machine (a debug build, the server in this process: 460-610 seen on 2
        // shared cores), far above the base rate's 41. Several requests per tick: `to_send`'s tests.
        let due = config.load.due(config.max_duration);
        assert_eq!(due, 611);
        assert!(
            (306..=due as usize).contains(&samples.len()),
            "{} samples",
            samples.len()
        );
        assert!(samples.iter().all(|s| s.failure.is_none()), "{samples:?}");
        assert_eq!(seen.lock().unwrap().len(), samples.len());
    }

    #[tokio::test]
    async fn a_load_beyond_the_ceiling_is_an_error_before_any_request() {
        let (url, seen) = recording_server().await;
        let mut config = config(url, &["a"]);
        config.load = Load::steady(50.0).ramping_to(1e6, Duration::from_secs(1));
        let err = run(&config, |_| {}).await.unwrap_err();
        assert!(err.to_string().contains("at most 100000"), "{err}");
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn a_ramped_report_states_the_ramp_and_the_busiest_second() {
        let samples = vec![
            ok(0.0, "0.1"),
            ok(500.0, "0.1"),
            ok(1000.0, "0.1"),
            ok(1200.0, "0.1"),
            failed(1500.0, "HTTP 503"),
        ];
        let load = Load::steady(50.0).ramping_to(3000.0, Duration::from_secs(10));
        let report = summarize(&samples, "t0", &load);
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::json!({
                "started_at": "t0",
                "requests": 5,
                "failed": 1,
                "failures": {"HTTP 503": 1},
                "versions": [{"version": "0.1", "first_ms": 0.0, "last_ms": 1200.0, "answers": 4}],
                "switch_over_ms": 0.0,
                "longest_gap_ms": 500.0,
                "latency_ms": {"p50": 1.0, "p90": 1.0, "p99": 1.0, "max": 1.0},
                "duration_ms": 1505.0,
                "interval_ms": 20.0,
                "ramp": {"peak_rate": 3000.0, "duration_ms": 10000.0},
                "peak_requests_per_second": 3,
            })
        );
        let md = render_markdown(&report, "http://x");
        assert!(
            md.contains("one request every 20 ms, then linearly to 3000 requests/s over 10.0 s")
                && md.contains("| requests in the busiest second | 3 |"),
            "{md}"
        );
        // Steady: no ramp; above 1000/s the header gives the rate.
        let steady = summarize(&samples, "t0", &Load::steady(3000.0));
        assert_eq!(steady.ramp, None);
        let md = render_markdown(&steady, "http://x");
        assert!(md.contains("· 3000 requests/s · 5 requests"), "{md}");
    }

    #[cfg(feature = "plot")]
    #[test]
    fn plots_svg_and_png() {
        let samples = vec![ok(0.0, "0.1"), failed(20.0, "HTTP 503"), ok(40.0, "0.2")];
        let report = summarize(&samples, "t0", &Load::every(Duration::from_millis(20)));
        let dir = tempfile::tempdir().unwrap();
        for name in ["t.svg", "t.png"] {
            let path = dir.path().join(name);
            plot(&samples, &report, &path).unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() > 1000, "{name}");
        }
        let svg = std::fs::read_to_string(dir.path().join("t.svg")).unwrap();
        assert!(svg.contains("version 0.2") && svg.contains("failed (1)"));
    }

    #[cfg(not(feature = "plot"))]
    #[test]
    fn plotting_without_the_feature_names_it() {
        let samples = vec![ok(0.0, "0.1")];
        let report = summarize(&samples, "t0", &Load::every(Duration::from_millis(20)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.png");
        let error = plot(&samples, &report, &path).unwrap_err().to_string();
        assert!(error.contains("`plot` cargo feature"), "{error}");
        assert!(!path.exists());
        assert!(check_can_plot().is_err());
    }
}
