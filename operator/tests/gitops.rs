//! GitOps tier: real ArgoCD delivers Predictors from Git, the operator rolls them out.
//!
//! ArgoCD's application controller and repo server (the `argocd` binary that
//! `dev/argocd/build.sh` builds from the Go module proxy, with the CRDs from the same module's
//! `manifests/crds`) and Debian's `redis-server` run against a real control plane with kwok nodes
//! (`support`). The committed `argocd/` AppProject and Application, the health check from
//! `argocd/argocd-cm-patch.yaml` and the real operator binary are used unchanged; only the Git URL
//! points at a repository this test creates on local disk (`file://`). The in-cluster destination
//! `https://kubernetes.default.svc` reaches the test apiserver through ArgoCD's own
//! `ARGOCD_FAKE_IN_CLUSTER` switch (the destination is taken from the controller's KUBECONFIG).
//!
//! Refreshes are triggered the way ArgoCD's Git webhook does it (the `argocd.argoproj.io/refresh`
//! annotation on the Application), and the controller's periodic resync is set to an hour, so a
//! sync can only come from that trigger.
//!
//! ArgoCD's startup is `support::argocd`'s (shared with the argocd-server tier, `argocd_server.rs`);
//! the argocd files are looked up in `MLOPS_ARGOCD_BIN`, else `MLOPS_K8S_BIN`, else the cache's bin
//! dir (`dev/argocd/build.sh` builds them). Needs `redis-server` and `git` on PATH. Ignored by a plain
//! `cargo test`; `./dev/test` runs it, and when selected it fails at once if a program is missing.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, ResourceExt};
use operator::crd::Predictor;
use operator::resources::Served;
use serde_json::{Value, json};
use support::argocd::{self, APP, ArgoCd, Components, GIT_PATH, TEAM_NS, app_state, applications};
use support::git::GitRepo;
use support::manifests::{manifest, predictor};
use support::wait::{gone, object};
use support::{ServedModel, TestCluster, client_for};

const IMAGE: &str = "registry.local/american-predictor";
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// Predictor `name` of the team's repository: image tag `tag`, 2 replicas.
fn predictor_file(name: &str, tag: &str, model: &ServedModel) -> String {
    manifest(&[predictor(name, &format!("{IMAGE}:{tag}"), model, 2)])
}

/// Waits until `done` holds for the object `name`; panics after `SYNC_TIMEOUT` with what was seen
/// and the ArgoCD logs.
async fn wait_for<K>(
    argocd: &mut ArgoCd,
    api: &Api<K>,
    name: &str,
    what: &str,
    done: impl Fn(&K) -> bool,
) -> K
where
    K: support::wait::Watched,
{
    let found = object(api, name, SYNC_TIMEOUT, what, done).await;
    argocd.check_running();
    found.unwrap_or_else(|e| panic!("{e}\n{}", argocd.logs()))
}

/// Waits until the object `name` no longer exists.
async fn wait_gone<K>(argocd: &mut ArgoCd, api: &Api<K>, name: &str)
where
    K: support::wait::Watched,
{
    let deleted = gone(api, name, SYNC_TIMEOUT).await;
    argocd.check_running();
    deleted.unwrap_or_else(|e| panic!("{e}\n{}", argocd.logs()));
}

/// Waits until ArgoCD reports the Application Synced to `revision` and, if `healthy`, Healthy.
async fn wait_app_at(
    argocd: &mut ArgoCd,
    apps: &Api<DynamicObject>,
    revision: &str,
    healthy: bool,
) -> DynamicObject {
    let what = format!(
        "Synced to {revision}{}",
        if healthy { " + Healthy" } else { "" }
    );
    wait_for(argocd, apps, APP, &what, |a| {
        let (sync, at, health) = app_state(a);
        sync == "Synced" && at == revision && (!healthy || health == "Healthy")
    })
    .await
}

/// What ArgoCD's Git webhook does for a push: mark the Application for a normal refresh.
async fn refresh(apps: &Api<DynamicObject>) {
    let patch = json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
    apps.patch(APP, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate the Application for refresh");
}

fn deployment_image(d: &Deployment) -> String {
    Served::of(d).image.unwrap_or_default()
}

fn has_argocd_tracking(meta: &kube::api::ObjectMeta) -> bool {
    let tracked = |m: &Option<std::collections::BTreeMap<String, String>>| {
        m.as_ref()
            .is_some_and(|m| m.keys().any(|k| k.starts_with("argocd.argoproj.io/")))
    };
    tracked(&meta.annotations)
}

#[tokio::test]
#[ignore = "needs etcd, kube-*, kwok, kubectl, argocd, redis-server, git: ./dev/test runs it"]
async fn argocd_syncs_predictors_from_git_and_leaves_children_to_the_operator() {
    let bin = argocd::bin_dir(&["argocd-application-controller", "argocd-repo-server"]);
    let cluster = TestCluster::start(2);
    let operator_kubeconfig = cluster.install_operator_prerequisites();
    argocd::install_config(&cluster, &bin);

    // Acceptance 2: the committed manifests, as they are, against the real CRDs.
    let dry_run = cluster.kubectl_ok(&[
        "apply",
        "--dry-run=server",
        "-k",
        &support::repo_root().join("argocd").display().to_string(),
    ]);
    assert!(
        dry_run.contains("appproject.argoproj.io/team-a-project created (server dry run)")
            && dry_run.contains(&format!(
                "application.argoproj.io/{APP} created (server dry run)"
            )),
        "{dry_run}"
    );

    // The platform's part: team namespace, operator, model files.
    cluster.create_namespace(TEAM_NS);
    let (_files, model, _operator) =
        argocd::model_and_operator(&cluster, &operator_kubeconfig, "operator-gitops");

    // The team's repository: two Predictors.
    let repo = GitRepo::init(&cluster.dir.join("git/predictors"));
    let american = format!("{GIT_PATH}/american.yaml");
    let spare = format!("{GIT_PATH}/spare.yaml");
    let first = repo.commit(
        "two predictors",
        &[
            (&american, Some(&predictor_file("american", "0.1", &model))),
            (&spare, Some(&predictor_file("spare", "0.1", &model))),
        ],
    );

    let mut argocd = ArgoCd::start(&cluster, &bin, Components::Sync);
    let overlay = argocd::team_a_overlay(&cluster.dir, &repo.url());
    cluster.kubectl_ok(&["apply", "-k", &overlay.display().to_string()]);

    let client = client_for(&cluster.kubeconfig).await;
    let apps = applications(&client);
    let predictors: Api<Predictor> = Api::namespaced(client.clone(), TEAM_NS);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), TEAM_NS);
    let services: Api<Service> = Api::namespaced(client.clone(), TEAM_NS);

    // First sync: both Predictors, rolled out by the operator, Healthy through our health.lua.
    let started = Instant::now();
    let app = wait_app_at(&mut argocd, &apps, &first, true).await;
    eprintln!(
        "[gitops] first sync Synced + Healthy in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let american_deployment = deployments.get("american").await.unwrap();
    let american_service = services.get("american").await.unwrap();
    assert_eq!(
        deployment_image(&american_deployment),
        format!("{IMAGE}:0.1")
    );
    assert_only_predictors_tracked(&app, &["american", "spare"]);
    // ArgoCD ran our health check: the Predictor's health message is the operator's Ready message.
    let ready_message = predictors
        .get("american")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message)
        .unwrap();
    let american_health = app.data["status"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "american")
        .map(|r| r["health"].clone())
        .unwrap();
    assert_eq!(american_health["status"], "Healthy");
    assert_eq!(
        american_health["message"],
        Value::from(ready_message),
        "{american_health}"
    );

    // Acceptance 3: a commit that bumps american's image tag, then the webhook-style refresh.
    let second = repo.commit(
        "american 0.2",
        &[(&american, Some(&predictor_file("american", "0.2", &model)))],
    );
    let committed = Instant::now();
    refresh(&apps).await;
    wait_app_at(&mut argocd, &apps, &second, false).await;
    let synced = committed.elapsed();
    let deployment = wait_for(
        &mut argocd,
        &deployments,
        "american",
        "rolled out with 0.2",
        |d| deployment_image(d) == format!("{IMAGE}:0.2") && support::wait::rolled_out(d),
    )
    .await;
    let rolled = committed.elapsed();
    let predictor = wait_for(
        &mut argocd,
        &predictors,
        "american",
        "Ready serving 0.2",
        |p| {
            operator::status::is_ready(p)
                && p.status.as_ref().and_then(|s| s.version.as_deref()) == Some("0.2")
        },
    )
    .await;
    let app = wait_app_at(&mut argocd, &apps, &second, true).await;
    eprintln!(
        "[gitops] commit -> Synced {:.1}s, -> rolled out {:.1}s, -> Synced + Healthy {:.1}s",
        synced.as_secs_f64(),
        rolled.as_secs_f64(),
        committed.elapsed().as_secs_f64()
    );
    assert_eq!(predictor.status.unwrap().ready.as_deref(), Some("2/2"));
    let operation = &app.data["status"]["operationState"];
    assert_eq!(operation["phase"], "Succeeded", "{operation:#}");
    assert_eq!(
        operation["operation"]["sync"]["revision"],
        Value::from(second.as_str())
    );
    assert_only_predictors_tracked(&app, &["american", "spare"]);

    // Acceptance 4: a commit that drops spare. The automated sync prunes (prune: true) the spare
    // Predictor and nothing else; the cluster's garbage collector removes its children through
    // their owner references; american's children stay the same objects (never deleted or
    // recreated by ArgoCD), and ArgoCD tracks nothing but Predictors.
    let third = repo.commit("no spare", &[(&spare, None)]);
    refresh(&apps).await;
    let app = wait_app_at(&mut argocd, &apps, &third, true).await;
    let operation = &app.data["status"]["operationState"];
    assert_eq!(
        operation["operation"]["sync"]["prune"], true,
        "{operation:#}"
    );
    let pruned: Vec<_> = operation["syncResult"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["status"] == "Pruned")
        .map(|r| {
            format!(
                "{}/{}",
                r["kind"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(pruned, ["Predictor/spare"], "{operation:#}");
    assert_only_predictors_tracked(&app, &["american"]);
    wait_gone(&mut argocd, &predictors, "spare").await;
    wait_gone(&mut argocd, &deployments, "spare").await;
    wait_gone(&mut argocd, &services, "spare").await;
    assert_eq!(deployment.uid(), american_deployment.uid());
    let service = services.get("american").await.unwrap();
    assert_eq!(service.uid(), american_service.uid());
    for meta in [&deployment.metadata, &service.metadata] {
        assert!(!has_argocd_tracking(meta), "ArgoCD marked {meta:#?}");
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Predictor", "american")
        );
    }
    argocd.check_running();
}

/// The Application's resource list holds exactly these Predictors, each Synced.
fn assert_only_predictors_tracked(app: &DynamicObject, names: &[&str]) {
    let resources = app.data["status"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut tracked: Vec<(String, String, String)> = resources
        .iter()
        .map(|r| {
            (
                format!(
                    "{}/{}",
                    r["group"].as_str().unwrap_or(""),
                    r["kind"].as_str().unwrap_or("")
                ),
                r["name"].as_str().unwrap_or("").to_string(),
                r["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    tracked.sort();
    let want: Vec<_> = names
        .iter()
        .map(|n| {
            (
                "mlops.dev/Predictor".to_string(),
                n.to_string(),
                "Synced".to_string(),
            )
        })
        .collect();
    assert_eq!(tracked, want, "Application resources: {resources:#?}");
}
