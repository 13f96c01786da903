//! The offline quality gate on a real control plane: the apiserver refuses nonsense gates, a model
//! trained on shuffled labels (with its right digest) is refused within seconds while the good
//! model keeps serving, and a retrained good model passes and rolls out.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use operator::crd::{DataSpec, Predictor, PredictorStatus, QualityStatus, ValidationSpec};
use operator::fixtures::shuffled_labels;
use operator::status::is_ready;
use predictor::sample::SAMPLE_CSV;

use crate::lifecycle::{assert_untouched, condition, events_for, wait_says};
use crate::support::manifests::predictor;
use crate::support::{OperatorProc, ServedModel};
use crate::{
    IMAGE, apply, assert_accepted, assert_contains_all, assert_refused, in_namespace, operated,
    patch_predictor, shared, valid_yaml, wait_object,
};

/// `predictor_operator_quality_checks_total{result}` as the operator reports it.
fn quality_checks(op: &OperatorProc, result: &str) -> f64 {
    let (_, body) = op.get("/metrics").expect("operator /metrics");
    let prefix = format!("predictor_operator_quality_checks_total{{result=\"{result}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0.0)
}

/// Points Predictor `name`'s `spec.model` at `model` (a merge patch, as a user's `kubectl patch`).
pub fn set_model(ns: &str, name: &str, model: &ServedModel) {
    let patch = format!(
        r#"{{"spec":{{"model":{{"url":"{}","sha256":"{}"}}}}}}"#,
        model.url, model.sha
    );
    patch_predictor(&shared().cluster, ns, name, &patch);
}

/// The accuracy `status` shows for `model`, which must have scored at least 0.9.
fn scored_well(status: &PredictorStatus, model: &ServedModel) -> QualityStatus {
    let quality = status.quality.clone().expect("a measured accuracy");
    assert_eq!(quality.model_sha256, model.sha);
    assert!(quality.accuracy >= 0.9, "{quality:?}");
    quality
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn a_model_trained_on_shuffled_labels_is_refused_and_a_good_one_passes() {
    let (s, ns, op, client) = operated("quality-gate").await;
    let predictors: Api<Predictor> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);

    // The validation data: the sample, labelled. A model trained on it, and one trained on the
    // same texts with their labels shuffled: a valid model file with the right digest.
    let data = DataSpec {
        url: s.files.put("/data/eval.csv", SAMPLE_CSV),
        sha256: predictor::model::sha256_hex(SAMPLE_CSV.as_bytes()),
    };
    let (bytes, sha) = predictor::testing::trained_model(
        shuffled_labels(SAMPLE_CSV, 7).as_bytes(),
        "2026-11-24T00:00:00Z",
    );
    let shuffled = ServedModel {
        url: s.files.put("/models/shuffled.model", bytes),
        sha,
    };

    // A gated Predictor on model A: nothing serves yet, so minAccuracy alone decides.
    let mut p = predictor("p", IMAGE, &s.model_a, 2);
    p.spec.validation = Some(ValidationSpec {
        data,
        min_accuracy: Some(0.8),
        max_accuracy_drop: Some(0.05),
    });
    apply(ns, &[p]);
    let p = wait_object(
        &predictors,
        "p",
        Duration::from_secs(90),
        "Ready",
        &op,
        is_ready,
    )
    .await;
    let status = p.status.unwrap();
    let good = scored_well(&status, &s.model_a);
    assert_eq!(condition(&status, "QualityGate").unwrap().0, "True");
    let before = deployments.get("p").await.unwrap();

    // The shuffled model is refused in seconds; the old pods keep serving model A.
    let asked = Instant::now();
    set_model(ns, "p", &shuffled);
    let p = wait_says(&predictors, "p", 2, ("Degraded", "True"), 30, &op).await;
    let took = asked.elapsed();
    eprintln!("[quality] shuffled-label model refused {took:.1?} after the change");
    assert!(
        took < Duration::from_secs(15),
        "refused only after {took:?}"
    );
    let status = p.status.unwrap();
    let (_, reason, message) = condition(&status, "Degraded").unwrap();
    assert_eq!(reason, "ModelBelowQualityGate");
    let bad = status
        .quality
        .clone()
        .expect("the shuffled model's measured accuracy");
    assert_eq!(bad.model_sha256, shuffled.sha);
    assert!(bad.accuracy < 0.8, "{bad:?}");
    assert_eq!(bad.serving_accuracy, Some(good.accuracy));
    for figure in [
        format!("accuracy {:.4}", bad.accuracy),
        "minAccuracy 0.8000".into(),
        format!("{:.4}", good.accuracy),
        "maxAccuracyDrop 0.0500".into(),
    ] {
        assert!(message.contains(&figure), "{figure:?} not in {message}");
    }
    assert_eq!(
        condition(&status, "QualityGate").unwrap().1,
        "ModelBelowQualityGate"
    );
    assert_eq!(condition(&status, "ModelVerified").unwrap().0, "True");
    assert_eq!(condition(&status, "Ready").unwrap().0, "True");
    assert_eq!(status.model_sha256.as_deref(), Some(s.model_a.sha.as_str()));
    assert_untouched(&deployments, &before).await;
    let events = events_for(&client, ns, "p").await;
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "ModelBelowQualityGate" && n == &message),
        "{events:?}"
    );
    assert_eq!(quality_checks(&op, "below_gate"), 1.0);

    // A good model (same data, another training date, so another digest) passes and rolls out.
    set_model(ns, "p", &s.model_b);
    let p = wait_object(
        &predictors,
        "p",
        Duration::from_secs(90),
        "model B ready",
        &op,
        |p| {
            is_ready(p)
                && p.status.as_ref().unwrap().model_sha256.as_deref()
                    == Some(s.model_b.sha.as_str())
        },
    )
    .await;
    let status = p.status.unwrap();
    let passed = scored_well(&status, &s.model_b);
    assert_eq!(condition(&status, "Degraded").unwrap().0, "False");
    assert_eq!(quality_checks(&op, "passed"), 2.0, "model A, then model B");
    // `kubectl get -o wide` shows the measured accuracy.
    let wide = s
        .cluster
        .kubectl_ok(&["get", "predictor", "p", "-n", ns, "-o", "wide"]);
    let shown = format!("{}", passed.accuracy);
    assert!(
        wide.contains("ACCURACY") && wide.contains(&shown[..shown.len().min(4)]),
        "{wide}"
    );
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn nonsense_quality_gates_are_rejected_at_apply_time() {
    let (s, ns) = in_namespace("quality-invalid");
    let good = valid_yaml(&format!(
        "  validation:\n    data:\n      url: https://data.example.org/eval.csv\n      \
         sha256: {sha}\n    minAccuracy: 0.8\n    maxAccuracyDrop: 0.02\n",
        sha = "a".repeat(64)
    ));
    let cases = [
        (
            "min-above-one",
            good.replace("minAccuracy: 0.8", "minAccuracy: 1.5"),
            "spec.validation.minAccuracy in body should be less than or equal to 1",
        ),
        (
            "negative-drop",
            good.replace("maxAccuracyDrop: 0.02", "maxAccuracyDrop: -0.1"),
            "spec.validation.maxAccuracyDrop in body should be greater than or equal to 0",
        ),
        (
            "no-threshold",
            good.replace("    minAccuracy: 0.8\n    maxAccuracyDrop: 0.02\n", ""),
            "spec.validation needs minAccuracy, maxAccuracyDrop or both",
        ),
        (
            "ftp-data",
            good.replace("https://data.example.org", "ftp://data.example.org"),
            "validation.data.url must start with http://, https:// or hdfs://",
        ),
        (
            "no-data-digest",
            good.replace(&format!("      sha256: {}\n", "a".repeat(64)), ""),
            "spec.validation.data.sha256: Required value",
        ),
    ];
    assert_refused(&["apply", "-n", ns, "-f", "-"], cases);
    // The unchanged object, and one with a single threshold, are accepted.
    assert_accepted(ns, &good);
    assert_accepted(ns, &good.replace("    maxAccuracyDrop: 0.02\n", ""));
    // kubectl explain documents the new fields.
    let explain = s
        .cluster
        .kubectl_ok(&["explain", "predictor.spec.validation"]);
    assert_contains_all(
        &explain,
        &[
            "data",
            "minAccuracy",
            "maxAccuracyDrop",
            "ModelBelowQualityGate",
        ],
    );
}
