//! A hostile tenant: someone who may commit Predictors to their team's namespace and nothing else,
//! against the operator as it ships (its binary, its ServiceAccount). Each attack of issue 26 is
//! tried on a real apiserver and shown refused.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client, Resource, ResourceExt};
use operator::crd::Predictor;
use operator::resources::FIELD_MANAGER;
use operator::status::is_ready;
use serde::de::DeserializeOwned;

use crate::lifecycle::{condition, events_for};
use crate::support::OperatorProc;
use crate::support::manifests::{manifest, predictor};
use crate::{admin, shared, start_scoped, wait_object};

const IMAGE: &str = "registry.local/american-predictor:0.2";

/// Objects a team made by hand, under the names its Predictors' children would have.
const HAND_MADE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: batch-workers}
spec:
  replicas: 1
  selector: {matchLabels: {app: batch}}
  template:
    metadata: {labels: {app: batch}}
    spec: {containers: [{name: batch, image: registry.local/batch:1}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: batch}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: batch-workers}
  minReplicas: 1
  maxReplicas: 3
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shadowed-canary
  labels: {app.kubernetes.io/managed-by: predictor-operator}
spec:
  replicas: 1
  selector: {matchLabels: {app: shadowed}}
  template:
    metadata: {labels: {app: shadowed}}
    spec: {containers: [{name: c, image: registry.local/other:1}]}
"#;

/// `kind/name` → the object as the apiserver holds it, JSON (resourceVersion included).
async fn snapshot<K>(client: &Client, ns: &str, name: &str) -> serde_json::Value
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    K: Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = Api::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("{} {name}: {e}", K::kind(&())));
    serde_json::to_value(object).expect("serialisable")
}

/// Waits until Predictor `name` says ChildConflict (Degraded) and returns the message.
async fn conflicted(predictors: &Api<Predictor>, name: &str, op: &OperatorProc) -> String {
    let p = wait_object(
        predictors,
        name,
        Duration::from_secs(60),
        "Degraded ChildConflict",
        op,
        |p| {
            p.status.as_ref().is_some_and(|st| {
                condition(st, "Degraded")
                    .is_some_and(|(s, r, _)| s == "True" && r == "ChildConflict")
            })
        },
    )
    .await;
    let status = p.status.expect("a status");
    let (ready, reason, _) = condition(&status, "Ready").expect("Ready");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ChildConflict")
    );
    condition(&status, "Degraded").expect("Degraded").2
}

/// A Predictor named like a hand-made Service, one autoscaled and named like a hand-made
/// HorizontalPodAutoscaler, and a Canary one whose `-canary` Deployment is taken (and even carries
/// the operator's label): the three objects survive byte for byte, nothing of the Predictors is
/// written beside them, each Predictor says ChildConflict naming the object, and a Warning Event
/// says so. Removing the Service clears its Predictor's conflict by itself.
#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn children_it_does_not_own_are_never_taken_over() {
    let s = shared();
    let ns = "hostile-adopt";
    s.cluster.create_namespace(ns);
    s.cluster
        .kubectl_stdin(&["apply", "-n", ns, "-f", "-"], HAND_MADE);
    let client = admin().await;
    let before: BTreeMap<&str, serde_json::Value> = BTreeMap::from([
        ("Service/web", snapshot::<Service>(&client, ns, "web").await),
        (
            "HorizontalPodAutoscaler/batch",
            snapshot::<HorizontalPodAutoscaler>(&client, ns, "batch").await,
        ),
        (
            "Deployment/shadowed-canary",
            snapshot::<Deployment>(&client, ns, "shadowed-canary").await,
        ),
    ]);

    let op = start_scoped(&format!("operator-{ns}"), ns, ns);
    let web = predictor("web", IMAGE, &s.model_a, 2);
    let batch = operator::fixtures::autoscaled(predictor("batch", IMAGE, &s.model_a, 2));
    let shadowed = operator::fixtures::canary(predictor("shadowed", IMAGE, &s.model_a, 2));
    s.cluster.kubectl_stdin(
        &["apply", "-n", ns, "-f", "-"],
        &manifest(&[web, batch, shadowed]),
    );
    let predictors: Api<Predictor> = Api::namespaced(client.clone(), ns);
    let messages = [
        ("web", "Service web exists, with no controller"),
        (
            "batch",
            "HorizontalPodAutoscaler batch exists, with no controller",
        ),
        (
            "shadowed",
            "Deployment shadowed-canary exists, with no controller",
        ),
    ];
    for (name, names) in messages {
        let message = conflicted(&predictors, name, &op).await;
        assert!(message.starts_with(names), "{name}: {message}");
    }
    // Two retries later (CONFLICT_RETRY is 15 s) nothing has changed either.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after = BTreeMap::from([
        ("Service/web", snapshot::<Service>(&client, ns, "web").await),
        (
            "HorizontalPodAutoscaler/batch",
            snapshot::<HorizontalPodAutoscaler>(&client, ns, "batch").await,
        ),
        (
            "Deployment/shadowed-canary",
            snapshot::<Deployment>(&client, ns, "shadowed-canary").await,
        ),
    ]);
    // Nothing of ours in any of them: the same spec, labels, annotations and owners, and no field
    // managed by the operator. The Service has no controller of its own, so not even its
    // resourceVersion moved; the HorizontalPodAutoscaler's and Deployment's statuses are their
    // controllers' to write.
    for (what, object) in &before {
        let now = &after[what];
        for field in [
            "spec",
            "metadata/labels",
            "metadata/annotations",
            "metadata/ownerReferences",
        ] {
            let pointer = format!("/{field}");
            assert_eq!(
                now.pointer(&pointer),
                object.pointer(&pointer),
                "{what}: {field} changed"
            );
        }
        let managers = now["metadata"]["managedFields"].to_string();
        assert!(!managers.contains(FIELD_MANAGER), "{what}: {managers}");
    }
    assert_eq!(
        after["Service/web"]["metadata"]["resourceVersion"],
        before["Service/web"]["metadata"]["resourceVersion"],
        "the Service was written to"
    );
    // Nothing of the conflicted Predictors was written beside them (no half-made Predictor).
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    assert!(deployments.get_opt("web").await.unwrap().is_none());
    assert!(services.get_opt("batch").await.unwrap().is_none());
    assert!(services.get_opt("shadowed-canary").await.unwrap().is_none());
    for (name, _) in messages {
        let events = events_for(&client, ns, name).await;
        assert!(
            events.iter().any(|(reason, _)| reason == "ChildConflict"),
            "{name}: {events:?}"
        );
    }

    // The team removes its hand-made Service: the Predictor takes the name, unasked.
    s.cluster
        .kubectl_ok(&["delete", "service", "web", "-n", ns]);
    wait_object(
        &predictors,
        "web",
        Duration::from_secs(60),
        "Ready once the Service is gone",
        &op,
        is_ready,
    )
    .await;
    let service = services.get("web").await.unwrap();
    let p = predictors.get("web").await.unwrap();
    assert!(
        service
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && Some(&o.uid) == p.uid().as_ref()),
        "{:?}",
        service.metadata.owner_references
    );
    drop(op);
}

/// `file://` and bare paths are refused at apply time for the model and the validation data.
#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn local_paths_are_refused_from_the_spec() {
    let s = shared();
    let ns = "hostile-paths";
    s.cluster.create_namespace(ns);
    for url in ["file:///etc/hostname", "/dev/zero", "etc/passwd"] {
        let mut p = predictor("local", IMAGE, &s.model_a, 1);
        p.spec.model.url = url.into();
        let refused =
            s.cluster
                .kubectl_refused(&["apply", "-n", ns, "-f", "-"], url, &manifest(&[p]));
        assert!(refused.contains("spec.model.url"), "{url}: {refused}");
    }
}
