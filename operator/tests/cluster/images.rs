//! The image pre-flight against a real private registry (Debian's `docker-registry` with htpasswd
//! auth, `support::registry`): tags become digests in the Deployment, credentials come from the
//! Predictor's pull Secret, and a missing tag, a wrong password or a stopped registry never touch
//! the Deployment. kwok runs no containers, so this tier proves the operator's side; the node tier
//! proves the kubelet pulls what it pins.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use operator::crd::{Predictor, RESOLVE_IMAGE_ANNOTATION};
use operator::resources::Served;

use crate::support::OperatorProc;
use crate::support::manifests::predictor;
use crate::support::registry::{PASSWORD, Registry, pull_secret};
use crate::support::wait::rolled_out;
use crate::{admin, shared, start_scoped_with, wait_object};

const REPOSITORY: &str = "team-a/american-predictor";
const SECRET: &str = "registry-team-a";

/// (status, reason, message) of condition `type_`.
fn condition(p: &Predictor, type_: &str) -> (String, String, String) {
    p.status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

fn pod_image(d: &Deployment) -> String {
    Served::of(d).pod_image.unwrap_or_default()
}

async fn set_image(api: &Api<Predictor>, name: &str, image: &str) {
    let patch = serde_json::json!({"spec": {"image": image}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch spec.image");
}

/// Waits (bounded by `within`) until the operator, having looked at Predictor `american`'s current
/// generation, says it is Degraded for `reason`.
async fn degraded_for(
    predictors: &Api<Predictor>,
    reason: &str,
    within: Duration,
    op: &OperatorProc,
) -> Predictor {
    wait_object(
        predictors,
        "american",
        within,
        &format!("Degraded {reason}"),
        op,
        |p| {
            condition(p, "Degraded").1 == reason
                && p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
        },
    )
    .await
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl, docker-registry, htpasswd: ./dev/test runs it"]
async fn images_are_pinned_by_digest_and_refused_before_rollout() {
    let s = shared();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut registry = Registry::start(dir.path());
    let host = registry.host.clone();
    let image = |tag: &str| format!("{host}/{REPOSITORY}:{tag}");
    let pinned = |tag: &str, digest: &str| format!("{host}/{REPOSITORY}:{tag}@{digest}");
    let digest_1 = registry.push(REPOSITORY, "0.1", 1).await;
    let digest_2 = registry.push(REPOSITORY, "0.2", 2).await;
    let digest_3 = registry.push(REPOSITORY, "0.3", 3).await;

    let ns = "images";
    s.cluster.create_namespace(ns);
    let client = admin().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets
        .create(
            &PostParams::default(),
            &pull_secret(SECRET, &registry.docker_config(PASSWORD)),
        )
        .await
        .expect("create pull secret");
    let op = start_scoped_with("operator-images", ns, "images-leader", &[]);
    let predictors: Api<Predictor> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);

    // 1. A tag becomes its digest in the Deployment, and in the status once rolled out.
    let mut p = predictor("american", &image("0.1"), &s.model_a, 2);
    p.metadata.namespace = Some(ns.into());
    p.spec.image_pull_secrets = vec![SECRET.into()];
    predictors
        .create(&PostParams::default(), &p)
        .await
        .expect("create Predictor");
    let d = wait_object(
        &deployments,
        "american",
        Duration::from_secs(60),
        "a rolled-out Deployment",
        &op,
        rolled_out,
    )
    .await;
    assert_eq!(pod_image(&d), pinned("0.1", &digest_1));
    assert_eq!(
        d.spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .image_pull_secrets
            .as_ref()
            .unwrap()[0]
            .name,
        SECRET
    );
    let ready = wait_object(
        &predictors,
        "american",
        Duration::from_secs(60),
        "imageDigest",
        &op,
        |p| p.status.as_ref().and_then(|s| s.image_digest.as_deref()) == Some(digest_1.as_str()),
    )
    .await;
    assert_eq!(condition(&ready, "ImageResolved").1, "Resolved");

    // 2. Tag 0.1 re-pushed to other bytes: nothing changes, even when the Predictor is reconciled
    //    again (a label edit triggers one); the re-resolve annotation picks the new digest up.
    let digest_1b = registry.push(REPOSITORY, "0.1", 4).await;
    assert_ne!(digest_1b, digest_1);
    let label = serde_json::json!({"metadata": {"labels": {"touched": "yes"}}});
    predictors
        .patch("american", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d = deployments.get("american").await.unwrap();
    assert_eq!(
        pod_image(&d),
        pinned("0.1", &digest_1),
        "a re-pushed tag changed the pods"
    );
    let annotate =
        serde_json::json!({"metadata": {"annotations": {RESOLVE_IMAGE_ANNOTATION: "1"}}});
    predictors
        .patch(
            "american",
            &PatchParams::default(),
            &Patch::Merge(&annotate),
        )
        .await
        .unwrap();
    wait_object(
        &deployments,
        "american",
        Duration::from_secs(30),
        "the re-resolved digest",
        &op,
        |d| pod_image(d) == pinned("0.1", &digest_1b),
    )
    .await;

    // 3. A tag that does not exist: refused in seconds, the Deployment untouched.
    let before = deployments.get("american").await.unwrap();
    let started = Instant::now();
    set_image(&predictors, "american", &image("0.9-missing")).await;
    let refused = degraded_for(&predictors, "ImageNotFound", Duration::from_secs(30), &op).await;
    let took = started.elapsed();
    eprintln!(
        "[images] missing tag refused after {:.1} s",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(5), "refused after {took:?}");
    let (status, _, message) = condition(&refused, "ImageResolved");
    assert_eq!(status, "False");
    assert!(
        message.contains("0.9-missing") && message.contains("left unchanged"),
        "{message}"
    );
    let after = deployments.get("american").await.unwrap();
    assert_eq!(
        after.metadata.generation, before.metadata.generation,
        "Deployment touched"
    );
    assert_eq!(pod_image(&after), pinned("0.1", &digest_1b));
    assert_eq!(
        condition(&refused, "Ready").0,
        "True",
        "the old pods keep serving"
    );

    // 4. A wrong password in the pull Secret: RegistryUnauthorized; fixed, the rollout goes on
    //    by itself (the operator looks again within seconds).
    let wrong = pull_secret(SECRET, &registry.docker_config("not-the-password"));
    secrets
        .patch(SECRET, &PatchParams::default(), &Patch::Merge(&wrong))
        .await
        .unwrap();
    set_image(&predictors, "american", &image("0.2")).await;
    let refused = degraded_for(
        &predictors,
        "RegistryUnauthorized",
        Duration::from_secs(30),
        &op,
    )
    .await;
    let text = serde_json::to_string(&refused.status).unwrap();
    assert!(
        !text.contains("not-the-password") && !text.contains(PASSWORD),
        "{text}"
    );
    assert_eq!(
        pod_image(&deployments.get("american").await.unwrap()),
        pinned("0.1", &digest_1b)
    );
    let fixed = pull_secret(SECRET, &registry.docker_config(PASSWORD));
    secrets
        .patch(SECRET, &PatchParams::default(), &Patch::Merge(&fixed))
        .await
        .unwrap();
    wait_object(
        &deployments,
        "american",
        Duration::from_secs(45),
        "0.2 rolled out",
        &op,
        |d| pod_image(d) == pinned("0.2", &digest_2) && rolled_out(d),
    )
    .await;

    // 5. The registry stopped: RegistryUnreachable, Deployment untouched; back, the rollout goes on.
    registry.stop();
    set_image(&predictors, "american", &image("0.3")).await;
    degraded_for(
        &predictors,
        "RegistryUnreachable",
        Duration::from_secs(45),
        &op,
    )
    .await;
    assert_eq!(
        pod_image(&deployments.get("american").await.unwrap()),
        pinned("0.2", &digest_2)
    );
    registry.resume();
    let done = wait_object(
        &predictors,
        "american",
        Duration::from_secs(60),
        "0.3 served",
        &op,
        |p| {
            p.status.as_ref().and_then(|s| s.image_digest.as_deref()) == Some(digest_3.as_str())
                && operator::status::is_ready(p)
        },
    )
    .await;
    assert_eq!(condition(&done, "Degraded").0, "False");

    // Events and metrics say the same; the password is nowhere.
    let events: Api<Event> = Api::namespaced(client, ns);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("american"))
        .filter_map(|e| e.reason.clone())
        .collect();
    assert!(reasons.iter().any(|r| r == "ImageRejected"), "{reasons:?}");
    for result in [
        "resolved",
        "image_not_found",
        "registry_unauthorized",
        "registry_unreachable",
    ] {
        let (_, body) = op.get("/metrics").expect("metrics");
        assert!(
            body.lines().any(|l| l.starts_with(&format!(
                "predictor_operator_image_checks_total{{result=\"{result}\"}}"
            ))),
            "no {result} in\n{body}"
        );
    }
    assert!(
        !op.proc.tail(10_000).contains(PASSWORD),
        "password in the operator log"
    );
}
