//! Sections 9 and 10: the offline quality gate and the online gate (Canary + shadow) under load.

use std::time::{Duration, Instant};

use operator::crd::{AnalysisSpec, DataSpec, RolloutSpec, RolloutStrategy, ValidationSpec};
use serde_json::Value;

use crate::Setup;
use crate::cluster::*;
use crate::probe::*;
use crate::support::manifests::manifest;

/// Issue 15's offline gate on the real node, under the probe: with `spec.validation` (the tweets'
/// test.csv from the in-cluster store, `maxAccuracyDrop: 0.05`), a model trained on shuffled labels,
/// whose digest is right, is refused at pre-flight in seconds: Degraded `ModelBelowQualityGate` with
/// both accuracies in the message, the Deployment untouched, no answer from it, no failed request.
pub(crate) fn quality_gate_under_load(setup: &Setup) {
    let (node, base, store, models) = (&setup.node, &setup.base, &setup.store, &setup.models);
    let tag = serving_tag(node);
    let (model_t, sha_t) = (&models["MODEL_T"], &models["MODEL_T_SHA256"]);
    let (model_s, sha_s) = (&models["MODEL_S"], &models["MODEL_S_SHA256"]);
    let gated = |model: &str, sha: &str| {
        let mut p = predictor_object(&tag, &format!("{store}/{model}"), sha);
        p.spec.validation = Some(ValidationSpec {
            data: DataSpec {
                url: format!("{store}/{}", models["VALIDATION"]),
                sha256: models["VALIDATION_SHA256"].clone(),
            },
            min_accuracy: None,
            max_accuracy_drop: Some(0.05),
        });
        manifest(&[p])
    };
    // The gate on, the model unchanged: nothing to judge, nothing rolls.
    node.apply(&gated(model_t, sha_t));
    wait_current(node, "the gated Predictor settled", "Ready", "True");
    let generation = deployment(node)["metadata"]["generation"].clone();
    let pods_before = live_pod_names(node);

    let watch = Watch::start(node, "quality-gate", base, &["--max-duration", "12s"]);
    node.apply(&gated(model_s, sha_s));
    let (refused, took) = wait_degraded(node, "ModelBelowQualityGate", Duration::from_secs(30));
    let message = condition(&refused, "Degraded").unwrap()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    eprintln!(
        "[node test] model trained on shuffled labels refused by the quality gate after {:.2} s: {message}",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(10), "refused after {took:?}");
    // Both figures: the candidate's accuracy and the serving model's (0.7770 on test.csv).
    assert!(message.contains("0.777"), "{message}");
    assert_eq!(deployment(node)["metadata"]["generation"], generation);
    assert_eq!(live_pod_names(node), pods_before);
    let release = refused["status"]["version"]
        .as_str()
        .expect("status.version");
    let report = assert_watch_clean("quality gate", watch, &[release]);
    // Answers name their model (first 12 hex digits of its sha256): every one from the serving
    // model (no request failed), none from the refused one.
    assert_eq!(
        answers_from(&report, sha_t),
        report["requests"].as_u64().unwrap(),
        "answers from another model than the serving one: {report}"
    );
    assert_eq!(answers_from(&report, sha_s), 0, "{report}");
    // Back to the good model for what follows.
    node.apply(&gated(model_t, sha_t));
    wait_current(node, "the Predictor healthy again", "Degraded", "False");
}

/// The image tag the Predictor's spec names now.
pub(crate) fn serving_tag(node: &Node) -> String {
    let serving = node.predictor();
    let image = serving["spec"]["image"].as_str().expect("spec.image");
    image
        .strip_prefix(&format!("{IMAGE}:"))
        .unwrap_or_else(|| panic!("{image}"))
        .to_string()
}

/// The canary pods (label `mlops.dev/track=canary`) that are not being deleted.
pub(crate) fn canary_pods(node: &Node) -> Vec<Value> {
    pods(node)
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["mlops.dev/track"] == "canary")
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

/// Answers a finished watch got from `sha256`'s model (labels end in its first 12 hex digits).
pub(crate) fn answers_from(report: &Value, sha256: &str) -> u64 {
    report["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| {
            v["version"]
                .as_str()
                .is_some_and(|l| l.ends_with(&sha256[..12]))
        })
        .map(|v| v["answers"].as_u64().unwrap())
        .sum()
}

/// Issue 15's online gate on the real node, under the probe sending the tweets of test.csv in turn
/// at 100/s. The Predictor serves model-h (a third of train.csv's rows) with `strategy: Canary`
/// (one canary pod next to two stable ones, stable pods copying half their requests to it, 300
/// samples, at most 25 % disagreement and 1 % errors). Then:
///  a. model-s (shuffled labels; no offline gate) is rolled back by the analysis: the probe saw
///     at most the canary's share of answers from it, none failed, the stable pods were not
///     touched, the status says why and what serves;
///  b. model-t (every row) is promoted with no failed request, the time from CR change reported;
///  c. with no traffic, model-h as the next candidate waits ("waiting: 0 of 300 samples") across
///     analysis rounds, and is promoted once the probe brings the samples.
pub(crate) fn online_gate_under_load(setup: &Setup) {
    let (node, base, store, models) = (&setup.node, &setup.base, &setup.store, &setup.models);
    let tag = serving_tag(node);
    let model = |key: &str| {
        (
            format!("{store}/{}", models[&format!("MODEL_{key}")]),
            models[&format!("MODEL_{key}_SHA256")].clone(),
        )
    };
    let ((url_h, sha_h), (url_s, sha_s), (url_t, sha_t)) = (model("H"), model("S"), model("T"));
    const MIN_SAMPLES: i64 = 300;
    let canary = |url: &str, sha: &str| {
        let mut p = predictor_object(&tag, url, sha);
        p.spec.rollout = Some(RolloutSpec {
            strategy: RolloutStrategy::Canary,
            canary_percent: 50,
            shadow_percent: 50,
            analysis: Some(AnalysisSpec {
                min_samples: MIN_SAMPLES,
                max_disagreement: Some(0.25),
                max_error_rate: Some(0.01),
                max_p99_latency_ratio: None,
                deadline_seconds: 600,
            }),
        });
        manifest(&[p])
    };
    let rollout = |p: &Value, field: &str| p["status"]["rollout"][field].clone();

    // The older model by a plain rolling update, then the switch to Canary: the stable pods restart
    // once, now carrying the shadow target.
    node.apply(&predictor_yaml(&tag, &url_h, &sha_h));
    wait_serving(node, &sha_h, "model-h served by a rolling update");
    node.apply(&canary(&url_h, &sha_h));
    wait_for(
        Duration::from_secs(90),
        "2 stable pods with the shadow target",
        || {
            let live: Vec<Value> = pods(node)
                .into_iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .collect();
            (live.len() == 2
                && live.iter().all(|p| {
                    pod_env(p, "SHADOW_URL")
                        == Some(&*format!("http://{NAME}-canary.{NS}.svc:5008"))
                        && p["status"]["containerStatuses"][0]["ready"] == true
                }))
            .then_some(())
        },
    );
    wait_serving(node, &sha_h, "model-h served by the Canary Predictor");

    // --- a. a worse model, right digest: rolled back by the analysis --------------------------------
    let stable_generation = deployment(node)["metadata"]["generation"].clone();
    let stable_pods = live_pod_names(node);
    // A connection per request, like many clients: kube-proxy picks an endpoint per connection, so
    // the canary gets its replica share of requests, not all or none of one kept-alive client's.
    let watch = Watch::start(
        node,
        "canary-rollback",
        base,
        &["--max-duration", "45s", "--no-keep-alive"],
    );
    let t = Instant::now();
    node.apply(&canary(&url_s, &sha_s));
    let rolled_back = wait_for(Duration::from_secs(90), "model-s rolled back", || {
        let p = node.predictor();
        (rollout(&p, "phase") == "RolledBack"
            && rollout(&p, "candidate")["modelSha256"] == sha_s.as_str())
        .then_some(p)
    });
    let took = t.elapsed().as_secs_f64();
    wait_for(Duration::from_secs(30), "the canary pod gone", || {
        canary_pods(node).is_empty().then_some(())
    });
    let release = rolled_back["status"]["version"]
        .as_str()
        .unwrap()
        .to_string();
    let report = assert_watch_clean("canary rollback", watch, &[&release, &release]);
    let (bad, all) = (
        answers_from(&report, &sha_s),
        report["requests"].as_u64().unwrap(),
    );
    let message = rollout(&rolled_back, "message");
    eprintln!(
        "[node test] model-s under Canary + shadow rolled back {took:.1} s after the CR change: {message}; \
         the probe got {bad} of {all} answers from it ({:.1} %, canary share 1 pod of 3)",
        100.0 * bad as f64 / all as f64
    );
    assert_eq!(rollout(&rolled_back, "reason"), "DisagreementTooHigh");
    let measured = rollout(&rolled_back, "measured");
    assert!(
        measured["samples"].as_i64().unwrap() >= MIN_SAMPLES,
        "{measured}"
    );
    assert!(
        measured["disagreement"].as_f64().unwrap() > 0.25,
        "{measured}"
    );
    assert!(
        bad > 0 && 3 * bad <= all,
        "{bad} of {all} answers from the rejected model"
    );
    let degraded = condition(&rolled_back, "Degraded").unwrap();
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "CanaryRolledBack");
    assert_eq!(rolled_back["status"]["modelSha256"], sha_h.as_str());
    assert_eq!(
        rolled_back["status"]["lastGoodModel"]["sha256"],
        sha_h.as_str()
    );
    assert_eq!(
        rolled_back["spec"]["model"]["sha256"],
        sha_s.as_str(),
        "the spec is untouched"
    );
    assert_eq!(
        deployment(node)["metadata"]["generation"],
        stable_generation
    );
    assert_eq!(
        live_pod_names(node),
        stable_pods,
        "the stable pods were not touched"
    );
    let events = node.kubectl_ok(&[
        "get",
        "events",
        "-n",
        NS,
        "--field-selector",
        "reason=CanaryRolledBack",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "a CanaryRolledBack Event");

    // --- b. a better model: promoted, no failed request ---------------------------------------------
    let r = measure_rollout(
        node,
        base,
        &canary(&url_t, &sha_t),
        &["--until-model", &sha_t, "--no-keep-alive"],
        &|p| {
            rollout(p, "phase") == "Promoted"
                && p["status"]["modelSha256"] == sha_t.as_str()
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2
        },
    );
    let report = &r.report;
    eprintln!(
        "[node test] model-t under Canary promoted: CR change -> Promoted and Ready {:.1} s, -> last \
         answer from model-h {:.1} s; {} requests, {} failed",
        r.ready_s, r.switch_s, report["requests"], report["failed"]
    );
    assert_eq!(report["failed"], 0, "{report}");
    let promoted = node.predictor();
    assert_eq!(condition(&promoted, "Degraded").unwrap()["status"], "False");
    wait_for(
        Duration::from_secs(30),
        "the canary retired after the promotion",
        || canary_pods(node).is_empty().then_some(()),
    );

    // --- c. no traffic: the analysis waits and says so, then promotes on traffic --------------------
    node.apply(&canary(&url_h, &sha_h));
    let first = wait_for(
        Duration::from_secs(60),
        "model-h analysed with no traffic",
        || {
            let p = node.predictor();
            (rollout(&p, "phase") == "Analyzing"
                && rollout(&p, "candidate")["modelSha256"] == sha_h.as_str()
                && !rollout(&p, "measuredAt").is_null())
            .then_some(p)
        },
    );
    // Two more analysis rounds (every 10 s) with no request: still waiting, nothing promoted.
    let measured_at = rollout(&first, "measuredAt");
    let later = wait_for(Duration::from_secs(40), "two more analysis rounds", || {
        let p = node.predictor();
        let at = rollout(&p, "measuredAt");
        (!at.is_null() && at != measured_at).then_some(p)
    });
    std::thread::sleep(Duration::from_secs(11));
    for p in [first, later, node.predictor()] {
        assert_eq!(rollout(&p, "phase"), "Analyzing", "{}", p["status"]);
        assert_eq!(rollout(&p, "reason"), "WaitingForSamples");
        assert!(
            rollout(&p, "message")
                .as_str()
                .unwrap()
                .starts_with(&format!("waiting: 0 of {MIN_SAMPLES} samples")),
            "{}",
            p["status"]["rollout"]
        );
        assert_eq!(p["status"]["modelSha256"], sha_t.as_str());
        assert_eq!(condition(&p, "Progressing").unwrap()["status"], "True");
    }
    eprintln!(
        "[node test] no traffic: {}",
        rollout(&node.predictor(), "message")
    );
    let r = measure_rollout(
        node,
        base,
        &canary(&url_h, &sha_h),
        &["--until-model", &sha_h, "--no-keep-alive"],
        &|p| rollout(p, "phase") == "Promoted" && p["status"]["modelSha256"] == sha_h.as_str(),
    );
    let samples = rollout(&node.predictor(), "measured")["samples"]
        .as_i64()
        .unwrap();
    eprintln!(
        "[node test] traffic back: promoted {:.1} s later on {samples} samples; {} requests, {} failed",
        r.ready_s, r.report["requests"], r.report["failed"]
    );
    assert!(samples >= MIN_SAMPLES);
    assert_eq!(r.report["failed"], 0, "{}", r.report);
}
