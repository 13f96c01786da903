//! The Predictor's life on a real control plane: kubectl shows it, image and model changes roll out
//! with the status following, deletion collects the children, a wrong digest never reaches the
//! Deployment, the apiserver validates, config/default dry-runs, RBAC refuses what is not needed,
//! metrics, and a standby replica taking over.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use operator::crd::{Predictor, PredictorStatus};
use operator::resources::Served;

use crate::support::manifests::{manifest, predictor};
use crate::support::wait::{gone, poll};
use crate::support::{OperatorProc, ServedModel as Model, client_for, model_file};
use crate::{
    IMAGE, apply, assert_accepted, assert_forbidden, assert_refused, in_namespace, operated,
    patch_predictor, shared, start_scoped, wait_object,
};

/// (status, reason, message) of a condition.
pub fn condition(status: &PredictorStatus, type_: &str) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn is(status: &PredictorStatus, type_: &str, value: &str) -> bool {
    condition(status, type_).is_some_and(|(s, _, _)| s == value)
}

/// Whether `p`'s status is of generation `generation` and says `type_` is `value`.
pub fn says_at(p: &Predictor, generation: i64, type_: &str, value: &str) -> bool {
    p.status
        .as_ref()
        .is_some_and(|st| st.observed_generation == Some(generation) && is(st, type_, value))
}

/// Waits (up to `within_secs`) until generation `generation` of Predictor `name` says condition
/// `type_` is `value`.
pub async fn wait_says(
    api: &Api<Predictor>,
    name: &str,
    generation: i64,
    (type_, value): (&str, &str),
    within_secs: u64,
    op: &OperatorProc,
) -> Predictor {
    let what = format!("{type_}={value} for generation {generation}");
    let within = Duration::from_secs(within_secs);
    wait_object(api, name, within, &what, op, |p| {
        says_at(p, generation, type_, value)
    })
    .await
}

/// Waits until the Predictor's current generation is Ready.
async fn wait_ready(api: &Api<Predictor>, name: &str, op: &OperatorProc) -> Predictor {
    wait_object(api, name, Duration::from_secs(90), "Ready=True", op, |p| {
        operator::status::is_ready(p)
    })
    .await
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn sample_becomes_ready_and_kubectl_shows_it() {
    let (s, ns, op, client) = operated("sample").await;
    // The committed sample, with the model URL and digest pointed at the loopback file server
    // (as a user's overlay would), applied with kustomize.
    let overlay = tempfile::tempdir().unwrap();
    let samples = crate::support::repo_root().join("config/samples");
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {ns}\nresources:\n  - {}\n\
             patches:\n  - target: {{kind: Predictor, name: american}}\n    patch: |-\n      \
             - {{op: replace, path: /spec/model/url, value: \"{}\"}}\n      \
             - {{op: replace, path: /spec/model/sha256, value: \"{}\"}}\n",
            crate::support::relative_to(overlay.path(), &samples).display(),
            s.model_a.url,
            s.model_a.sha
        ),
    )
    .unwrap();
    s.cluster
        .kubectl_ok(&["apply", "-k", &overlay.path().display().to_string()]);

    let predictors: Api<Predictor> = Api::namespaced(client.clone(), ns);
    let p = wait_ready(&predictors, "american", &op).await;
    let uid = p.uid().unwrap();

    // Both children exist and are owned (controller=true) by the Predictor.
    let deployment = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("american")
        .await
        .unwrap();
    let service = Api::<Service>::namespaced(client.clone(), ns)
        .get("american")
        .await
        .unwrap();
    for owners in [deployment.owner_references(), service.owner_references()] {
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, uid);
        assert_eq!(owners[0].kind, "Predictor");
        assert_eq!(owners[0].controller, Some(true));
    }
    assert_eq!(
        deployment.status.as_ref().unwrap().available_replicas,
        Some(2)
    );

    let status = p.status.clone().unwrap();
    assert_eq!(status.ready.as_deref(), Some("2/2"));
    assert_eq!(status.version.as_deref(), Some("0.2"));
    assert_eq!(status.model_sha256.as_deref(), Some(s.model_a.sha.as_str()));
    assert!(is(&status, "Ready", "True") && is(&status, "ModelVerified", "True"));
    assert!(is(&status, "Degraded", "False") && is(&status, "Progressing", "False"));

    // What a user sees.
    let table = s.cluster.kubectl_ok(&["get", "predictors", "-n", ns]);
    let header: Vec<_> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        // ROLLOUT: the phase of a Canary rollout (empty for rolling updates).
        ["NAME", "READY", "VERSION", "MODEL", "URL", "ROLLOUT", "AGE"],
        "{table}"
    );
    let row: Vec<_> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..5],
        [
            "american",
            "2/2",
            "0.2",
            &s.model_a.sha[..12],
            "http://american.sample.svc:5008/api/american"
        ],
        "{table}"
    );
    // The short name works too.
    assert!(
        s.cluster
            .kubectl_ok(&["get", "pred", "-n", ns])
            .contains("american")
    );
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn image_and_model_changes_roll_out_and_status_follows() {
    let (s, ns, op, client) = operated("rollout").await;
    apply(ns, &[predictor("p", IMAGE, &s.model_a, 2)]);
    let predictors: Api<Predictor> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    wait_ready(&predictors, "p", &op).await;

    // Record every status the operator writes from here on.
    let seen: Arc<Mutex<Vec<PredictorStatus>>> = Arc::default();
    let recorder = tokio::spawn({
        let seen = seen.clone();
        let stream = watcher(
            predictors.clone(),
            watcher::Config::default().fields("metadata.name=p"),
        )
        .applied_objects();
        async move {
            futures::pin_mut!(stream);
            while let Some(Ok(p)) = stream.next().await {
                if let Some(status) = p.status {
                    seen.lock().unwrap().push(status);
                }
            }
        }
    });

    // 1. New code: bump the image tag.
    patch_predictor(
        &s.cluster,
        ns,
        "p",
        r#"{"spec":{"image":"registry.local/american-predictor:0.3"}}"#,
    );
    let p = wait_object(
        &predictors,
        "p",
        Duration::from_secs(90),
        "version 0.3 ready",
        &op,
        |p| {
            operator::status::is_ready(p)
                && p.status.as_ref().unwrap().version.as_deref() == Some("0.3")
        },
    )
    .await;
    assert_eq!(p.metadata.generation, Some(2));
    let d = deployments.get("p").await.unwrap();
    assert_eq!(
        Served::of(&d).image.as_deref(),
        Some("registry.local/american-predictor:0.3")
    );
    // A rolling update: a new ReplicaSet took over from the old one.
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/instance=p"))
        .await
        .unwrap();
    assert_eq!(replica_sets.items.len(), 2, "one ReplicaSet per template");

    // 2. New model: URL and digest together.
    crate::quality::set_model(ns, "p", &s.model_b);
    let p = wait_object(
        &predictors,
        "p",
        Duration::from_secs(90),
        "model B ready",
        &op,
        |p| {
            operator::status::is_ready(p)
                && p.status.as_ref().unwrap().model_sha256.as_deref()
                    == Some(s.model_b.sha.as_str())
        },
    )
    .await;
    assert_eq!(
        p.status.as_ref().unwrap().model_short.as_deref(),
        Some(&s.model_b.sha[..12])
    );
    let d = deployments.get("p").await.unwrap();
    assert!(Served::of(&d).runs_model(&p.spec.model));
    recorder.abort();

    // The status went through Progressing=True for each new generation before Ready=True, and
    // while rolling it still named what the old pods served.
    let seen = seen.lock().unwrap().clone();
    for (generation, old_version) in [(2, "0.2"), (3, "0.3")] {
        let of_gen: Vec<_> = seen
            .iter()
            .filter(|s| s.observed_generation == Some(generation))
            .collect();
        let progressing = of_gen.iter().position(|s| is(s, "Progressing", "True"));
        let ready = of_gen.iter().position(|s| is(s, "Ready", "True"));
        assert!(
            matches!((progressing, ready), (Some(a), Some(b)) if a < b),
            "generation {generation}: expected Progressing=True then Ready=True, saw {:#?}",
            of_gen.iter().map(|s| &s.conditions).collect::<Vec<_>>()
        );
        let rolling = of_gen[progressing.unwrap()];
        assert_eq!(rolling.version.as_deref(), Some(old_version));
        assert_eq!(
            rolling.model_sha256.as_deref(),
            Some(s.model_a.sha.as_str())
        );
    }

    // Events told the story.
    let events = events_for(&client, ns, "p").await;
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "RollingUpdate" && n.contains("image")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "RollingUpdate" && n.contains("model")),
        "{events:?}"
    );
    assert!(events.iter().any(|(r, _)| r == "Ready"), "{events:?}");
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn deleting_a_predictor_collects_its_children() {
    let (s, ns, op, client) = operated("gc").await;
    apply(ns, &[predictor("doomed", IMAGE, &s.model_a, 1)]);
    let predictors: Api<Predictor> = Api::namespaced(client.clone(), ns);
    wait_ready(&predictors, "doomed", &op).await;
    predictors
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();

    // The garbage collector of kube-controller-manager removes both children.
    let within = Duration::from_secs(60);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    gone(&deployments, "doomed", within)
        .await
        .unwrap_or_else(|e| panic!("Deployment not collected: {e}"));
    gone(&services, "doomed", within)
        .await
        .unwrap_or_else(|e| panic!("Service not collected: {e}"));
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn wrong_model_digest_never_reaches_the_deployment() {
    let (s, ns, op, client) = operated("wrong-digest").await;
    let predictors: Api<Predictor> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);

    // A running Predictor on model A...
    apply(ns, &[predictor("p", IMAGE, &s.model_a, 2)]);
    wait_ready(&predictors, "p", &op).await;
    let before = deployments.get("p").await.unwrap();

    // ...is pointed at a URL that serves model B's bytes while pinning model A's digest.
    let wrong_url = s.files.put(
        "/models/mislabelled.model",
        model_file("2026-11-25T00:00:00Z").0,
    );
    patch_predictor(
        &s.cluster,
        ns,
        "p",
        &format!(r#"{{"spec":{{"model":{{"url":"{wrong_url}"}}}}}}"#),
    );
    let p = wait_says(&predictors, "p", 2, ("Degraded", "True"), 60, &op).await;
    let status = p.status.unwrap();
    let (_, reason, message) = condition(&status, "Degraded").unwrap();
    assert_eq!(reason, "DigestMismatch");
    assert!(
        message.contains(&s.model_a.sha),
        "expected digest missing: {message}"
    );
    assert!(
        message.contains(&s.model_b.sha),
        "actual digest missing: {message}"
    );
    let (verified, _, _) = condition(&status, "ModelVerified").unwrap();
    assert_eq!(verified, "False");
    // The old pods keep serving: still Ready, still model A.
    assert!(is(&status, "Ready", "True"));
    assert_eq!(status.model_sha256.as_deref(), Some(s.model_a.sha.as_str()));

    // The Deployment was not touched.
    assert_untouched(&deployments, &before).await;

    // An Event names both digests.
    let events = events_for(&client, ns, "p").await;
    assert!(
        events.iter().any(|(r, n)| r == "ModelRejected"
            && n.contains(&s.model_a.sha)
            && n.contains(&s.model_b.sha)),
        "{events:?}"
    );

    // A new Predictor with a refused model never gets a Deployment at all.
    apply(
        ns,
        &[predictor(
            "fresh",
            IMAGE,
            &Model {
                url: wrong_url.clone(),
                sha: s.model_a.sha.clone(),
            },
            1,
        )],
    );
    wait_object(
        &predictors,
        "fresh",
        Duration::from_secs(60),
        "ModelVerified=False",
        &op,
        |p| {
            p.status
                .as_ref()
                .is_some_and(|st| is(st, "ModelVerified", "False"))
        },
    )
    .await;
    assert!(deployments.get_opt("fresh").await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn invalid_predictors_are_rejected_at_apply_time() {
    let (_, ns) = in_namespace("invalid");
    let good = "apiVersion: mlops.dev/v1alpha1\nkind: Predictor\nmetadata:\n  name: NAME\nspec:\n  \
                image: registry.local/american-predictor:0.2\n  model:\n    url: https://models.example.org/a.model\n    \
                sha256: aa3013a51db4a94e5fc94343685087fcb16f3cbe6f28f37d3f707e18d7a2d9da\n  port: 5008\n  replicas: 1\n";
    let cases: [(&str, String, &str); 15] = [
        (
            "bad-sha",
            good.replace(
                "aa3013a51db4a94e5fc94343685087fcb16f3cbe6f28f37d3f707e18d7a2d9da",
                "not-a-digest",
            ),
            "spec.model.sha256 in body should match '^[0-9a-f]{64}$'",
        ),
        (
            "big-port",
            good.replace("port: 5008", "port: 70000"),
            "spec.port in body should be less than or equal to 65535",
        ),
        (
            "ftp-url",
            good.replace("https://models.example.org", "ftp://models.example.org"),
            "model.url must start with http://, https://, hdfs://, s3:// or oci://",
        ),
        (
            "oci-short-pin",
            good.replace(
                "https://models.example.org/a.model",
                "oci://registry.local/models/american@sha256:abc",
            ),
            "an oci:// model.url pins its artifact as oci://registry/repository@sha256:<64 lowercase hex>",
        ),
        (
            "s3-settings-on-https",
            good.replace(
                "    sha256: aa30",
                "    s3: {endpoint: \"http://10.77.0.1:8333\"}\n    sha256: aa30",
            ),
            "model.s3 configures s3:// URLs only",
        ),
        (
            "s3-endpoint-scheme",
            good.replace("https://models.example.org/a.model", "s3://models/a.model")
                .replace(
                    "    sha256: aa30",
                    "    s3: {endpoint: \"10.77.0.1:8333\"}\n    sha256: aa30",
                ),
            "model.s3.endpoint must be an http:// or https:// URL",
        ),
        (
            "no-image",
            good.replace("  image: registry.local/american-predictor:0.2\n", ""),
            "spec.image: Required value",
        ),
        (
            "negative",
            good.replace("replicas: 1", "replicas: -1"),
            "spec.replicas in body should be greater than or equal to 0",
        ),
        (
            "no-model",
            good.replace(
                "    sha256: aa3013a51db4a94e5fc94343685087fcb16f3cbe6f28f37d3f707e18d7a2d9da\n",
                "",
            ),
            "spec.model.sha256: Required value",
        ),
        (
            "bad-pull-secret",
            good.replace(
                "  replicas: 1\n",
                "  replicas: 1\n  imagePullSecrets:\n  - name: Registry_Team_A\n",
            ),
            "spec.imagePullSecrets[0].name in body should match",
        ),
        (
            "1-starts-with-digit",
            good.to_string(),
            "metadata.name must be a DNS-1035 label",
        ),
        (
            "budget-both",
            good.replace(
                "  replicas: 1\n",
                "  replicas: 2\n  disruption: {maxUnavailable: 1, minAvailable: 1}\n",
            ),
            "spec.disruption sets exactly one of maxUnavailable and minAvailable",
        ),
        (
            "budget-zero",
            good.replace(
                "  replicas: 1\n",
                "  replicas: 2\n  disruption: {maxUnavailable: 0}\n",
            ),
            "spec.disruption.maxUnavailable must be at least 1",
        ),
        (
            "budget-zero-percent",
            good.replace(
                "  replicas: 1\n",
                "  replicas: 2\n  disruption: {maxUnavailable: \"0%\"}\n",
            ),
            "spec.disruption.maxUnavailable must be at least 1",
        ),
        (
            "budget-over-100",
            good.replace(
                "  replicas: 1\n",
                "  replicas: 2\n  disruption: {minAvailable: \"150%\"}\n",
            ),
            "spec.disruption.minAvailable must be a number of pods",
        ),
    ];
    for (name, stderr) in assert_refused(&["apply", "-n", ns, "-f", "-"], cases) {
        assert!(
            stderr.contains("is invalid"),
            "{name}: not a validation error:\n{stderr}"
        );
    }
    // The unchanged object is accepted (the cases fail for their one reason), and so are the
    // budgets a team may write: a count, a percentage, either field.
    assert_accepted(ns, good);
    for budget in [
        "{maxUnavailable: 1}",
        "{maxUnavailable: \"50%\"}",
        "{minAvailable: 1}",
        "{minAvailable: \"0%\"}",
    ] {
        assert_accepted(
            ns,
            &good.replace(
                "  replicas: 1\n",
                &format!("  replicas: 2\n  disruption: {budget}\n"),
            ),
        );
    }

    // Created for real, with no operator watching this namespace: the apiserver serves the CRD's default
    // status, "generation 1 not observed yet", which kstatus (Flux, kpt) reads as InProgress, not Current.
    let s = shared();
    s.cluster.kubectl_stdin(
        &["apply", "-n", ns, "-f", "-"],
        &good.replace("NAME", "unseen"),
    );
    let unseen = s
        .cluster
        .kubectl_ok(&["get", "predictor", "unseen", "-n", ns, "-o", "json"]);
    let object: serde_json::Value = serde_json::from_str(&unseen).unwrap();
    assert_eq!(
        object["status"],
        serde_json::json!({"observedGeneration": 0}),
        "{unseen}"
    );
    let told = crate::support::kstatus::kstatus(&[object]);
    assert_eq!(
        told[0],
        serde_json::json!({"status": "InProgress",
            "message": "Predictor generation is 1, but latest observed generation is 0"})
    );
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn config_default_passes_server_side_dry_run() {
    let s = shared();
    let default = crate::support::repo_root().join("config/default");
    let out = s.cluster.kubectl_ok(&[
        "apply",
        "--dry-run=server",
        "-k",
        &default.display().to_string(),
    ]);
    for object in [
        "customresourcedefinition.apiextensions.k8s.io/predictors.mlops.dev",
        "clusterrole.rbac.authorization.k8s.io/predictor-operator",
        "deployment.apps/predictor-operator",
    ] {
        assert!(out.contains(object), "{object} missing from:\n{out}");
    }
    // The namespace warns on pod templates that break the restricted Pod Security Standard; the
    // operator's own Deployment must not trigger that warning.
    let out = s.cluster.kubectl(&[
        "apply",
        "--dry-run=server",
        "-k",
        &default.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("violate PodSecurity"), "{stderr}");
}

/// A GitOps repository's `images:` entries reach Predictors through the committed kustomize
/// configuration, as a release pipeline's `kustomize edit set image` writes them: a new tag, or a
/// tag pinned to a digest; other images and Predictors are left alone.
#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn kustomize_image_overrides_reach_predictors() {
    let s = shared();
    let repo = tempfile::tempdir().expect("temp dir");
    // As a team does: the file copied next to its kustomization (kustomize loads files below its root).
    std::fs::copy(
        crate::support::repo_root().join("config/kustomizeconfig/predictor-images.yaml"),
        repo.path().join("predictor-images.yaml"),
    )
    .expect("copy the kustomize configuration");
    let mut american = predictor(
        "american",
        "registry.example.com/team-a/american-predictor:0.1",
        &s.model_a,
        2,
    );
    american.metadata.namespace = Some("team-a".into());
    let mut other = predictor(
        "other",
        "registry.example.com/team-a/other:1.0",
        &s.model_a,
        1,
    );
    other.metadata.namespace = Some("team-a".into());
    std::fs::write(
        repo.path().join("predictors.yaml"),
        manifest(&[american, other]),
    )
    .unwrap();
    let digest = format!("sha256:{}", "5d".repeat(32));
    for (override_, wanted) in [
        (
            "newTag: 3f2c1ab".to_string(),
            "registry.example.com/team-a/american-predictor:3f2c1ab".to_string(),
        ),
        (
            format!("newTag: 3f2c1ab\n    digest: {digest}"),
            format!("registry.example.com/team-a/american-predictor:3f2c1ab@{digest}"),
        ),
    ] {
        std::fs::write(
            repo.path().join("kustomization.yaml"),
            format!(
                "resources: [predictors.yaml]\nconfigurations: [predictor-images.yaml]\nimages:\n  \
                 - name: registry.example.com/team-a/american-predictor\n    {override_}\n"
            ),
        )
        .unwrap();
        let out = s
            .cluster
            .kubectl_ok(&["kustomize", &repo.path().display().to_string()]);
        let built: Vec<Predictor> = out
            .split("\n---\n")
            .map(|doc| serde_saphyr::from_str(doc).expect("a Predictor"))
            .collect();
        let image = |name: &str| {
            built
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name))
                .map(|p| p.spec.image.clone())
        };
        assert_eq!(image("american"), Some(wanted), "{out}");
        assert_eq!(
            image("other").as_deref(),
            Some("registry.example.com/team-a/other:1.0"),
            "{out}"
        );
    }
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn operator_rbac_refuses_verbs_it_does_not_need() {
    let s = shared();
    let sa = format!(
        "system:serviceaccount:{}:{}",
        crate::support::OPERATOR_NAMESPACE,
        crate::support::OPERATOR_SA
    );
    let can = |verb: &str, resource: &str, ns: Option<&str>| {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        let subresource = format!("--subresource={subresource}");
        let mut args = vec!["auth", "can-i", verb, resource, "--as", &sa];
        if subresource != "--subresource=" {
            args.push(&subresource);
        }
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let out = s.cluster.kubectl(&args);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    for (verb, resource) in [
        ("watch", "predictors.mlops.dev"),
        ("patch", "predictors.mlops.dev/status"),
        ("patch", "deployments.apps"),
        ("create", "deployments.apps"),
        ("list", "services"),
        ("create", "events.events.k8s.io"),
        ("get", "secrets"),
        ("list", "pods"),
        ("watch", "pods"),
    ] {
        assert!(
            can(verb, resource, Some("default")),
            "operator needs {verb} {resource}"
        );
    }
    assert!(can(
        "update",
        "leases.coordination.k8s.io",
        Some("predictor-system")
    ));
    for (verb, resource, ns) in [
        ("delete", "deployments.apps", Some("default")),
        ("delete", "services", Some("default")),
        ("list", "secrets", Some("default")),
        ("watch", "secrets", Some("default")),
        ("create", "pods", Some("default")),
        ("get", "pods", Some("default")),
        ("update", "predictors.mlops.dev", Some("default")),
        ("delete", "predictors.mlops.dev", Some("default")),
        ("update", "leases.coordination.k8s.io", Some("default")),
        ("create", "clusterroles.rbac.authorization.k8s.io", None),
    ] {
        assert!(
            !can(verb, resource, ns),
            "operator must not be allowed to {verb} {resource}"
        );
    }

    // And for real, with the token the operator itself runs with.
    let client = client_for(&s.operator_kubeconfig).await;
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    let listed = secrets.list(&ListParams::default()).await;
    assert_forbidden(listed, "listing Secrets");
    let deployments = Api::<Deployment>::namespaced(client.clone(), "default");
    let deleted = deployments
        .delete("anything", &DeleteParams::default())
        .await;
    assert_forbidden(deleted, "deleting a Deployment");
    Api::<Predictor>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn operator_serves_metrics_and_healthz() {
    let ns = "metrics";
    shared().cluster.create_namespace(ns);
    let op = start_scoped("operator-metrics", ns, ns);
    assert_eq!(op.get("/healthz").map(|(c, _)| c), Some(200));
    poll(Duration::from_secs(30), "the operator to lead", || {
        (op.metric("predictor_operator_leader") == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", op.proc.tail(20)));
    let (code, body) = op.get("/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("# TYPE predictor_operator_reconcile_duration_seconds histogram"),
        "{body}"
    );
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn a_second_replica_waits_and_takes_over_on_sigterm() {
    let s = shared();
    // Its own Lease with the default 15 s duration, in a namespace with no Predictors.
    let ns = "leader";
    s.cluster.create_namespace(ns);
    let flags = [
        "--skip-image-check",
        "--lease-name",
        "leader-test",
        "--namespace",
        ns,
        "--retry-period",
        "1s",
    ];
    let mut first = s
        .cluster
        .start_operator("operator-first", &s.operator_kubeconfig, &flags);
    let leader = |op: &OperatorProc| op.metric("predictor_operator_leader") == Some(1.0);
    poll(Duration::from_secs(30), "the first replica to lead", || {
        leader(&first).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", first.proc.tail(20)));
    let second = s
        .cluster
        .start_operator("operator-second", &s.operator_kubeconfig, &flags);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!leader(&second), "two leaders at once");
    assert_eq!(
        second.get("/healthz").map(|(c, _)| c),
        Some(200),
        "a standby replica is healthy"
    );

    // SIGTERM: the leader stops cleanly and releases the Lease, the standby takes over quickly
    // (well before the 15 s lease duration would have expired).
    let stopped = std::time::Instant::now();
    let status = first
        .proc
        .terminate(Duration::from_secs(30))
        .expect("leader exits on SIGTERM");
    assert!(
        status.success(),
        "leader exit status {status}:\n{}",
        first.proc.tail(20)
    );
    let left = Duration::from_secs(10).saturating_sub(stopped.elapsed());
    poll(left, "the standby to take over", || {
        leader(&second).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", second.proc.tail(20)));
    assert!(
        first.proc.tail(10).contains("released the Lease"),
        "{}",
        first.proc.tail(10)
    );
}

/// Asserts that Deployment `before` is, two seconds on, the same generation running the same
/// pods: the operator did not write it.
pub async fn assert_untouched(deployments: &Api<Deployment>, before: &Deployment) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = deployments.get(&before.name_any()).await.unwrap();
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(Served::of(&after), Served::of(before));
}

/// (reason, note) of the events.k8s.io Events about Predictor `name` in `ns`.
pub async fn events_for(client: &Client, ns: &str, name: &str) -> Vec<(String, String)> {
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    events
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Predictor") && r.name.as_deref() == Some(name)
            })
        })
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}
