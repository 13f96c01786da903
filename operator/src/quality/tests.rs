use super::*;
use crate::fixtures::{SHA_A, SHA_B, shuffled_labels};
use model_store::testing::FileServer;
use predictor::sample::SAMPLE_CSV;
use predictor::testing::trained_model;

const DATE: &str = "2026-11-24T00:00:00Z";

fn validation(min: Option<f64>, max_drop: Option<f64>) -> ValidationSpec {
    ValidationSpec {
        data: DataSpec {
            url: "https://data.example.org/eval.csv".into(),
            sha256: SHA_B.into(),
        },
        min_accuracy: min,
        max_accuracy_drop: max_drop,
    }
}

fn scored(sha: &str, accuracy: f64) -> Scored {
    Scored {
        model_sha256: sha.into(),
        score: Score {
            accuracy,
            rows: 200,
        },
    }
}

#[test]
fn a_model_meeting_every_threshold_passes_and_its_figures_are_kept() {
    let v = validation(Some(0.8), Some(0.05));
    let verdict = judge(&v, &scored(SHA_A, 0.8), Some(&scored(SHA_B, 0.85)));
    assert_eq!(
        verdict,
        QualityCheck::Passed {
            measured: QualityStatus {
                model_sha256: SHA_A.into(),
                accuracy: 0.8,
                data_sha256: SHA_B.into(),
                rows: 200,
                serving_model_sha256: Some(SHA_B.into()),
                serving_accuracy: Some(0.85),
            },
            message: format!(
                "model {} has accuracy 0.8000 on 200 rows of validation data {}: meets \
                 minAccuracy 0.8000; within maxAccuracyDrop 0.0500 of the serving model {}'s 0.8500",
                &SHA_A[..12],
                &SHA_B[..12],
                &SHA_B[..12]
            ),
        }
    );
}

#[test]
fn below_min_accuracy_names_the_accuracy_and_the_threshold() {
    let verdict = judge(&validation(Some(0.8), None), &scored(SHA_A, 0.5125), None);
    let QualityCheck::Below { measured, message } = verdict else {
        panic!("passed: {verdict:?}")
    };
    assert_eq!(measured.accuracy, 0.5125);
    assert_eq!(measured.serving_accuracy, None);
    assert_eq!(
        message,
        format!(
            "model {} has accuracy 0.5125 on 200 rows of validation data {}: below \
             spec.validation.minAccuracy 0.8000; the Deployment was left unchanged and the old \
             pods keep serving",
            &SHA_A[..12],
            &SHA_B[..12]
        )
    );
}

#[test]
fn a_drop_beyond_max_accuracy_drop_names_both_accuracies() {
    let v = validation(Some(0.5), Some(0.02));
    let verdict = judge(&v, &scored(SHA_A, 0.6), Some(&scored(SHA_B, 0.9)));
    let QualityCheck::Below { measured, message } = verdict else {
        panic!("passed: {verdict:?}")
    };
    assert_eq!(measured.serving_accuracy, Some(0.9));
    assert_eq!(
        message,
        format!(
            "model {} has accuracy 0.6000 on 200 rows of validation data {}: 0.3000 below the \
             serving model {}'s 0.9000, more than spec.validation.maxAccuracyDrop 0.0200; the \
             Deployment was left unchanged and the old pods keep serving",
            &SHA_A[..12],
            &SHA_B[..12],
            &SHA_B[..12]
        )
    );
    // Both thresholds missed: both are named.
    let v = validation(Some(0.7), Some(0.02));
    let QualityCheck::Below { message, .. } =
        judge(&v, &scored(SHA_A, 0.6), Some(&scored(SHA_B, 0.9)))
    else {
        panic!("passed")
    };
    assert!(
        message.contains("below spec.validation.minAccuracy 0.7000; 0.3000 below"),
        "{message}"
    );
    // A drop exactly at the limit passes; a better model always does.
    assert!(matches!(
        judge(&v, &scored(SHA_A, 0.88), Some(&scored(SHA_B, 0.9))),
        QualityCheck::Passed { .. }
    ));
    assert!(matches!(
        judge(&v, &scored(SHA_A, 0.95), Some(&scored(SHA_B, 0.9))),
        QualityCheck::Passed { .. }
    ));
}

#[test]
fn without_a_serving_model_max_accuracy_drop_does_not_apply() {
    let QualityCheck::Passed { message, .. } =
        judge(&validation(None, Some(0.01)), &scored(SHA_A, 0.3), None)
    else {
        panic!("refused")
    };
    assert!(
        message.ends_with(": no model serves yet, so maxAccuracyDrop does not apply"),
        "{message}"
    );
}

#[test]
fn failures_have_reasons_of_their_own() {
    let model = ModelSpec {
        url: "http://m/x".into(),
        sha256: SHA_A.into(),
        ..ModelSpec::default()
    };
    let reason_of = |e: Error| match failure(&e, &model) {
        QualityCheck::Failed { reason, message } => {
            assert!(
                message.starts_with(&e.to_string())
                    && message.ends_with(&format!(
                        "the quality gate cannot judge model {}, so the Deployment was left unchanged",
                        &SHA_A[..12]
                    )),
                "{message}"
            );
            reason
        }
        other => panic!("{other:?}"),
    };
    let url = || "http://d/x".to_string();
    assert_eq!(
        reason_of(Error::DataFetch {
            url: url(),
            reason: "connection refused".into()
        }),
        reason::VALIDATION_DATA_UNAVAILABLE
    );
    assert_eq!(
        reason_of(Error::DataDigest {
            url: url(),
            expected: SHA_A.into(),
            actual: SHA_B.into()
        }),
        reason::VALIDATION_DATA_DIGEST_MISMATCH
    );
    assert_eq!(
        reason_of(Error::DataInvalid {
            url: url(),
            reason: "no `text` column".into()
        }),
        reason::VALIDATION_DATA_INVALID
    );
    assert_eq!(
        reason_of(Error::Evaluation {
            model: "m".into(),
            reason: "slow".into()
        }),
        reason::EVALUATION_FAILED
    );
    assert_eq!(
        reason_of(Error::ModelFetch {
            url: url(),
            reason: "gone".into()
        }),
        reason::FETCH_FAILED
    );
}

/// A store with the sample as validation data, a model trained on it and one trained on its
/// labels shuffled; a spec gated on that data.
struct Store {
    files: FileServer,
    data: DataSpec,
    good: ModelSpec,
    bad: ModelSpec,
}

fn store() -> Store {
    let files = FileServer::start();
    let put_model = |path: &str, csv: &str| {
        let (bytes, sha256) = trained_model(csv.as_bytes(), DATE);
        ModelSpec {
            url: files.put(path, bytes),
            sha256,
            ..ModelSpec::default()
        }
    };
    let good = put_model("/good.model", SAMPLE_CSV);
    let bad = put_model("/shuffled.model", &shuffled_labels(SAMPLE_CSV, 7));
    let data = DataSpec {
        url: files.put("/eval.csv", SAMPLE_CSV),
        sha256: predictor::model::sha256_hex(SAMPLE_CSV.as_bytes()),
    };
    Store {
        files,
        data,
        good,
        bad,
    }
}

fn gated(model: &ModelSpec, data: &DataSpec, min: Option<f64>, drop: Option<f64>) -> PredictorSpec {
    let mut spec = crate::fixtures::predictor("american", "team-a").spec;
    spec.model = model.clone();
    spec.validation = Some(ValidationSpec {
        data: data.clone(),
        min_accuracy: min,
        max_accuracy_drop: drop,
    });
    spec
}

/// What a Deployment running `model` says it serves.
fn serving(model: &ModelSpec) -> Served {
    Served {
        model_url: Some(model.url.clone()),
        model_sha256: Some(model.sha256.clone()),
        ..Served::default()
    }
}

fn gate() -> QualityGate {
    QualityGate::new(
        &crate::fixtures::checker(true, 1 << 24, Duration::from_secs(5)),
        DATA_MAX_BYTES,
    )
}

/// Why `gate` refuses the verified `model` validated on `data` with `minAccuracy` 0.5:
/// (reason, message).
async fn refusal(
    gate: &QualityGate,
    model: &ModelSpec,
    data: &DataSpec,
    metrics: &Metrics,
) -> (String, String) {
    let spec = gated(model, data, Some(0.5), None);
    refused(gate.check_verified(&spec, None, metrics).await)
}

/// The reason and message of a refusal; panics on any other verdict.
fn refused(check: QualityCheck) -> (String, String) {
    match check {
        QualityCheck::Failed { reason, message } => (reason, message),
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test]
async fn shuffled_labels_are_refused_and_the_good_model_passes() {
    let s = store();
    let (gate, metrics) = (gate(), Metrics::default());

    let good = gate
        .check_verified(&gated(&s.good, &s.data, Some(0.8), None), None, &metrics)
        .await;
    let QualityCheck::Passed { measured, .. } = &good else {
        panic!("the good model was refused: {good:?}")
    };
    assert!(measured.accuracy >= 0.9, "{measured:?}");
    assert_eq!(measured.rows, 76);
    let good_accuracy = measured.accuracy;

    // The shuffled model, with the good one serving: both thresholds decide.
    let spec = gated(&s.bad, &s.data, Some(0.8), Some(0.05));
    let bad = gate
        .check_verified(&spec, Some(&serving(&s.good)), &metrics)
        .await;
    let QualityCheck::Below { measured, message } = &bad else {
        panic!("the shuffled model passed: {bad:?}")
    };
    assert!(measured.accuracy < 0.8, "{measured:?}");
    assert_eq!(measured.serving_accuracy, Some(good_accuracy));
    assert!(
        message.contains(&format!("{:.4}", measured.accuracy))
            && message.contains("minAccuracy 0.8000")
            && message.contains(&format!("{good_accuracy:.4}"))
            && message.contains("maxAccuracyDrop 0.0500"),
        "{message}"
    );

    // Scores are cached by digests: with the store emptied, the same verdicts come back...
    for path in ["/good.model", "/shuffled.model", "/eval.csv"] {
        s.files.remove(path);
    }
    let again = gate
        .check_verified(&spec, Some(&serving(&s.good)), &metrics)
        .await;
    assert_eq!(again, bad);
    // ...and counted once each, when they were scored.
    let text = metrics.render();
    for line in [
        "predictor_operator_quality_checks_total{result=\"passed\"} 1",
        "predictor_operator_quality_checks_total{result=\"below_gate\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
}

/// The model check and the quality gate share one download: the gate scores the copy the check
/// spooled (one request for the model at the store, one for the data), and once the reconcile
/// releases it the spool is empty.
#[tokio::test]
async fn the_gate_reads_the_checked_models_spooled_copy_not_a_second_download() {
    let s = store();
    let metrics = Metrics::default();
    let checker = crate::fixtures::checker(true, 1 << 24, Duration::from_secs(5));
    let gate = QualityGate::new(&checker, DATA_MAX_BYTES);
    let spec = gated(&s.good, &s.data, Some(0.8), None);
    let model = checker
        .check(&spec.model, false, &StoreAccess::default(), &metrics)
        .await;
    assert_eq!(model, ModelCheck::Passed(()));
    let verdict = gate
        .check(&spec, &model, None, &StoreAccess::default(), &metrics)
        .await;
    assert!(
        matches!(verdict, QualityCheck::Passed { .. }),
        "{verdict:?}"
    );
    assert_eq!(s.files.requests("/good.model"), 1);
    assert_eq!(s.files.requests("/eval.csv"), 1);
    assert_eq!(checker.spool().downloads_started(), 2);
    checker.release(&spec.model);
    gate.spool.forget(&s.data.url, &s.data.sha256);
    assert_eq!(
        std::fs::read_dir(checker.spool().dir()).unwrap().count(),
        0,
        "released files are deleted"
    );
    assert_eq!(checker.budget().available(), checker.budget().total());
}

#[tokio::test]
async fn unreachable_wrong_oversized_or_unreadable_data_refuses_the_model() {
    let s = store();
    let metrics = Metrics::default();

    // Port 9 (discard) on loopback refuses the connection.
    let unreachable = DataSpec {
        url: "http://127.0.0.1:9/eval.csv".into(),
        ..s.data.clone()
    };
    let (reason, message) = refusal(&gate(), &s.good, &unreachable, &metrics).await;
    assert_eq!(reason, reason::VALIDATION_DATA_UNAVAILABLE);
    assert!(
        message.contains("cannot fetch validation data http://127.0.0.1:9/eval.csv"),
        "{message}"
    );

    let wrong = DataSpec {
        sha256: SHA_A.into(),
        ..s.data.clone()
    };
    let (reason, message) = refusal(&gate(), &s.good, &wrong, &metrics).await;
    assert_eq!(reason, reason::VALIDATION_DATA_DIGEST_MISMATCH);
    assert!(
        message.contains(SHA_A) && message.contains(&s.data.sha256),
        "{message}"
    );

    let small = QualityGate::new(
        &crate::fixtures::checker(true, 1 << 24, Duration::from_secs(5)),
        100,
    );
    let (reason, message) = refusal(&small, &s.good, &s.data, &metrics).await;
    assert_eq!(reason, reason::VALIDATION_DATA_UNAVAILABLE);
    assert!(
        message.contains("more than the 100-byte limit"),
        "{message}"
    );

    let csv = b"id,words\n1,hello\n".to_vec();
    let unreadable = DataSpec {
        sha256: predictor::model::sha256_hex(&csv),
        url: s.files.put("/not-labelled.csv", csv),
    };
    let (reason, message) = refusal(&gate(), &s.good, &unreadable, &metrics).await;
    assert_eq!(reason, reason::VALIDATION_DATA_INVALID);
    assert!(message.contains("no `text` column"), "{message}");

    // The serving model is gone from the store: maxAccuracyDrop cannot be judged.
    let gone = ModelSpec {
        url: s.files.url("/removed.model"),
        sha256: SHA_A.into(),
        ..ModelSpec::default()
    };
    let spec = gated(&s.good, &s.data, None, Some(0.05));
    let (reason, message) = refused(
        gate()
            .check_verified(&spec, Some(&serving(&gone)), &metrics)
            .await,
    );
    assert_eq!(reason, reason::EVALUATION_FAILED);
    assert!(
        message.contains(&format!(
            "cannot evaluate model {} on the validation data: it is the serving model \
             maxAccuracyDrop compares against: cannot fetch model",
            &SHA_A[..12]
        )),
        "{message}"
    );

    let text = metrics.render();
    assert!(
        text.contains("predictor_operator_quality_checks_total{result=\"data_digest\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn no_validation_a_refused_model_or_the_serving_one_is_not_scored() {
    let metrics = Metrics::default();
    // Nothing listens on port 9: any download would fail the check.
    let nowhere = crate::fixtures::unreachable_model();
    let data = DataSpec {
        url: "http://127.0.0.1:9/d".into(),
        sha256: SHA_B.into(),
    };
    let gate = gate();
    let mut plain = gated(&nowhere, &data, Some(0.9), None);
    plain.validation = None;
    assert_eq!(
        gate.check_verified(&plain, None, &metrics).await,
        QualityCheck::Off
    );
    let spec = gated(&nowhere, &data, Some(0.9), None);
    let rejected = ModelCheck::Rejected {
        reason: reason::DIGEST_MISMATCH.into(),
        message: "wrong".into(),
    };
    assert!(matches!(
        gate.check(&spec, &rejected, None, &StoreAccess::default(), &metrics).await,
        QualityCheck::Unchecked { reason, .. } if reason == reason::MODEL_NOT_VERIFIED
    ));
    assert_eq!(
        gate.check_verified(&spec, Some(&serving(&nowhere)), &metrics)
            .await,
        QualityCheck::Serving
    );
    assert!(!metrics.render().contains("quality_checks_total"));
}
