//! `predictor probe` under the scenarios: a watch of the Service while something changes, and what
//! a clean rollout is (no failed request, only the releases expected).

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::cluster::*;
use crate::support::{repo_root, wait_output};

/// `predictor probe` running against the Service, writing its JSON (report + samples) to `json`.
pub(crate) struct Watch {
    child: std::process::Child,
    json: PathBuf,
    started: SystemTime,
}

impl Watch {
    /// Starts `predictor probe --url base --interval INTERVAL --texts test.csv --json
    /// <reports>/watch-<name>.json` + `extra`.
    pub(crate) fn start(node: &Node, name: &str, base: &str, extra: &[&str]) -> Watch {
        Self::start_every(node, name, base, INTERVAL, extra)
    }

    /// [`Watch::start`] with a request every `interval`.
    pub(crate) fn start_every(
        node: &Node,
        name: &str,
        base: &str,
        interval: &str,
        extra: &[&str],
    ) -> Watch {
        // Real tweets in turn, not one text: a canary analysis compares predictions on them.
        let texts = repo_root().join("../shared/data/tweets/test.csv");
        Self::start_with_texts(node, name, base, interval, &texts, extra)
    }

    /// [`Watch::start_every`] sending the tweets of the CSV `texts`.
    pub(crate) fn start_with_texts(
        node: &Node,
        name: &str,
        base: &str,
        interval: &str,
        texts: &std::path::Path,
        extra: &[&str],
    ) -> Watch {
        let dir = node.state.join("reports");
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join(format!("watch-{name}.json"));
        let started = SystemTime::now();
        let json_arg = json.display().to_string();
        let texts = texts.display().to_string();
        let mut args = vec![
            "probe",
            "--url",
            base,
            "--interval",
            interval,
            "--texts",
            &texts,
            "--json",
            &json_arg,
        ];
        args.extend_from_slice(extra);
        let child = spawn_predictor(&args);
        // Let a second of answers flow before anything changes.
        std::thread::sleep(Duration::from_secs(1));
        Watch {
            child,
            json,
            started,
        }
    }

    /// `at` in the samples' clock: ms after the probe started (within the few ms its process takes to
    /// start).
    pub(crate) fn ms_at(&self, at: SystemTime) -> f64 {
        at.duration_since(self.started)
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    }

    /// Waits for the watch to end; returns (its output, the JSON it wrote).
    pub(crate) fn finish(self) -> (Output, Value) {
        let out = wait_output(self.child, Duration::from_secs(150), "predictor probe");
        let json = std::fs::read(&self.json).unwrap_or_else(|e| {
            panic!(
                "no watch report ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out, serde_json::from_slice(&json).unwrap())
    }
}

/// A rollout measured from the client side while `change` is applied.
pub(crate) struct Rollout {
    pub(crate) report: Value,
    /// CR change -> the last answer from anything but the wanted release (client view).
    pub(crate) switch_s: f64,
    /// CR change -> the Predictor reports Ready with every replica on the new release.
    pub(crate) ready_s: f64,
}

/// Starts `predictor probe` on `base`, applies `yaml` once answers flow, waits for the Predictor to
/// be Ready on `until` and for the watch to settle; returns what was measured.
pub(crate) fn measure_rollout(
    node: &Node,
    base: &str,
    yaml: &str,
    until: &[&str],
    done: &dyn Fn(&Value) -> bool,
) -> Rollout {
    let tag = until.join("-").replace(['-', '/'], "_");
    let dir = node.state.join("reports");
    let md = dir.join(format!("watch-{tag}.md")).display().to_string();
    let mut extra = vec!["--settle", "3s", "--max-duration", "120s", "--report", &md];
    extra.extend_from_slice(until);
    let watch = Watch::start(node, &tag, base, &extra);
    let watch_started = watch.started;
    let changed = Instant::now();
    let changed_at = SystemTime::now();
    node.apply(yaml);
    let ready_s = wait_for(
        Duration::from_secs(90),
        "Predictor Ready on the new release",
        || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True") && done(&p)).then(|| changed.elapsed().as_secs_f64())
        },
    );
    let (out, watched) = watch.finish();
    assert!(
        out.status.success(),
        "watch failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The watch's clock starts when it starts; the process start (a few ms) is within the error bar.
    let change_ms = changed_at
        .duration_since(watch_started)
        .unwrap()
        .as_secs_f64()
        * 1e3;
    // The watch's own per-release spans (in order of first answer): the newest is the wanted one.
    let (_newest, older) = watched["report"]["versions"]
        .as_array()
        .and_then(|v| v.split_last())
        .expect("some answers");
    let last_old_ms = older
        .iter()
        .map(|v| v["last_ms"].as_f64().unwrap())
        .fold(change_ms, f64::max);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    Rollout {
        report: watched["report"].clone(),
        switch_s: (last_old_ms - change_ms) / 1e3,
        ready_s,
    }
}

/// A rollout to `yaml` whose end is the model `sha256` READY on 2 of 2 pods, measured as
/// [`measure_rollout`] does, until the probe's last answer comes from that model.
pub(crate) fn measure_model_change(node: &Node, base: &str, yaml: &str, sha256: &str) -> Rollout {
    measure_rollout(node, base, yaml, &["--until-model", sha256], &|p| {
        p["status"]["modelSha256"] == sha256
            && p["status"]["ready"] == "2/2"
            && p["status"]["replicas"] == 2
    })
}

pub(crate) fn assert_clean_rollout(what: &str, r: &Rollout) {
    let report = &r.report;
    let rate =
        report["requests"].as_f64().unwrap() / (report["duration_ms"].as_f64().unwrap() / 1e3);
    eprintln!(
        "[node test] {what}: {} requests at {rate:.0}/s, {} failed, CR change -> last old answer {:.2} s, \
         -> Predictor Ready on the new release {:.2} s, longest gap {:.0} ms",
        report["requests"], report["failed"], r.switch_s, r.ready_s, report["longest_gap_ms"]
    );
    assert_eq!(report["failed"], 0, "{what}: failed requests: {report}");
    assert!(rate >= 50.0, "{what}: only {rate:.0} requests/s");
    assert!(
        r.switch_s < 30.0 && r.ready_s < 60.0,
        "{what}: rollout too slow"
    );
}

/// A finished watch that saw no failed request and only `versions`; returns its report.
pub(crate) fn assert_watch_clean(what: &str, watch: Watch, versions: &[&str]) -> Value {
    let (out, mut watched) = watch.finish();
    let report = &watched["report"];
    eprintln!(
        "[node test] {what}: {} requests, {} failed, releases {}",
        report["requests"], report["failed"], report["versions"]
    );
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["failed"], 0, "{what}: {report}");
    let seen: Vec<&str> = spans(report)
        .into_iter()
        .map(|(release, _)| release)
        .collect();
    assert_eq!(seen, versions, "{what}: {report}");
    watched["report"].take()
}

/// The answers' spans in a probe's report, in order, as (release, model): each span's version reads
/// `0.2 · model 8159eb76294b`, the release, then its model.
pub(crate) fn spans(report: &Value) -> Vec<(&str, &str)> {
    report["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| {
            let version = v["version"].as_str()?;
            Some((version.split(" · ").next()?, version.rsplit(' ').next()?))
        })
        .collect()
}
