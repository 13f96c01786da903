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

use crate::lifecycle::{condition, events_for, wait_says};
use crate::support::OperatorProc;
use crate::support::manifests::{manifest, predictor};
use crate::{IMAGE, admin, apply, in_namespace, start_scoped, wait_object};

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
    let (s, ns) = in_namespace("hostile-adopt");
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
    apply(ns, &[web, batch, shadowed]);
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
    let (s, ns) = in_namespace("hostile-paths");
    for url in ["file:///etc/hostname", "/dev/zero", "etc/passwd"] {
        let mut p = predictor("local", IMAGE, &s.model_a, 1);
        p.spec.model.url = url.into();
        let refused =
            s.cluster
                .kubectl_refused(&["apply", "-n", ns, "-f", "-"], url, &manifest(&[p]));
        assert!(refused.contains("spec.model.url"), "{url}: {refused}");
    }
}

/// What one team may put in a Predictor to read or use what is not its own: a validation URL on
/// an internal service answering secret-looking text, a Secret its owner never offered as model
/// credentials, an S3 endpoint the Secret does not name, and a Deployment edited by hand to read
/// a file of the operator's pod. Each is refused with its reason; nothing the internal service
/// answered shows in the status, the Events or the operator's log; no request reaches either S3
/// endpoint; no file is read.
#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn urls_secrets_and_endpoints_it_may_not_use_are_refused_unread() {
    use operator::crd::{DataSpec, S3Spec, SecretName, ValidationSpec};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (s, ns) = in_namespace("hostile-reads");
    let client = admin().await;
    let predictors: Api<Predictor> = Api::namespaced(client.clone(), ns);
    const LEAK: &str = "AKIAEXAMPLEINTERNAL,s3cr3t-internal-token\n";
    let internal = s.files.put("/internal/keys", LEAK);
    let gate = |url: &str, sha: &str| ValidationSpec {
        data: DataSpec {
            url: url.into(),
            sha256: sha.into(),
        },
        min_accuracy: Some(0.5),
        max_accuracy_drop: Some(0.5),
    };
    // Two S3 endpoints on loopback that count whoever connects.
    let listeners: Vec<(String, Arc<AtomicUsize>)> = (0..2)
        .map(|_| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let hits = Arc::new(AtomicUsize::new(0));
            let counted = hits.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    counted.fetch_add(1, Ordering::SeqCst);
                    drop(stream);
                }
            });
            (url, hits)
        })
        .collect();
    let secret = |name: &str, labelled: bool, endpoint: &str| {
        let labels = if labelled {
            "  labels: {mlops.dev/model-credentials: \"true\"}\n"
        } else {
            ""
        };
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{labels}stringData:\n  \
             AWS_ACCESS_KEY_ID: AKIDTEAM\n  AWS_SECRET_ACCESS_KEY: team-secret-key\n  \
             AWS_ENDPOINT_URL: {endpoint}\n"
        )
    };
    s.cluster.kubectl_stdin(
        &["apply", "-n", ns, "-f", "-"],
        &format!(
            "{}---\n{}",
            secret("payroll", false, &listeners[0].0),
            secret("team-s3", true, &listeners[0].0)
        ),
    );

    let op = start_scoped(&format!("operator-{ns}"), ns, ns);
    // 1. A validation data set on an "internal service", its digest pinned after a first look.
    let mut peek = predictor("peek", IMAGE, &s.model_a, 1);
    peek.spec.validation = Some(gate(
        &internal,
        &predictor::model::sha256_hex(LEAK.as_bytes()),
    ));
    // 2. A Secret its owner never labelled for model credentials.
    let s3_model = |name: &str, secret: &str, endpoint: Option<&str>| {
        let mut p = predictor(name, IMAGE, &s.model_a, 1);
        p.spec.model.url = "s3://models/a.model".into();
        p.spec.model.credentials = Some(SecretName {
            name: secret.into(),
        });
        p.spec.model.s3 = Some(S3Spec {
            endpoint: endpoint.map(str::to_string),
            path_style: Some(true),
            ..S3Spec::default()
        });
        p
    };
    let borrow = s3_model("borrow", "payroll", None);
    // 3. The team's own labelled Secret, its keys pointed at another endpoint.
    let redirect = s3_model("redirect", "team-s3", Some(&listeners[1].0));
    apply(ns, &[peek, borrow, redirect]);
    let refused = |name: &'static str, type_: &'static str| {
        let predictors = predictors.clone();
        let op = &op;
        async move {
            let p = wait_object(
                &predictors,
                name,
                Duration::from_secs(60),
                &format!("{type_} False"),
                op,
                |p| {
                    p.status
                        .as_ref()
                        .and_then(|st| condition(st, type_))
                        .is_some_and(|(s, _, _)| s == "False")
                },
            )
            .await;
            let (_, reason, message) = condition(p.status.as_ref().unwrap(), type_).unwrap();
            (reason, message)
        }
    };
    let (reason, message) = refused("peek", "QualityGate").await;
    assert_eq!(reason, "ValidationDataInvalid", "{message}");
    let (reason, message) = refused("borrow", "ModelVerified").await;
    assert_eq!(reason, "CredentialsUnusable");
    assert!(message.contains("mlops.dev/model-credentials"), "{message}");
    let (reason, message) = refused("redirect", "ModelVerified").await;
    assert_eq!(reason, "CredentialsUnusable");
    assert!(message.contains("spec.model.s3.endpoint"), "{message}");
    for name in ["peek", "borrow", "redirect"] {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        assert!(deployments.get_opt(name).await.unwrap().is_none(), "{name}");
    }

    // 4. A Deployment edited by hand to serve a file of the operator's pod, under a digest never
    // scored: the next model's gate would compare against it, and refuses to read it.
    let mut edited = predictor("edited", IMAGE, &s.model_a, 1);
    let data = s.files.put("/data/eval.csv", predictor::sample::SAMPLE_CSV);
    edited.spec.validation = Some(gate(
        &data,
        &predictor::model::sha256_hex(predictor::sample::SAMPLE_CSV.as_bytes()),
    ));
    apply(ns, &[edited]);
    wait_object(
        &predictors,
        "edited",
        Duration::from_secs(90),
        "Ready",
        &op,
        is_ready,
    )
    .await;
    let first_log = op.proc.tail(10_000);
    drop(op);
    s.cluster.kubectl_ok(&[
        "set",
        "env",
        "deployment/edited",
        "-n",
        ns,
        "MODEL_URL=file:///etc/hostname",
        &format!("MODEL_SHA256={}", "f".repeat(64)),
    ]);
    crate::quality::set_model(ns, "edited", &s.model_b);
    let op = start_scoped(&format!("operator-{ns}-2"), ns, ns);
    let p = wait_says(&predictors, "edited", 2, ("QualityGate", "False"), 60, &op).await;
    let (_, reason, message) = condition(p.status.as_ref().unwrap(), "QualityGate").unwrap();
    assert_eq!(reason, "EvaluationFailed", "{message}");
    assert!(
        message.contains("serving model") && message.contains("must start with http://"),
        "{message}"
    );

    // Nothing the internal service answered, anywhere a team can look; no S3 request left.
    let mut texts = vec![first_log, op.proc.tail(10_000)];
    for name in ["peek", "borrow", "redirect", "edited"] {
        let p = predictors.get(name).await.unwrap();
        texts.push(serde_json::to_string(&p.status).unwrap());
        texts.extend(
            events_for(&client, ns, name)
                .await
                .into_iter()
                .map(|(_, note)| note),
        );
    }
    for text in &texts {
        for leaked in [
            "AKIAEXAMPLEINTERNAL",
            "s3cr3t-internal-token",
            "team-secret-key",
        ] {
            assert!(!text.contains(leaked), "{leaked} shown:\n{text}");
        }
    }
    for (url, hits) in &listeners {
        assert_eq!(hits.load(Ordering::SeqCst), 0, "a request reached {url}");
    }
    drop(op);
}
