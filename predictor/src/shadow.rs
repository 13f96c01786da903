//! Shadow traffic: a sample of live prediction requests copied to a candidate server after the live
//! answer was computed, without waiting for it; the candidate's `is_american` is compared with the
//! live one and counted (`predictor_shadow_requests_total`).
//!
//! The live request never waits for a copy and its answer is never changed by one: a copy is a
//! spawned task holding one permit of a bounded pool. With every permit taken the copy is dropped
//! (and counted), so a slow or dead candidate costs the live path one failed `try_acquire`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::client::{endpoint, http_client, predict_remote};
use crate::error::{Error, Result};
use crate::metrics::{ShadowMetrics, ShadowResult};

/// Where copies go and how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShadowConfig {
    /// The candidate: `http://host:port` or its `/api/american` URL.
    pub url: String,
    /// Percent (0 to 100) of live single-text requests copied.
    pub percent: u8,
    /// Copies in flight at once; more are dropped.
    pub max_in_flight: usize,
    /// Longest time one copy may take (connect included).
    pub timeout: Duration,
}

impl ShadowConfig {
    /// `percent` of the requests copied to `url`, at most 64 in flight, 1 s each.
    pub fn new(url: impl Into<String>, percent: u8) -> Self {
        Self {
            url: url.into(),
            percent,
            max_in_flight: 64,
            timeout: Duration::from_secs(1),
        }
    }

    /// Checks what can be checked before serving.
    pub fn validate(&self) -> Result<()> {
        if self.percent > 100 {
            return Err(Error::Settings(format!(
                "shadow percent must be 0 to 100, got {}",
                self.percent
            )));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(Error::Settings(format!(
                "shadow URL must be an http:// or https:// URL, got {:?}",
                model_store::redact(&self.url)
            )));
        }
        if self.max_in_flight == 0 {
            return Err(Error::Settings(
                "shadow copies in flight must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Copies live requests to the candidate.
pub struct Shadow {
    endpoint: String,
    percent: u64,
    /// Live requests offered so far: the sample is spread evenly over them.
    offered: AtomicU64,
    permits: Arc<Semaphore>,
    client: reqwest::Client,
    metrics: ShadowMetrics,
}

impl Shadow {
    /// A shadow sender counting into `metrics`.
    pub fn new(config: &ShadowConfig, metrics: ShadowMetrics) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            endpoint: endpoint(&config.url),
            percent: u64::from(config.percent),
            offered: AtomicU64::new(0),
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
            client: http_client(config.timeout)?,
            metrics,
        })
    }

    /// Whether the next live request is copied: exactly `percent` of every 100, spread evenly
    /// (request n is copied when ⌊(n+1)·p/100⌋ moves past ⌊n·p/100⌋), with no randomness to test.
    fn sampled(&self) -> bool {
        let n = self.offered.fetch_add(1, Ordering::Relaxed);
        (n + 1) * self.percent / 100 > n * self.percent / 100
    }

    /// Offers one answered live request: `text`, whose live answer was `live` (`is_american`).
    /// Returns at once; the copy, if sampled and a permit is free, runs in its own task.
    pub fn offer(&self, text: &str, live: u8) {
        if !self.sampled() {
            return;
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.metrics.count(ShadowResult::Dropped, "", "");
            return;
        };
        let (client, endpoint, metrics) = (
            self.client.clone(),
            self.endpoint.clone(),
            self.metrics.clone(),
        );
        let text = text.to_owned();
        tokio::spawn(async move {
            let started = Instant::now();
            // The client's timeout bounds the whole request, so the permit always comes back.
            let answer = predict_remote(&client, &endpoint, &text).await;
            metrics.observe(started.elapsed());
            let (result, version, model) = judge(answer.ok(), live);
            metrics.count(
                result,
                version.as_deref().unwrap_or(""),
                model.as_deref().unwrap_or(""),
            );
            drop(permit);
        });
    }
}

/// The result of one copy from the candidate's answer (status and JSON body, `None` when none
/// came): agreement with `live`, and the candidate's version and model when it said them.
fn judge(
    answer: Option<(u16, serde_json::Value)>,
    live: u8,
) -> (ShadowResult, Option<String>, Option<String>) {
    let Some((200, body)) = answer else {
        return (ShadowResult::Error, None, None);
    };
    let field = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let result = match body.get("is_american").and_then(|v| v.as_u64()) {
        Some(answer) if answer == u64::from(live) => ShadowResult::Agree,
        Some(0 | 1) => ShadowResult::Disagree,
        _ => return (ShadowResult::Error, None, None),
    };
    (result, field("version"), field("model"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shadow(percent: u8) -> Shadow {
        let config = ShadowConfig::new("http://127.0.0.1:9", percent);
        Shadow::new(&config, crate::metrics::Metrics::default().shadow()).unwrap()
    }

    #[test]
    fn the_sample_is_exactly_the_percentage_spread_evenly() {
        let count = |percent: u8, n: usize| {
            let s = shadow(percent);
            (0..n).filter(|_| s.sampled()).count()
        };
        assert_eq!(count(0, 1000), 0);
        assert_eq!(count(100, 1000), 1000);
        assert_eq!(count(10, 1000), 100);
        assert_eq!(count(33, 300), 99);
        // 10 %: every tenth request, not the first ten of each hundred.
        let s = shadow(10);
        let picked: Vec<usize> = (0..30).filter(|_| s.sampled()).collect();
        assert_eq!(picked, [9, 19, 29]);
    }

    #[test]
    fn answers_are_judged_against_the_live_prediction() {
        let ok = |is_american: serde_json::Value| {
            Some((
                200,
                json!({"is_american": is_american, "version": "0.3", "model": "0123456789ab"}),
            ))
        };
        let named = |r| (r, Some("0.3".to_string()), Some("0123456789ab".to_string()));
        assert_eq!(judge(ok(json!(1)), 1), named(ShadowResult::Agree));
        assert_eq!(judge(ok(json!(0)), 1), named(ShadowResult::Disagree));
        assert_eq!(judge(ok(json!(1)), 0), named(ShadowResult::Disagree));
        // Not the contract, not a 200, no answer: errors, attributed to nobody.
        let error = (ShadowResult::Error, None, None);
        assert_eq!(judge(ok(json!(2)), 1), error);
        assert_eq!(judge(ok(json!("1")), 1), error);
        assert_eq!(judge(Some((503, json!({"is_american": 1}))), 1), error);
        assert_eq!(judge(None, 1), error);
    }

    #[test]
    fn nonsense_settings_are_refused() {
        let metrics = || crate::metrics::Metrics::default().shadow();
        let bad = ShadowConfig::new("http://127.0.0.1:9", 101);
        assert!(
            Shadow::new(&bad, metrics())
                .err()
                .unwrap()
                .to_string()
                .contains("0 to 100, got 101")
        );
        let bad = ShadowConfig::new("file:///etc/passwd", 10);
        assert!(Shadow::new(&bad, metrics()).is_err());
        let mut bad = ShadowConfig::new("http://c:5008", 10);
        bad.max_in_flight = 0;
        assert!(Shadow::new(&bad, metrics()).is_err());
    }
}
