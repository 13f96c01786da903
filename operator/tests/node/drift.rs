//! Drift (issue 31): team-a's Predictor, delivered by ArgoCD from Git with `spec.monitoring.drift`,
//! asked first what it was trained for (the held-out tweets of test.csv), then only about authors
//! outside the US (the same file's non-US rows: a population a user would meet when the product
//! launches abroad), then as first. The `Drift` condition follows: False, True naming the signal, False;
//! Ready, the pods and the Application (Synced + Healthy) never move. And a format-1 model file (no
//! reference) still serves, with `Drift` Unknown and the reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Setup;
use crate::autoscaling::deliver_by_argocd;
use crate::cluster::*;
use crate::looks::*;
use crate::probe::*;
use crate::support::argocd::{APP, TEAM_NS};
use crate::support::repo_root;

/// The drift window and the samples it needs (the defaults are 10 minutes and 500: a test cannot
/// wait ten minutes; at the probe's 50 answers a second 500 come in 10 s).
const WINDOW_SECONDS: u32 = 30;
const MIN_SAMPLES: u32 = 500;
/// How long a phase may take to reach its verdict: the window (to flush the previous phase's
/// answers out of it), the operator's reads and slack.
const VERDICT_WITHIN: Duration = Duration::from_secs(75);

fn test_csv() -> PathBuf {
    repo_root().join("../shared/data/tweets/test.csv")
}

/// The rows of test.csv whose author is not in the US, as a CSV of its own in `dir`.
fn abroad_csv(dir: &Path) -> PathBuf {
    let bytes = std::fs::read(test_csv()).expect("../shared/data/tweets/test.csv");
    let rows = predictor::data::read_all(&bytes[..], "test.csv").expect("test.csv parses");
    let mut csv = String::from("text,country_code\n");
    let mut n = 0;
    for (text, _) in rows.iter().filter(|(_, american)| !american) {
        csv += &format!("\"{}\",XX\n", text.replace('"', "\"\""));
        n += 1;
    }
    assert!(n > 100, "test.csv has non-US rows: {n}");
    let path = dir.join("abroad.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

/// The team's Predictor with drift on.
fn with_drift(p: operator::crd::Predictor) -> Value {
    let mut object = serde_json::to_value(&p).unwrap();
    object["spec"]["monitoring"] =
        json!({"drift": {"windowSeconds": WINDOW_SECONDS, "minSamples": MIN_SAMPLES}});
    object
}

/// One phase: the probe sends `texts` at 50 requests/s, 10 s at a time, until the Drift condition has
/// `status` (at most [`VERDICT_WITHIN`]), while the status is watched; returns how long that took,
/// the requests sent, and the looks.
fn phase(
    node: &Node,
    base: &str,
    name: &str,
    texts: &Path,
    status: &str,
) -> (Option<f64>, u64, Vec<Look>) {
    let t0 = Instant::now();
    let mut requests = 0;
    let (verdict, looks) = watch_status(node, TEAM_NS, Some(APP), || {
        // Bounded: VERDICT_WITHIN / 10 s rounds.
        for round in 0.. {
            if t0.elapsed() >= VERDICT_WITHIN {
                return None;
            }
            let watch = Watch::start_with_texts(
                node,
                &format!("{name}-{round}"),
                base,
                "20ms",
                texts,
                &["--max-duration", "10s"],
            );
            let (out, report) = watch.finish();
            assert!(
                out.status.success() && report["report"]["failed"] == 0,
                "{name}: every request answered: {}",
                report["report"]
            );
            requests += report["report"]["requests"].as_u64().unwrap_or(0);
            let p = node.json(&["get", "predictor", NAME, "-n", TEAM_NS]);
            if condition_is(&p, "Drift", status) {
                return Some(t0.elapsed().as_secs_f64());
            }
        }
        None
    });
    print_looks(name, &looks);
    // When the watch first saw it (within a second), else when the round ended.
    let at = looks
        .iter()
        .find(|l| l.drift.0 == status)
        .map(|l| l.t)
        .or(verdict);
    (at, requests, looks)
}

/// Names and restart counts of team-a's pods.
fn pods_and_restarts(node: &Node) -> Vec<(String, i64)> {
    let mut pods: Vec<(String, i64)> = pods_in(node, TEAM_NS)
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["status"]["containerStatuses"][0]["restartCount"]
                    .as_i64()
                    .unwrap_or(-1),
            )
        })
        .collect();
    pods.sort();
    pods
}

/// Issue 31, acceptance 2 and 4.
pub(crate) fn drift_under_load(setup: &Setup) {
    let node = &setup.node;
    let tag = crate::gates::serving_tag(node);
    let (url, sha) = setup.model("MODEL_T");
    let team = with_drift(predictor_object(&tag, &url, sha));
    let (mut argo, _) = deliver_by_argocd(node, "drift", "american, drift on", &team);
    let base = service_base(node, TEAM_NS);
    let before = pods_and_restarts(node);
    let abroad = abroad_csv(&node.state);

    // Like the training set: within the thresholds once the window holds the samples.
    let t0 = Instant::now();
    let (within, sent, like) = phase(node, &base, "drift-like-training", &test_csv(), "False");
    let within = within.expect("Drift False on tweets like the training set");
    eprintln!(
        "[node test] drift: False {within:.1} s into test.csv traffic ({sent} requests, 0 failed)"
    );
    // Only authors abroad: drifted, the signal named.
    let (drifted, sent, abroad_looks) = phase(node, &base, "drift-abroad", &abroad, "True");
    let drifted = drifted.expect("Drift True on tweets from abroad");
    let message = &abroad_looks
        .iter()
        .find(|l| l.drift.0 == "True")
        .unwrap()
        .drift;
    eprintln!(
        "[node test] drift: True {drifted:.1} s into the traffic from abroad ({sent} requests, 0 failed): \
         {message:?}"
    );
    assert_eq!(message.1, "Drifted");
    assert!(
        predictor::drift::Signal::ALL
            .iter()
            .any(|s| message.2.contains(&format!("{} PSI", s.name()))),
        "the message names the signal: {message:?}"
    );
    // Back: within the thresholds again once the window has only the first traffic.
    let (back, sent, back_looks) = phase(node, &base, "drift-back", &test_csv(), "False");
    let back = back.expect("Drift False again on tweets like the training set");
    eprintln!(
        "[node test] drift: False again {back:.1} s after the traffic came back ({sent} requests, 0 failed; \
         {:.1} s in all)",
        t0.elapsed().as_secs_f64()
    );

    for looks in [&like, &abroad_looks, &back_looks] {
        assert!(
            looks.iter().all(|l| l.is_ready() && l.synced_and_healthy()),
            "Ready, and the Application Synced + Healthy, throughout: {looks:?}"
        );
    }
    assert_eq!(
        pods_and_restarts(node),
        before,
        "no pod replaced or restarted"
    );
    let p = node.json(&["get", "predictor", NAME, "-n", TEAM_NS]);
    eprintln!("[node test] drift: status.drift {}", p["status"]["drift"]);
    eprintln!(
        "{}",
        node.kubectl_ok(&["get", "predictors", "-n", TEAM_NS, "-o", "wide"])
    );
    argo.check_running();
    drop(argo);
    team_a_emptied(node);

    // A format-1 model file (predictor 0.2.0's, no reference): it serves, and Drift says why it is Unknown.
    let (url, sha) = setup.model("MODEL_V1");
    let p = with_drift(predictor_object(&tag, &url, sha));
    node.apply(&p.to_string());
    let t = Instant::now();
    // Before the operator's first read of the new pods it says it has no samples; from that read on,
    // why none will do (the read comes every tenth of the window, at most every 15 s).
    let p = wait_for(
        Duration::from_secs(120),
        "the format-1 model Ready, Drift Unknown: NoReference",
        || {
            let p = node.predictor();
            let drift = condition(&p, "Drift")?;
            (condition_is(&p, "Ready", "True")
                && p["status"]["modelSha256"] == sha
                && drift["status"] == "Unknown"
                && drift["reason"] == "NoReference")
                .then_some(p.clone())
        },
    );
    let drift = condition(&p, "Drift").unwrap();
    eprintln!(
        "[node test] format-1 model Ready, Drift Unknown after {:.1} s: {}: {}",
        t.elapsed().as_secs_f64(),
        drift["reason"],
        drift["message"]
    );
    let watch = Watch::start(node, "format-1", &setup.base, &["--max-duration", "5s"]);
    assert_watch_clean("a format-1 model file serving", watch, &[release_of(&tag)]);
    // Back to the model the scenarios after this one expect, drift off.
    let (url, sha) = setup.model("MODEL_T");
    settle_on(node, &tag, &url, sha);
}
