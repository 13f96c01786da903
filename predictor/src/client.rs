//! The client side: query a live server, and evaluate it against labelled data.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::data::TweetReader;
use crate::error::{Error, Result};
use crate::evaluate::{Confusion, Summary};
use model_store::transport::describe_reqwest;

/// `http://host:port` (or the full endpoint URL) → the endpoint URL.
pub fn endpoint(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.ends_with("/api/american") {
        url.to_string()
    } else {
        format!("{url}/api/american")
    }
}

/// An HTTP client for the predictor API with bounded waits.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client> {
    client_with_pool(timeout, 256)
}

/// Like [`http_client`], but every request opens its own connection: what many independent
/// clients look like to a Service, whose kube-proxy picks an endpoint per connection.
pub fn http_client_without_keep_alive(timeout: Duration) -> Result<reqwest::Client> {
    client_with_pool(timeout, 0)
}

fn client_with_pool(timeout: Duration, idle_per_host: usize) -> Result<reqwest::Client> {
    model_store::tls::bounded_client(timeout, Duration::from_secs(5))
        .pool_max_idle_per_host(idle_per_host)
        .build()
        .map_err(|e| Error::Source {
            location: "HTTP client".into(),
            reason: describe_reqwest(&e),
        })
}

/// One request: status and the JSON body (or the raw text if the body is not JSON).
pub async fn predict_remote(
    client: &reqwest::Client,
    url: &str,
    text: &str,
) -> Result<(u16, serde_json::Value)> {
    let endpoint = endpoint(url);
    let fail = |reason: String| Error::Source {
        location: model_store::redact(&endpoint),
        reason,
    };
    let response = client
        .post(&endpoint)
        .header("content-type", "application/json")
        .body(serde_json::json!({ "text": text }).to_string())
        .send()
        .await
        .map_err(|e| fail(describe_reqwest(&e)))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| fail(describe_reqwest(&e)))?;
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok((status, json))
}

/// What evaluating a live server found.
#[derive(Clone, Debug, Serialize)]
pub struct LiveReport {
    /// Figures over the answered requests.
    pub summary: Summary,
    /// Requests that got no usable answer, by kind (e.g. `HTTP 503`, `cannot connect`).
    pub errors: BTreeMap<String, u64>,
    pub latency_ms: Percentiles,
    /// Versions seen in the answers, with counts.
    pub versions: BTreeMap<String, u64>,
    pub skipped_rows: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (sorted here).
    pub fn of(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1].as_secs_f64() * 1e3
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// What the answers so far add up to.
#[derive(Default)]
struct Tally {
    confusion: Confusion,
    errors: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
    versions: BTreeMap<String, u64>,
}

impl Tally {
    /// Counts one request's outcome against the tweet's true label.
    fn add(&mut self, truth: bool, elapsed: Duration, outcome: Result<(u16, serde_json::Value)>) {
        match outcome {
            Ok((200, body)) => match body["is_american"].as_u64() {
                Some(answer) => {
                    self.confusion.add(answer == 1, truth);
                    self.latencies.push(elapsed);
                    let version = body["version"].as_str().unwrap_or("?").to_string();
                    *self.versions.entry(version).or_default() += 1;
                }
                None => *self.errors.entry("malformed answer".into()).or_default() += 1,
            },
            Ok((status, _)) => *self.errors.entry(format!("HTTP {status}")).or_default() += 1,
            Err(e) => *self.errors.entry(error_kind(&e)).or_default() += 1,
        }
    }

    /// Requests counted so far, answered or not.
    fn done(&self) -> u64 {
        self.confusion.total() + self.errors.values().sum::<u64>()
    }
}

/// Sends every tweet of the CSV at `data` to the server at `url`, `concurrency` at a time, and scores the
/// answers against `country_code`. The CSV is streamed; `progress` gets the number of answers so far.
pub async fn evaluate_live(
    url: &str,
    data: &str,
    concurrency: usize,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<LiveReport> {
    let concurrency = concurrency.max(1);
    let client = http_client(Duration::from_secs(30))?;
    // The CSV is read on a blocking thread; the channel bounds how far it runs ahead of the requests.
    let (tx, mut rx) = mpsc::channel::<(String, bool)>(4 * concurrency);
    let data = data.to_string();
    let reader = tokio::task::spawn_blocking(move || -> Result<u64> {
        let shown = model_store::redact(&data);
        let opened = model_store::open(&data)?;
        let mut tweets = TweetReader::new(std::io::BufReader::new(opened.reader), &shown)?;
        while let Some(t) = tweets.next_tweet()? {
            if tx
                .blocking_send((t.text.to_string(), t.is_american))
                .is_err()
            {
                break;
            }
        }
        Ok(tweets.skipped())
    });
    let endpoint = endpoint(url);
    let started = Instant::now();
    let mut tally = Tally::default();
    stream::poll_fn(|cx| rx.poll_recv(cx))
        .map(|(text, truth)| {
            let (client, endpoint) = (&client, &endpoint);
            async move {
                let sent = Instant::now();
                let outcome = predict_remote(client, endpoint, &text).await;
                (truth, sent.elapsed(), outcome)
            }
        })
        .buffer_unordered(concurrency)
        .for_each(|(truth, elapsed, outcome)| {
            tally.add(truth, elapsed, outcome);
            progress(tally.done());
            std::future::ready(())
        })
        .await;
    let skipped = reader.await.map_err(|e| Error::Data(e.to_string()))??;
    let seconds = started.elapsed().as_secs_f64();
    let answered = tally.confusion.total();
    if answered == 0 && tally.errors.is_empty() {
        return Err(Error::Data("no usable rows to evaluate on".into()));
    }
    Ok(LiveReport {
        summary: tally.confusion.summary(),
        latency_ms: Percentiles::of(&mut tally.latencies),
        requests_per_second: tally.done() as f64 / seconds.max(1e-9),
        errors: tally.errors,
        versions: tally.versions,
        skipped_rows: skipped,
        seconds,
    })
}

/// A short, stable name for a failed request.
fn error_kind(error: &Error) -> String {
    match error {
        Error::Source { reason, .. } => reason
            .split(':')
            .next()
            .unwrap_or("request failed")
            .to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_accepts_base_or_full_url() {
        assert_eq!(
            endpoint("http://127.0.0.1:5008"),
            "http://127.0.0.1:5008/api/american"
        );
        assert_eq!(endpoint("http://h:1/"), "http://h:1/api/american");
        assert_eq!(
            endpoint("http://h:1/api/american"),
            "http://h:1/api/american"
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut samples);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&mut []).p99, 0.0);
    }
}
