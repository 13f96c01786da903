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

#[cfg(feature = "plot")]
#[test]
fn plots_the_stages_within_the_probe_as_labelled_lines() {
    let samples = vec![ok(0.0, "0.1"), ok(1000.0, "0.1"), ok(2000.0, "0.2")];
    let report = summarize(&samples, "t0", &Load::every(Duration::from_millis(20)));
    let stages = [
        StageMarker::new("commit pushed", 0.5),
        StageMarker::new("Synced", 1.5),
        // After the probe ended: not drawn.
        StageMarker::new("too late", 60.0),
    ];
    let dir = tempfile::tempdir().unwrap();
    for name in ["t.svg", "t.png"] {
        let path = dir.path().join(name);
        plot_with_stages(&samples, &report, &stages, &path).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 1000, "{name}");
    }
    let svg = std::fs::read_to_string(dir.path().join("t.svg")).unwrap();
    assert!(
        svg.contains("commit pushed") && svg.contains("Synced"),
        "{svg}"
    );
    assert!(!svg.contains("too late"));
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
