//! `predictor probe`: a steady stream of requests during a rollout, and what it saw — when each version was
//! first and last answered, the switch-over time, failed requests and the longest gap between answers.
//!
//! [`run`] does the I/O; [`summarize`] is pure (samples in, report out) and [`render_markdown`] and
//! [`plot`] only format it.

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

/// What to probe and when to stop.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    pub url: String,
    /// Time between two requests (they are sent on schedule, not after the previous answer).
    pub interval: Duration,
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
    pub interval_ms: f64,
}

/// Pure: the report of a list of samples (in send order).
pub fn summarize(samples: &[Sample], started_at: &str, interval: Duration) -> ProbeReport {
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
        interval_ms: interval.as_secs_f64() * 1e3,
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

/// Sends requests every `interval` until a stop condition holds; returns the samples in send order.
pub async fn run(config: &ProbeConfig, mut on_sample: impl FnMut(&Sample)) -> Result<Vec<Sample>> {
    if config.texts.is_empty() {
        return Err(Error::Data("the probe has no text to send".into()));
    }
    let client = if config.keep_alive {
        http_client(config.request_timeout)?
    } else {
        http_client_without_keep_alive(config.request_timeout)?
    };
    let endpoint = endpoint(&config.url);
    let started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Sample)>();
    // Bounds requests in flight, so a hung server cannot make the probe pile up connections.
    let in_flight = Arc::new(Semaphore::new(256));
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut samples: Vec<Option<Sample>> = Vec::new();
    // Requests sent and not yet answered.
    let mut pending = 0usize;
    let mut quiet = Quiet::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now_ms = started.elapsed().as_secs_f64() * 1e3;
                let stop = config.until.is_set()
                    && quiet.settled(config.settle.as_secs_f64() * 1e3, now_ms);
                if stop || started.elapsed() >= config.max_duration {
                    break;
                }
                let index = samples.len();
                samples.push(None);
                pending += 1;
                let text = config.texts[index % config.texts.len()].clone();
                let (client, endpoint, tx) = (client.clone(), endpoint.clone(), tx.clone());
                let permit = in_flight.clone().try_acquire_owned();
                tokio::spawn(async move {
                    let sent = Instant::now();
                    let outcome = match permit {
                        Ok(_permit) => predict_remote(&client, &endpoint, &text).await,
                        Err(_) => Err(Error::Source { location: endpoint.clone(), reason: "too many requests in flight".into() }),
                    };
                    let (version, model, failure) = match outcome {
                        Ok((200, body)) => match body["version"].as_str() {
                            Some(v) => (Some(v.to_string()), body["model"].as_str().map(str::to_string), None),
                            None => (None, None, Some("no version in answer".to_string())),
                        },
                        Ok((status, _)) => (None, None, Some(format!("HTTP {status}"))),
                        Err(Error::Source { reason, .. }) => (None, None, Some(reason.split(':').next().unwrap_or("failed").to_string())),
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
            Some((index, sample)) = rx.recv() => {
                on_sample(&sample);
                quiet.add(&config.until, &sample);
                samples[index] = Some(sample);
                pending -= 1;
            }
        }
    }
    drop(tx);
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
    let mut out = format!(
        "## Rollout probe of {url}\n\nStarted {} · one request every {:.0} ms · {} requests over {:.1} s\n\n",
        report.started_at,
        report.interval_ms,
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
        "\n| figure | value |\n|---|---|\n| failed requests | {} ({failures}) |\n| switch-over (first new answer → last old answer) | {} |\n| longest gap between answers | {:.0} ms |\n| latency p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |\n",
        report.failed,
        report.switch_over_ms.map_or("-".into(), |ms| format!("{:.3} s", ms / 1e3)),
        report.longest_gap_ms,
        report.latency_ms.p50,
        report.latency_ms.p99,
        report.latency_ms.max,
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
            interval: Duration::from_millis(5),
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
        let report = summarize(&samples, "t0", Duration::from_millis(20));
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
            Duration::from_millis(20),
        );
        assert_eq!(report.switch_over_ms, Some(0.0));
        assert_eq!(report.failed, 0);
        assert_eq!(
            summarize(&[], "t0", Duration::from_millis(20)).switch_over_ms,
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
        let report = summarize(&samples, "t0", Duration::from_millis(20));
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

    #[cfg(feature = "plot")]
    #[test]
    fn plots_svg_and_png() {
        let samples = vec![ok(0.0, "0.1"), failed(20.0, "HTTP 503"), ok(40.0, "0.2")];
        let report = summarize(&samples, "t0", Duration::from_millis(20));
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
        let report = summarize(&samples, "t0", Duration::from_millis(20));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.png");
        let error = plot(&samples, &report, &path).unwrap_err().to_string();
        assert!(error.contains("`plot` cargo feature"), "{error}");
        assert!(!path.exists());
        assert!(check_can_plot().is_err());
    }
}
