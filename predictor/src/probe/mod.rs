//! `predictor probe`: a steady stream of requests during a rollout, and what it saw — when each version was
//! first and last answered, the switch-over time, failed requests and the longest gap between answers.
//! The stream may also ramp up ([`Load`]), to drive an autoscaler.
//!
//! This module does the I/O ([`run`]) and holds what runs it ([`Load`]: when each request is due, pure);
//! [`report`] turns the samples into a report ([`summarize`], pure) and markdown ([`render_markdown`]),
//! [`plot`](mod@plot) draws its timeline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};

use crate::client::{endpoint, http_client, http_client_without_keep_alive, predict_remote};
use crate::error::{Error, Result};

pub mod delivery;
pub mod plot;
pub mod report;

pub use plot::{StageMarker, check_can_plot, plot, plot_with_stages};
pub use report::{ProbeReport, RampReport, VersionSpan, render_markdown, summarize};

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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests;
