//! `spec.autoscaling` on a real apiserver: the replica count changes owner without ever falling to
//! the default. A Predictor serving on 3 pods is autoscaled (an owned HorizontalPodAutoscaler
//! appears, the 3 pods stay), rolls out a new model (the count is handed over, not dropped),
//! is scaled the way the autoscaler scales (`kubectl scale`, an update of the scale subresource) and
//! rolls out again (the operator does not revert the count), then autoscaling is removed (the
//! autoscaler is deleted, `spec.replicas` owns the count again). This control plane has no metrics
//! API, so the autoscaler cannot measure the pods, and the `Autoscaling` condition says so in its
//! own words. (Scaling on real CPU figures: the node tier, `operator/tests/node/`.)

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::GetParams;
use operator::crd::Predictor;
use operator::resources::{FIELD_MANAGER, HANDOVER_FIELD_MANAGER, Served};

use crate::lifecycle::condition;
use crate::quality::set_model;
use crate::support::ServedModel;
use crate::support::manifests::predictor;
use crate::{IMAGE, apply, operated, patch_predictor, shared, wait_object};

const WAIT: Duration = Duration::from_secs(90);

/// The field managers that own the Deployment's `spec.replicas`.
fn replica_owners(d: &Deployment) -> Vec<String> {
    d.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:spec"]["f:replicas"].is_object())
        })
        .filter_map(|m| m.manager.clone())
        .collect()
}

fn patch(ns: &str, json: &str) {
    patch_predictor(&shared().cluster, ns, "p", json);
}

/// Waits until the Deployment's pods run `model` and every one of them is ready.
async fn rolled_out_on(
    deployments: &Api<Deployment>,
    model: &ServedModel,
    op: &crate::support::OperatorProc,
) -> Deployment {
    wait_object(deployments, "p", WAIT, "rolled out", op, |d| {
        let status = d.status.clone().unwrap_or_default();
        Served::of(d).model_sha256.as_deref() == Some(model.sha.as_str())
            && status.observed_generation == d.metadata.generation
            && status.updated_replicas == d.spec.replicas
            && status.ready_replicas == d.spec.replicas
            && status.replicas == d.spec.replicas
    })
    .await
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn the_replica_count_changes_owner_without_falling_to_the_default() {
    let (s, ns, op, client) = operated("autoscaling").await;
    let predictors: Api<Predictor> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    let full = GetParams::default();

    // Serving on 3 pods, no autoscaling: the operator owns the count.
    let p = predictor("p", IMAGE, &s.model_a, 3);
    apply(ns, &[p]);
    rolled_out_on(&deployments, &s.model_a, &op).await;
    let d = deployments.get_with("p", &full).await.unwrap();
    assert_eq!(replica_owners(&d), [FIELD_MANAGER]);

    // Autoscaled: the autoscaler appears, owned by the Predictor; the 3 pods stay.
    patch(
        ns,
        r#"{"spec":{"autoscaling":{"minReplicas":1,"maxReplicas":5,"targetCPUUtilizationPercentage":50}}}"#,
    );
    let hpa = wait_object(&autoscalers, "p", WAIT, "the autoscaler", &op, |_| true).await;
    assert_eq!(hpa.spec.max_replicas, 5);
    assert_eq!(hpa.spec.scale_target_ref.name, "p");
    let owner = &hpa.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Predictor", Some(true))
    );
    // No metrics API on this control plane: the autoscaler says it cannot measure, and so does the
    // Predictor, which still serves (Ready, not Degraded).
    let p = wait_object(&predictors, "p", WAIT, "Autoscaling=False", &op, |p| {
        p.status
            .as_ref()
            .and_then(|st| condition(st, "Autoscaling"))
            .is_some_and(|(status, _, _)| status == "False")
    })
    .await;
    let status = p.status.unwrap();
    let (_, reason, message) = condition(&status, "Autoscaling").unwrap();
    eprintln!("[autoscaling] without metrics: {reason}: {message}");
    assert_eq!(reason, "FailedGetResourceMetric");
    assert!(
        message.starts_with("the autoscaler cannot scale: "),
        "{message}"
    );
    assert_eq!(condition(&status, "Ready").unwrap().0, "True");
    assert_eq!(condition(&status, "Degraded").unwrap().0, "False");
    let autoscaling = status.autoscaling.expect("status.autoscaling");
    assert_eq!(
        (
            autoscaling.desired_replicas,
            autoscaling.min_replicas,
            autoscaling.max_replicas
        ),
        (3, 1, 5)
    );
    assert_eq!(deployments.get("p").await.unwrap().spec.replicas, Some(3));

    // A rollout while autoscaled: the count is handed over before the apply that leaves it out,
    // so it stays 3 (it would fall to the default 1 otherwise) and the operator owns it no more.
    set_model(ns, "p", &s.model_b);
    let d = rolled_out_on(&deployments, &s.model_b, &op).await;
    assert_eq!(d.spec.replicas, Some(3));
    let d = deployments.get_with("p", &full).await.unwrap();
    assert_eq!(replica_owners(&d), [HANDOVER_FIELD_MANAGER]);

    // Scaled the way the autoscaler scales (the scale subresource), then another rollout: the
    // operator does not revert the count, and READY follows it.
    s.cluster
        .kubectl_ok(&["scale", "deployment", "p", "-n", ns, "--replicas", "5"]);
    set_model(ns, "p", &s.model_a);
    let d = rolled_out_on(&deployments, &s.model_a, &op).await;
    assert_eq!(d.spec.replicas, Some(5));
    let p = wait_object(&predictors, "p", WAIT, "READY 5/5", &op, |p| {
        p.status
            .as_ref()
            .is_some_and(|st| st.ready.as_deref() == Some("5/5"))
    })
    .await;
    assert_eq!(p.status.unwrap().autoscaling.unwrap().desired_replicas, 5);
    let table = s.cluster.kubectl_ok(&["get", "predictors", "-n", ns]);
    assert_eq!(
        table.lines().nth(1).unwrap().split_whitespace().nth(1),
        Some("5/5"),
        "{table}"
    );

    // Autoscaling removed: the autoscaler is deleted and spec.replicas (3) owns the count again.
    patch(ns, r#"{"spec":{"autoscaling":null}}"#);
    let d = wait_object(&deployments, "p", WAIT, "3 replicas again", &op, |d| {
        d.spec.replicas == Some(3)
    })
    .await;
    assert_eq!(
        Served::of(&d).model_sha256.as_deref(),
        Some(s.model_a.sha.as_str())
    );
    crate::support::wait::gone(&autoscalers, "p", WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = wait_object(&predictors, "p", WAIT, "no autoscaling status", &op, |p| {
        p.status.as_ref().is_some_and(|st| {
            st.autoscaling.is_none()
                && condition(st, "Autoscaling").is_none()
                && st.ready.as_deref() == Some("3/3")
        })
    })
    .await;
    assert_eq!(condition(&p.status.unwrap(), "Ready").unwrap().0, "True");
    let d = deployments.get_with("p", &full).await.unwrap();
    assert!(
        replica_owners(&d).contains(&FIELD_MANAGER.to_string()),
        "{:?}",
        replica_owners(&d)
    );
}
