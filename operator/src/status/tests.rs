//! Whole statuses computed from what was observed: a Predictor created, rolled out, refused,
//! stalled, scaled and autoscaled, each status compared with what it should say (and, where a
//! change is worth one, its Events).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;

use super::*;
use crate::crd::{AutoscalingStatus, Predictor, PredictorStatus, QualityStatus};
use crate::fixtures::{IMAGE_DIGEST, SHA_A, SHA_B, cond, deployment_of, observed, predictor, time};

#[test]
fn fresh_deployment_is_progressing_and_serves_nothing_yet() {
    let p = predictor("american", "team-a");
    let d = deployment_of(&p).without_status();
    let s = compute_status(&p, &observed(Some(&d)), &time(0));
    assert_eq!(s.ready.as_deref(), Some("0/2"));
    assert_eq!(s.version, None);
    assert_eq!(cond(&s, READY), ("False", "RollingOut"));
    assert_eq!(cond(&s, PROGRESSING), ("True", "RollingOut"));
    assert_eq!(cond(&s, DEGRADED), ("False", "AsExpected"));
    assert_eq!(cond(&s, MODEL_VERIFIED), ("True", "Verified"));
    assert_eq!(s.observed_generation, Some(1));
    assert!(
        s.conditions
            .iter()
            .all(|c| c.observed_generation == Some(1))
    );
}

/// What the pod cache holds of the fixture Predictor's `d`: a ready pod on each of `nodes`.
fn pods_on(d: &Deployment, nodes: &[&str]) -> Option<Placement> {
    let pods: Vec<Pod> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| crate::fixtures::ready_pod(d, &format!("american-{i}"), node))
        .collect();
    Some(Placement::of(&pods, "team-a", "american"))
}

#[test]
fn complete_rollout_is_ready_and_reports_what_is_served() {
    let p = predictor("american", "team-a");
    let d = deployment_of(&p).rolled_out(2);
    let observed = Observed {
        placement: pods_on(&d, &["node-a", "node-b"]),
        ..observed(Some(&d))
    };
    let s = compute_status(&p, &observed, &time(0));
    let expected = serde_json::json!({
        "observedGeneration": 1,
        "replicas": 2,
        "readyReplicas": 2,
        "ready": "2/2",
        "nodes": 2,
        "version": "0.2",
        "modelSha256": SHA_A,
        "modelShort": &SHA_A[..12],
        "imageDigest": IMAGE_DIGEST,
        "url": "http://american.team-a.svc:5008/api/american",
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "RolloutComplete", "observedGeneration": 1,
             "lastTransitionTime": "2026-11-25T10:00:00Z",
             "message": format!("2/2 pods ready on 2 nodes, serving version 0.2 with model {}", &SHA_A[..12])},
            {"type": "Progressing", "status": "False", "reason": "RolloutComplete", "observedGeneration": 1,
             "lastTransitionTime": "2026-11-25T10:00:00Z", "message": "all pods run the current spec"},
            {"type": "Degraded", "status": "False", "reason": "AsExpected", "observedGeneration": 1,
             "lastTransitionTime": "2026-11-25T10:00:00Z", "message": "no problems observed"},
            {"type": "ModelVerified", "status": "True", "reason": "Verified", "observedGeneration": 1,
             "lastTransitionTime": "2026-11-25T10:00:00Z",
             "message": format!("model https://models.example.org/american/2026-11-24.model has the pinned sha256 {SHA_A} and is a predictor model file")},
            {"type": "ImageResolved", "status": "True", "reason": "Resolved", "observedGeneration": 1,
             "lastTransitionTime": "2026-11-25T10:00:00Z",
             "message": format!("image registry.local/american-predictor:0.2 is {IMAGE_DIGEST}; the pods pull it by digest")},
            {"type": "Reconciling", "status": "False", "reason": "RolloutComplete", "observedGeneration": 1,
             "lastTransitionTime": "2026-11-25T10:00:00Z",
             "message": format!("2/2 pods ready on 2 nodes, serving version 0.2 with model {}", &SHA_A[..12])},
            {"type": "Stalled", "status": "False", "reason": "AsExpected", "observedGeneration": 1,
             "lastTransitionTime": "2026-11-25T10:00:00Z", "message": "no problems observed"}
        ]
    });
    assert_eq!(serde_json::to_value(&s).unwrap(), expected);
}

/// The Ready message says on how many nodes the ready pods run, once the pod cache agrees with
/// the Deployment; until then it says what it said.
#[test]
fn the_ready_message_counts_the_nodes_of_the_ready_pods() {
    let mut p = predictor("american", "team-a");
    let message = |p: &Predictor, d: &Deployment, placement: Option<Placement>| {
        let s = compute_status(
            p,
            &Observed {
                placement,
                ..observed(Some(d))
            },
            &time(0),
        );
        let ready = find_condition(&s, READY).unwrap();
        (s.nodes, ready.message.clone())
    };
    let serving = format!("serving version 0.2 with model {}", &SHA_A[..12]);
    let together = deployment_of(&p).rolled_out(2);
    assert_eq!(
        message(&p, &together, pods_on(&together, &["node-a", "node-a"])),
        (Some(1), format!("2/2 pods ready on 1 node, {serving}"))
    );
    // A rollout: three ready pods (one surge pod of the old template) on three nodes.
    let rolling = deployment_of(&p).with_counts(3, 3, 1, 3);
    assert_eq!(
        message(
            &p,
            &rolling,
            pods_on(&rolling, &["node-a", "node-b", "node-c"])
        ),
        (
            Some(3),
            "3/2 pods ready on 3 nodes; 1 of 2 pods updated".into()
        )
    );
    // None ready: no nodes said.
    let starting = deployment_of(&p).with_counts(2, 0, 2, 0);
    assert_eq!(
        message(&p, &starting, Some(Placement::default())),
        (
            Some(0),
            "0/2 pods ready; 0 of 2 updated pods available".into()
        )
    );

    // The operator restarted and has not listed the pods yet, or listed none of them yet: the
    // status stands.
    p.status = Some(compute_status(
        &p,
        &Observed {
            placement: pods_on(&together, &["node-a", "node-b"]),
            ..observed(Some(&together))
        },
        &time(0),
    ));
    for not_yet in [None, Some(Placement::default())] {
        assert_eq!(
            message(&p, &together, not_yet),
            (Some(2), format!("2/2 pods ready on 2 nodes, {serving}"))
        );
    }
    // A pod went, and its event is not in the cache yet: no count rather than a wrong one.
    let fewer = deployment_of(&p).with_counts(2, 1, 2, 1);
    assert_eq!(
        message(&p, &fewer, pods_on(&fewer, &["node-a", "node-b"])),
        (
            None,
            format!("1/2 pods ready, {serving}; scaling to 2 pods")
        )
    );
    // Once it is: the one node left.
    assert_eq!(
        message(&p, &fewer, pods_on(&fewer, &["node-b"])),
        (
            Some(1),
            format!("1/2 pods ready on 1 node, {serving}; scaling to 2 pods")
        )
    );
}

/// The gate of the tests below: the sample as validation data, `minAccuracy` 0.8.
fn gated(mut p: Predictor) -> Predictor {
    p.spec.validation = Some(crate::crd::ValidationSpec {
        data: crate::crd::DataSpec {
            url: "https://data.example.org/eval.csv?token=s3cret".into(),
            sha256: SHA_B.into(),
        },
        min_accuracy: Some(0.8),
        max_accuracy_drop: None,
    });
    p
}

#[test]
fn a_model_below_the_quality_gate_is_degraded_while_the_old_pods_serve() {
    let mut p = gated(predictor("american", "team-a"));
    let d = deployment_of(&p).rolled_out(2);
    p.status = Some(compute_status(
        &p,
        &Observed {
            quality: QualityCheck::Serving,
            ..observed(Some(&d))
        },
        &time(0),
    ));
    // Generation 2 asks for a model that scores 0.5 on the validation data.
    p.metadata.generation = Some(2);
    p.spec.model.sha256 = SHA_B.into();
    let candidate = crate::quality::Scored {
        model_sha256: SHA_B.into(),
        score: crate::quality::Score {
            accuracy: 0.5,
            rows: 76,
        },
    };
    let verdict = crate::quality::judge(p.spec.validation.as_ref().unwrap(), &candidate, None);
    let below = Observed {
        quality: verdict,
        ..observed(Some(&d))
    };
    let s = compute_status(&p, &below, &time(5));
    let refusal = format!(
        "model {} has accuracy 0.5000 on 76 rows of validation data {}: below \
         spec.validation.minAccuracy 0.8000; the Deployment was left unchanged and the old pods \
         keep serving",
        &SHA_B[..12],
        &SHA_B[..12]
    );
    let expected = serde_json::json!({
        "observedGeneration": 2,
        "replicas": 2,
        "readyReplicas": 2,
        "ready": "2/2",
        "version": "0.2",
        "modelSha256": SHA_A,
        "modelShort": &SHA_A[..12],
        "imageDigest": IMAGE_DIGEST,
        "url": "http://american.team-a.svc:5008/api/american",
        "quality": {"modelSha256": SHA_B, "accuracy": 0.5, "dataSha256": SHA_B, "rows": 76},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "RolloutComplete", "observedGeneration": 2,
             "lastTransitionTime": "2026-11-25T10:00:00Z",
             "message": format!("2/2 pods ready, serving version 0.2 with model {}", &SHA_A[..12])},
            {"type": "Progressing", "status": "False", "reason": "RolloutComplete", "observedGeneration": 2,
             "lastTransitionTime": "2026-11-25T10:00:00Z", "message": "all pods run the current spec"},
            {"type": "Degraded", "status": "True", "reason": "ModelBelowQualityGate", "observedGeneration": 2,
             "lastTransitionTime": "2026-11-25T10:00:05Z", "message": refusal},
            {"type": "ModelVerified", "status": "True", "reason": "Verified", "observedGeneration": 2,
             "lastTransitionTime": "2026-11-25T10:00:00Z",
             "message": format!("model https://models.example.org/american/2026-11-24.model has the pinned sha256 {SHA_B} and is a predictor model file")},
            {"type": "ImageResolved", "status": "True", "reason": "Resolved", "observedGeneration": 2,
             "lastTransitionTime": "2026-11-25T10:00:00Z",
             "message": format!("image registry.local/american-predictor:0.2 is {IMAGE_DIGEST}; the pods pull it by digest")},
            {"type": "QualityGate", "status": "False", "reason": "ModelBelowQualityGate", "observedGeneration": 2,
             "lastTransitionTime": "2026-11-25T10:00:05Z", "message": refusal},
            // kstatus (Flux): Failed until the spec names another model.
            {"type": "Reconciling", "status": "False", "reason": "Stalled", "observedGeneration": 2,
             "lastTransitionTime": "2026-11-25T10:00:00Z", "message": "no progress without a change, see Stalled"},
            {"type": "Stalled", "status": "True", "reason": "ModelBelowQualityGate", "observedGeneration": 2,
             "lastTransitionTime": "2026-11-25T10:00:05Z", "message": refusal}
        ]
    });
    assert_eq!(serde_json::to_value(&s).unwrap(), expected);
    // One Event, named for the gate, with both figures; not a second one for Degraded.
    let events = status_events(p.status.as_ref().unwrap(), &s);
    assert_eq!(
        events,
        [StatusEvent {
            warning: true,
            reason: reason::MODEL_BELOW_QUALITY_GATE.into(),
            note: refusal,
        }]
    );
    // The data set's URL (and its token) appears nowhere.
    assert!(!serde_json::to_string(&s).unwrap().contains("s3cret"));

    // Back to the serving model: the gate has nothing to judge and the Predictor recovers.
    p.status = Some(s);
    p.metadata.generation = Some(3);
    p.spec.model.sha256 = SHA_A.into();
    let back = compute_status(
        &p,
        &Observed {
            quality: QualityCheck::Serving,
            ..observed(Some(&d))
        },
        &time(9),
    );
    assert_eq!(cond(&back, DEGRADED), ("False", reason::AS_EXPECTED));
    assert_eq!(cond(&back, QUALITY_GATE), ("True", reason::ALREADY_SERVING));
    assert_eq!(back.quality, None, "the figures were of the refused model");
    let events = status_events(p.status.as_ref().unwrap(), &back);
    assert_eq!(
        events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        [reason::RECOVERED]
    );
}

#[test]
fn a_model_that_passed_the_gate_keeps_its_accuracy_in_the_status_once_it_serves() {
    let mut p = gated(predictor("american", "team-a"));
    let measured = QualityStatus {
        model_sha256: SHA_A.into(),
        accuracy: 0.9342,
        data_sha256: SHA_B.into(),
        rows: 76,
        serving_model_sha256: None,
        serving_accuracy: None,
    };
    let passed = QualityCheck::Passed {
        measured: measured.clone(),
        message: "model passed".into(),
    };
    let fresh = deployment_of(&p).without_status();
    let s = compute_status(
        &p,
        &Observed {
            quality: passed,
            ..observed(Some(&fresh))
        },
        &time(0),
    );
    assert_eq!(s.quality.as_ref(), Some(&measured));
    assert_eq!(
        cond(&s, QUALITY_GATE),
        ("True", reason::QUALITY_GATE_PASSED)
    );
    assert_eq!(cond(&s, PROGRESSING), ("True", reason::ROLLING_OUT));

    // Rolled out: the Deployment runs it, so it is not judged again, but its figures stay.
    p.status = Some(s);
    let done = deployment_of(&p).rolled_out(2);
    let s = compute_status(
        &p,
        &Observed {
            quality: QualityCheck::Serving,
            ..observed(Some(&done))
        },
        &time(10),
    );
    assert_eq!(s.quality, Some(measured));
    let gate = find_condition(&s, QUALITY_GATE).unwrap();
    assert_eq!(
        (gate.status.as_str(), gate.reason.as_str(), gate.message.as_str()),
        (
            "True",
            reason::ALREADY_SERVING,
            format!(
                "model {} already serves; it had accuracy 0.9342 on 76 rows when the gate measured it",
                &SHA_A[..12]
            )
            .as_str()
        )
    );
    assert_eq!(
        gate.last_transition_time,
        time(0),
        "still True: no transition"
    );

    // Without spec.validation there is neither a QualityGate condition nor figures.
    p.spec.validation = None;
    let s = compute_status(&p, &observed(Some(&done)), &time(20));
    assert!(find_condition(&s, QUALITY_GATE).is_none());
    assert_eq!(s.quality, None);
}

#[test]
fn unchanged_status_keeps_transition_times_so_no_write_is_needed() {
    let mut p = predictor("american", "team-a");
    let d = deployment_of(&p).rolled_out(2);
    let first = compute_status(&p, &observed(Some(&d)), &time(0));
    p.status = Some(first.clone());
    let second = compute_status(&p, &observed(Some(&d)), &time(60));
    assert_eq!(first, second);
}

#[test]
fn rolling_update_keeps_reporting_the_old_version_until_complete() {
    let mut p = predictor("american", "team-a");
    let d = deployment_of(&p).rolled_out(2);
    p.status = Some(compute_status(&p, &observed(Some(&d)), &time(0)));

    // New image and model: generation 2, the Deployment is mid-rollout.
    p.metadata.generation = Some(2);
    p.spec.image = "registry.local/american-predictor:0.3".into();
    p.spec.model.sha256 = SHA_B.into();
    let rolling = deployment_of(&p).rolling(2, 1);
    let mid = compute_status(&p, &observed(Some(&rolling)), &time(10));
    assert_eq!(mid.version.as_deref(), Some("0.2"));
    assert_eq!(mid.model_sha256.as_deref(), Some(SHA_A));
    assert_eq!(cond(&mid, PROGRESSING), ("True", "RollingOut"));
    assert_eq!(cond(&mid, READY), ("False", "RollingOut"));
    let ready = find_condition(&mid, READY).unwrap();
    assert_eq!(ready.last_transition_time, time(10));

    assert!(
        status_events(p.status.as_ref().unwrap(), &mid).is_empty(),
        "a requested rollout is not worth a warning"
    );
    p.status = Some(mid);
    let done = deployment_of(&p).rolled_out(2);
    let end = compute_status(&p, &observed(Some(&done)), &time(20));
    assert_eq!(end.version.as_deref(), Some("0.3"));
    assert_eq!(end.model_short.as_deref(), Some(&SHA_B[..12]));
    assert_eq!(cond(&end, READY), ("True", "RolloutComplete"));
    assert_eq!(end.observed_generation, Some(2));
}

#[test]
fn rejected_model_degrades_but_old_pods_stay_ready() {
    let mut p = predictor("american", "team-a");
    let d = deployment_of(&p).rolled_out(2);
    p.status = Some(compute_status(&p, &observed(Some(&d)), &time(0)));
    p.spec.model.sha256 = SHA_B.into();
    let rejected = Observed {
        model: ModelCheck::Rejected {
            reason: "DigestMismatch".into(),
            message: format!("expected {SHA_B}, got {SHA_A}"),
        },
        ..observed(Some(&d))
    };
    let s = compute_status(&p, &rejected, &time(5));
    assert_eq!(cond(&s, READY), ("True", "RolloutComplete"));
    assert_eq!(cond(&s, DEGRADED), ("True", "DigestMismatch"));
    assert_eq!(cond(&s, MODEL_VERIFIED), ("False", "DigestMismatch"));
    assert_eq!(s.model_sha256.as_deref(), Some(SHA_A));
    let events = status_events(p.status.as_ref().unwrap(), &s);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, "ModelRejected");
    assert!(events[0].warning && events[0].note.contains(SHA_A) && events[0].note.contains(SHA_B));
}

/// The first status of the fixture Predictor, no Deployment yet, when the model check says `model`.
fn first_status(model: ModelCheck) -> PredictorStatus {
    let p = predictor("american", "team-a");
    compute_status(
        &p,
        &Observed {
            model,
            ..observed(None)
        },
        &time(0),
    )
}

#[test]
fn rejected_model_without_deployment_blocks_creation() {
    let s = first_status(ModelCheck::Rejected {
        reason: "FetchFailed".into(),
        message: "connection refused".into(),
    });
    assert_eq!(cond(&s, READY), ("False", "FetchFailed"));
    assert_eq!(cond(&s, PROGRESSING), ("False", "FetchFailed"));
    assert_eq!(s.ready.as_deref(), Some("0/2"));
}

#[test]
fn disabled_check_reports_unknown() {
    let s = first_status(ModelCheck::Unchecked {
        reason: "CheckDisabled".into(),
        message: "--skip-model-check".into(),
    });
    assert_eq!(cond(&s, MODEL_VERIFIED), ("Unknown", "CheckDisabled"));
    assert_eq!(cond(&s, PROGRESSING), ("True", "Creating"));
}

#[test]
fn deadline_exceeded_is_degraded() {
    let p = predictor("american", "team-a");
    let d = deployment_of(&p).deadline_exceeded();
    let s = compute_status(&p, &observed(Some(&d)), &time(0));
    assert_eq!(cond(&s, DEGRADED), ("True", "ProgressDeadlineExceeded"));
    assert_eq!(cond(&s, PROGRESSING), ("False", "ProgressDeadlineExceeded"));
    let events = status_events(&PredictorStatus::default(), &s);
    assert_eq!(events[0].reason, "ProgressDeadlineExceeded");
}

#[test]
fn scaled_to_zero_is_ready_with_nothing_to_serve_and_says_so_in_no_event() {
    let mut p = predictor("american", "team-a");
    let d = deployment_of(&p).rolled_out(2);
    let serving = compute_status(&p, &observed(Some(&d)), &time(0));
    p.status = Some(serving.clone());
    p.spec.replicas = 0;
    let d = deployment_of(&p).rolled_out(0);
    let s = compute_status(&p, &observed(Some(&d)), &time(1));
    assert_eq!(cond(&s, READY), ("True", "ScaledToZero"));
    assert_eq!(cond(&s, RECONCILING), ("False", "ScaledToZero"));
    assert_eq!(cond(&s, STALLED), ("False", "AsExpected"));
    assert_eq!(s.ready.as_deref(), Some("0/0"));
    assert_eq!(status_events(&serving, &s), vec![]);
    // Scaled up again: the new pods starting are not "NotReady", and serving again is "Ready".
    p.status = Some(s.clone());
    p.spec.replicas = 2;
    let starting = deployment_of(&p).rolled_out(0);
    let up = compute_status(&p, &observed(Some(&starting)), &time(2));
    assert_eq!(cond(&up, READY).0, "False");
    assert_eq!(status_events(&s, &up), vec![]);
}

#[test]
fn a_refused_image_blocks_the_rollout_and_says_why_once() {
    let p = predictor("american", "team-a");
    let refused = |d| Observed {
        image: ImageCheck::Rejected {
            reason: reason::IMAGE_NOT_FOUND.into(),
            message: "image r/a:9 was not found in its registry".into(),
        },
        ..observed(d)
    };
    // No Deployment yet: nothing is created, and every condition says why.
    let s = compute_status(&p, &refused(None), &time(0));
    assert_eq!(cond(&s, READY), ("False", reason::IMAGE_NOT_FOUND));
    assert_eq!(cond(&s, PROGRESSING), ("False", reason::IMAGE_NOT_FOUND));
    assert_eq!(cond(&s, DEGRADED), ("True", reason::IMAGE_NOT_FOUND));
    assert_eq!(cond(&s, IMAGE_RESOLVED), ("False", reason::IMAGE_NOT_FOUND));
    assert_eq!(cond(&s, MODEL_VERIFIED), ("True", reason::VERIFIED));
    assert_eq!(
        find_condition(&s, DEGRADED).unwrap().message,
        "image r/a:9 was not found in its registry"
    );
    let events = status_events(&PredictorStatus::default(), &s);
    assert_eq!(
        events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        [reason::IMAGE_REJECTED],
        "one Event, not a second one for Degraded"
    );
    // Old pods serving: still Ready, still their digest, Degraded says the new image was refused.
    let d = deployment_of(&p).rolled_out(2);
    let s = compute_status(&p, &refused(Some(&d)), &time(0));
    assert_eq!(cond(&s, READY), ("True", reason::ROLLOUT_COMPLETE));
    assert_eq!(cond(&s, DEGRADED), ("True", reason::IMAGE_NOT_FOUND));
    assert_eq!(s.image_digest.as_deref(), Some(IMAGE_DIGEST));
}

/// A pod of `p`'s Deployment running `image`, its container waiting for `reason`.
fn waiting_pod(name: &str, image: &str, reason: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"containers": [{"name": "predictor", "image": image}]},
        "status": {"containerStatuses": [{
            "name": "predictor", "image": image, "imageID": "", "ready": false,
            "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": "failed to pull: connection refused"}}
        }]}
    }))
    .unwrap()
}

#[test]
fn new_pods_that_cannot_pull_degrade_the_rollout_before_its_deadline() {
    let new = "r:5000/a@sha256:2";
    let pods = [
        // An old pod in trouble is not the rollout's: ignored.
        waiting_pod("old", "r:5000/a@sha256:1", "ImagePullBackOff"),
        waiting_pod("new-1", new, "ContainerCreating"),
    ];
    assert_eq!(pull_failure(&pods, new), None);
    let pods = [
        waiting_pod("new-1", new, "ContainerCreating"),
        waiting_pod("new-2", new, "ErrImagePull"),
    ];
    let failure = pull_failure(&pods, new).expect("a pull failure");
    assert_eq!(
        failure,
        "pod new-2 cannot pull image r:5000/a@sha256:2: ErrImagePull: failed to pull: \
         connection refused; the old pods keep serving"
    );

    let p = predictor("american", "team-a");
    let d = deployment_of(&p).rolling(2, 1);
    let stalled = Observed {
        pull_failure: Some(failure.clone()),
        ..observed(Some(&d))
    };
    let s = compute_status(&p, &stalled, &time(0));
    assert_eq!(cond(&s, DEGRADED), ("True", reason::IMAGE_PULL_BACK_OFF));
    assert_eq!(find_condition(&s, DEGRADED).unwrap().message, failure);
    assert_eq!(cond(&s, PROGRESSING), ("True", reason::ROLLING_OUT));
    let events = status_events(&PredictorStatus::default(), &s);
    assert!(
        events
            .iter()
            .any(|e| e.warning && e.reason == reason::IMAGE_PULL_BACK_OFF),
        "{events:?}"
    );
    // Once the rollout completed, stale pod states mean nothing.
    let done = deployment_of(&p).rolled_out(2);
    let stale = Observed {
        pull_failure: Some(failure),
        ..observed(Some(&done))
    };
    let s = compute_status(&p, &stale, &time(0));
    assert_eq!(cond(&s, DEGRADED), ("False", reason::AS_EXPECTED));
}

#[test]
fn an_unresolved_image_is_unknown_and_has_no_digest() {
    let p = predictor("american", "team-a");
    let mut d = deployment_of(&p).rolled_out(2);
    d.spec.template.spec.as_mut().unwrap().containers[0].image = Some(p.spec.image.clone());
    let unchecked = Observed {
        image: ImageCheck::Unchecked {
            reason: reason::CHECK_DISABLED.into(),
            message: "off".into(),
        },
        ..observed(Some(&d))
    };
    let s = compute_status(&p, &unchecked, &time(0));
    assert_eq!(
        cond(&s, IMAGE_RESOLVED),
        ("Unknown", reason::CHECK_DISABLED)
    );
    assert_eq!(cond(&s, READY), ("True", reason::ROLLOUT_COMPLETE));
    assert_eq!(s.image_digest, None);
}

/// An autoscaled Predictor serving model A on 2 pods (status written), its Deployment then
/// scaled to 4 by the autoscaler with 2 new pods starting.
fn scaled_up(new_template: bool) -> (Predictor, Deployment) {
    let mut p = crate::fixtures::autoscaled(predictor("american", "team-a"));
    let served = deployment_of(&p).rolled_out(2);
    p.status = Some(compute_status(&p, &observed(Some(&served)), &time(0)));
    if new_template {
        p.spec.model.sha256 = SHA_B.into();
    }
    let mut d = deployment_of(&p).with_counts(4, 2, 4, 2);
    d.spec.replicas = Some(4);
    (p, d)
}

#[test]
fn a_scale_up_of_the_served_release_stays_ready_and_is_not_a_rollout() {
    let (p, d) = scaled_up(false);
    let s = compute_status(&p, &observed(Some(&d)), &time(30));
    assert_eq!(s.ready.as_deref(), Some("2/4"));
    assert_eq!(cond(&s, READY), ("True", "Scaling"));
    assert_eq!(
        find_condition(&s, READY).unwrap().message,
        "2/4 pods ready, serving version 0.2 with model 9f2c1e0d4b3a; scaling to 4 pods"
    );
    assert_eq!(cond(&s, PROGRESSING), ("False", "Scaling"));
    assert_eq!(s.version.as_deref(), Some("0.2"));
    assert_eq!(s.model_sha256.as_deref(), Some(SHA_A));
    // The scale itself, before the deployment controller has seen it: the same.
    let mut unseen = d.clone();
    unseen.metadata.generation = Some(2);
    let s = compute_status(&p, &observed(Some(&unseen)), &time(30));
    assert_eq!(cond(&s, READY), ("True", "Scaling"));
    // Every pod ready again: a plain complete rollout.
    let mut done = d.clone();
    let status = done.status.as_mut().unwrap();
    (status.ready_replicas, status.available_replicas) = (Some(4), Some(4));
    let s = compute_status(&p, &observed(Some(&done)), &time(40));
    assert_eq!(cond(&s, READY), ("True", "RolloutComplete"));
    assert_eq!(s.ready.as_deref(), Some("4/4"));
}

#[test]
fn new_pods_of_a_new_release_are_a_rollout_whatever_their_number() {
    let (p, d) = scaled_up(true);
    let s = compute_status(&p, &observed(Some(&d)), &time(30));
    assert_eq!(cond(&s, READY), ("False", "RollingOut"));
    assert_eq!(cond(&s, PROGRESSING), ("True", "RollingOut"));
    assert_eq!(
        s.model_sha256.as_deref(),
        Some(SHA_A),
        "still the old pods' model"
    );
    // Old pods beside the new ones: a rollout too, even of the served template.
    let (p, mut d) = scaled_up(false);
    d.status.as_mut().unwrap().replicas = Some(6);
    let s = compute_status(&p, &observed(Some(&d)), &time(30));
    assert_eq!(cond(&s, PROGRESSING), ("True", "RollingOut"));
}

/// An autoscaler with `conditions` (type, status, reason, message) and a desired count of 4.
fn autoscaler_saying(
    p: &Predictor,
    conditions: &[(&str, &str, &str, &str)],
) -> HorizontalPodAutoscaler {
    use k8s_openapi::api::autoscaling::v2::{
        HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    };
    let mut hpa = crate::resources::build_autoscaler(p).unwrap().unwrap();
    hpa.status = Some(HorizontalPodAutoscalerStatus {
        current_replicas: Some(2),
        desired_replicas: 4,
        last_scale_time: Some(time(20)),
        conditions: Some(
            conditions
                .iter()
                .map(
                    |(type_, status, reason, message)| HorizontalPodAutoscalerCondition {
                        type_: (*type_).into(),
                        status: (*status).into(),
                        reason: Some((*reason).into()),
                        message: Some((*message).into()),
                        ..HorizontalPodAutoscalerCondition::default()
                    },
                )
                .collect(),
        ),
        ..HorizontalPodAutoscalerStatus::default()
    });
    hpa
}

#[test]
fn the_autoscaling_status_and_condition_say_what_the_autoscaler_says() {
    let (p, d) = scaled_up(false);
    let with = |hpa: Option<&HorizontalPodAutoscaler>| {
        let o = Observed {
            autoscaler: hpa,
            ..observed(Some(&d))
        };
        compute_status(&p, &o, &time(30))
    };
    let s = with(None);
    assert_eq!(cond(&s, AUTOSCALING), ("Unknown", "AutoscalerPending"));
    assert_eq!(
        s.autoscaling,
        Some(AutoscalingStatus {
            current_replicas: 4,
            desired_replicas: 4,
            min_replicas: 2,
            max_replicas: 6,
            last_scale_time: None,
        }),
        "before the autoscaler's first look: the Deployment's counts"
    );

    let active = autoscaler_saying(
        &p,
        &[
            (
                "AbleToScale",
                "True",
                "SucceededRescale",
                "the HPA controller was able to update the target scale to 4",
            ),
            (
                "ScalingActive",
                "True",
                "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)",
            ),
            (
                "ScalingLimited",
                "False",
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            ),
        ],
    );
    let s = with(Some(&active));
    assert_eq!(cond(&s, AUTOSCALING), ("True", "ScalingActive"));
    assert_eq!(
        find_condition(&s, AUTOSCALING).unwrap().message,
        "4 pods wanted, between 2 and 6 on CPU at 60% of the request"
    );
    assert_eq!(
        s.autoscaling,
        Some(AutoscalingStatus {
            current_replicas: 2,
            desired_replicas: 4,
            min_replicas: 2,
            max_replicas: 6,
            last_scale_time: Some(time(20)),
        })
    );
    // Readiness is the pods', not the autoscaler's.
    assert_eq!(cond(&s, READY), ("True", "Scaling"));

    let limited = autoscaler_saying(
        &p,
        &[
            ("ScalingActive", "True", "ValidMetricFound", "ok"),
            (
                "ScalingLimited",
                "True",
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            ),
        ],
    );
    assert_eq!(
        find_condition(&with(Some(&limited)), AUTOSCALING)
            .unwrap()
            .message,
        "4 pods wanted, between 2 and 6 on CPU at 60% of the request (the desired replica count is more than the maximum replica count)"
    );

    let blind = autoscaler_saying(
        &p,
        &[
            (
                "AbleToScale",
                "True",
                "SucceededGetScale",
                "the HPA controller was able to get the target's current scale",
            ),
            (
                "ScalingActive",
                "False",
                "FailedGetResourceMetric",
                "the HPA was unable to compute the replica count: unable to get metrics for resource cpu: no metrics returned from resource metrics API",
            ),
        ],
    );
    let mut blind = blind;
    blind.status.as_mut().unwrap().desired_replicas = 0;
    let s = with(Some(&blind));
    assert_eq!(cond(&s, AUTOSCALING), ("False", "FailedGetResourceMetric"));
    assert_eq!(
        s.autoscaling.as_ref().map(|a| a.desired_replicas),
        Some(4),
        "the autoscaler's 0 (no count computed) is not what is wanted: the Deployment's 4"
    );
    assert_eq!(
        find_condition(&s, AUTOSCALING).unwrap().message,
        "the autoscaler cannot scale: the HPA was unable to compute the replica count: unable to get metrics for resource cpu: no metrics returned from resource metrics API"
    );
    assert_eq!(
        cond(&s, DEGRADED),
        ("False", "AsExpected"),
        "the pods still serve"
    );
}
