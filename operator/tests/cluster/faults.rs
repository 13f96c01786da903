//! Faults and security: the operator while things go wrong — the apiserver restarts, the operator
//! is SIGKILLed mid-rollout, the leader dies, a human edits what the operator manages — and the
//! checks that it runs with the least privilege, locked-down pods, and never shows model URL
//! credentials.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use model_store::testing::FileServer;
use operator::crd::Predictor;
use operator::resources::{FIELD_MANAGER, Served};
use operator::status::is_ready;

use crate::support::manifests::{manifest, predictor};
use crate::support::rbac::{LEADER_ELECTION_RULES, OPERATOR_RULES, grants};
use crate::support::wait::poll;
use crate::support::{
    OPERATOR_NAMESPACE, OperatorProc, ServedModel, TestCluster, client_for, model_file,
};
use crate::{
    IMAGE, LEASE_SECONDS, RETRY_SECONDS, patch_predictor, shared, start_scoped, wait_object,
};

const IMAGE_3: &str = "registry.local/american-predictor:0.3";
const IMAGE_4: &str = "registry.local/american-predictor:0.4";
const MODEL_DATE: &str = "2026-11-24T00:00:00Z";

/// A test's own namespace on the shared cluster, and admin handles to what lives there.
struct Scene {
    ns: &'static str,
    client: Client,
    predictors: Api<Predictor>,
    deployments: Api<Deployment>,
}

impl Scene {
    async fn new(ns: &'static str) -> Scene {
        let s = shared();
        s.cluster.create_namespace(ns);
        let client = client_for(&s.cluster.kubeconfig).await;
        Scene {
            ns,
            predictors: Api::namespaced(client.clone(), ns),
            deployments: Api::namespaced(client.clone(), ns),
            client,
        }
    }

    /// Applies Predictor `name` (image 0.2, the shared model) with `replicas` pods.
    fn apply(&self, name: &str, replicas: i32) {
        shared().cluster.kubectl_stdin(
            &["apply", "-n", self.ns, "-f", "-"],
            &manifest(&[predictor(name, IMAGE, &shared().model_a, replicas)]),
        );
    }

    fn set_image(&self, name: &str, image: &str) {
        set_image(&shared().cluster, self.ns, name, image);
    }

    /// Waits until Predictor `name` is Ready and its ready pods serve `version`.
    async fn serving(&self, name: &str, version: &str, op: &OperatorProc) -> Predictor {
        wait_object(
            &self.predictors,
            name,
            Duration::from_secs(90),
            &format!("{version} ready"),
            op,
            |p| serves_version(p, version),
        )
        .await
    }
}

/// The one managedFields entry of `object` that the operator's field manager wrote.
fn only_operator_entry<K: ResourceExt>(object: &K) -> &ManagedFieldsEntry {
    let ours: Vec<_> = object
        .managed_fields()
        .iter()
        .filter(|m| m.manager.as_deref() == Some(FIELD_MANAGER))
        .collect();
    assert_eq!(ours.len(), 1, "{:#?}", object.managed_fields());
    ours[0]
}

fn serves_version(p: &Predictor, version: &str) -> bool {
    is_ready(p) && p.status.as_ref().unwrap().version.as_deref() == Some(version)
}

fn image_of(d: &Deployment) -> Option<String> {
    Served::of(d).image
}

fn set_image(cluster: &TestCluster, ns: &str, name: &str, image: &str) {
    let patch = format!(r#"{{"spec":{{"image":"{image}"}}}}"#);
    patch_predictor(cluster, ns, name, &patch);
}

/// Sum of the operator's `predictor_operator_writes_total` over all kinds.
fn writes(op: &OperatorProc) -> f64 {
    let (_, body) = op.get("/metrics").expect("operator /metrics");
    body.lines()
        .filter(|l| l.starts_with("predictor_operator_writes_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn apiserver_restart_while_reconciling_converges_without_duplicates() {
    // A control plane of its own: every other test would see the outage.
    let mut cluster = TestCluster::start(1);
    let kubeconfig = cluster.install_operator_prerequisites();
    let ns = "restart";
    cluster.create_namespace(ns);
    // A slow model store: every Predictor has its own model URL, which the operator downloads
    // (4 at a time) before it writes the children, so reconciling 60 takes seconds.
    let files = FileServer::start_slow(Duration::from_millis(250));
    let (bytes, sha) = model_file(MODEL_DATE);
    // NB: a leader that cannot renew its Lease for --renew-deadline exits (in a cluster the
    // kubelet restarts it). A long deadline keeps this process alive through the outage, so the
    // test shows the controller itself reconnecting.
    let mut op = cluster.start_operator(
        "operator-restart",
        &kubeconfig,
        &[
            "--skip-image-check",
            "--lease-duration",
            "2m",
            "--renew-deadline",
            "90s",
        ],
    );
    let pid = op.proc.pid();
    let client = client_for(&cluster.kubeconfig).await;
    let predictors: Api<Predictor> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);

    let count = 60;
    let names: BTreeSet<String> = (0..count).map(|i| format!("p-{i:02}")).collect();
    let all: Vec<Predictor> = names
        .iter()
        .map(|n| {
            let model = ServedModel {
                url: files.put(&format!("/models/{n}.model"), bytes.clone()),
                sha: sha.clone(),
            };
            predictor(n, IMAGE, &model, 1)
        })
        .collect();
    let first_deployment = watcher(deployments.clone(), watcher::Config::default())
        .applied_objects()
        .filter_map(|d| async move { d.ok() });
    futures::pin_mut!(first_deployment);
    cluster.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &manifest(&all));

    // Stop the apiserver as soon as the operator has begun writing children.
    tokio::time::timeout(Duration::from_secs(60), first_deployment.next())
        .await
        .unwrap_or_else(|_| panic!("no Deployment appeared:\n{}", op.proc.tail(20)))
        .expect("watch ended");
    let reconciled = |list: &[Predictor]| {
        list.iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .is_some_and(|s| s.observed_generation == p.metadata.generation)
            })
            .count()
    };
    let before = reconciled(&predictors.list(&ListParams::default()).await.unwrap().items);
    cluster.stop_apiserver();
    let stopped = Instant::now();
    assert!(
        before < count,
        "the operator had already reconciled all {count} Predictors; the restart must hit mid-way"
    );
    std::thread::sleep(Duration::from_secs(3));
    cluster.start_apiserver();
    eprintln!(
        "[restart] apiserver stopped with {before}/{count} Predictors reconciled; back after {:.1}s",
        stopped.elapsed().as_secs_f64()
    );

    // Everything converges, by the same process (it reconnected rather than restarted).
    let deadline = Instant::now() + Duration::from_secs(180);
    for name in &names {
        let left = deadline.saturating_duration_since(Instant::now());
        wait_object(
            &predictors,
            name,
            left,
            "Ready after the restart",
            &op,
            is_ready,
        )
        .await;
    }
    assert!(op.proc.running(), "operator exited:\n{}", op.proc.tail(30));
    assert_eq!(op.proc.pid(), pid);
    // Its watches work again: a new edit rolls out.
    set_image(&cluster, ns, "p-00", IMAGE_3);
    wait_object(
        &predictors,
        "p-00",
        Duration::from_secs(90),
        "0.3 ready",
        &op,
        |p| serves_version(p, "0.3"),
    )
    .await;

    // Exactly one Deployment and one Service per Predictor, owned by it; nothing orphaned, and no
    // spurious template change (one ReplicaSet each, two for the one that was edited).
    let uids: std::collections::BTreeMap<String, String> = predictors
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap()))
        .collect();
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=predictor-operator");
    let all_deployments = Api::<Deployment>::all(client.clone())
        .list(&managed)
        .await
        .unwrap()
        .items;
    let all_services = Api::<Service>::all(client.clone())
        .list(&managed)
        .await
        .unwrap()
        .items;
    for (kind, objects) in [
        (
            "Deployment",
            all_deployments
                .iter()
                .map(|d| (d.name_any(), d.namespace(), d.owner_references().to_vec()))
                .collect::<Vec<_>>(),
        ),
        (
            "Service",
            all_services
                .iter()
                .map(|d| (d.name_any(), d.namespace(), d.owner_references().to_vec()))
                .collect(),
        ),
    ] {
        let found: BTreeSet<String> = objects.iter().map(|(n, _, _)| n.clone()).collect();
        assert_eq!(objects.len(), count, "{kind}s: {found:?}");
        assert_eq!(found, names, "{kind}s");
        for (name, namespace, owners) in objects {
            assert_eq!(namespace.as_deref(), Some(ns));
            assert_eq!(owners.len(), 1, "{kind} {name}: {owners:?}");
            assert_eq!(owners[0].controller, Some(true));
            assert_eq!(Some(&owners[0].uid), uids.get(&name), "{kind} {name}");
        }
    }
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    for name in &names {
        let n = replica_sets
            .iter()
            .filter(|rs| rs.owner_references().iter().any(|o| &o.name == name))
            .count();
        let expected = if name == "p-00" { 2 } else { 1 };
        assert_eq!(n, expected, "ReplicaSets of {name}");
    }
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn operator_killed_mid_rollout_finishes_it_after_restart() {
    let s = shared();
    let scene = Scene::new("sigkill").await;
    let (ns, predictors, deployments) = (scene.ns, &scene.predictors, &scene.deployments);
    let mut first = start_scoped("operator-sigkill-1", ns, ns);
    scene.apply("p", 3);
    scene.serving("p", "0.2", &first).await;
    let uid = deployments.get("p").await.unwrap().uid();

    // Kill the operator the moment it has applied the new template: the rollout (3 pods, one
    // extra at a time) has just begun.
    let applied = watcher(
        deployments.clone(),
        watcher::Config::default().fields("metadata.name=p"),
    )
    .applied_objects()
    .filter_map(|d| async move { d.ok().filter(|d| image_of(d).as_deref() == Some(IMAGE_3)) });
    futures::pin_mut!(applied);
    scene.set_image("p", IMAGE_3);
    let at_kill = tokio::time::timeout(Duration::from_secs(60), applied.next())
        .await
        .expect("the operator applied the new image within 60 s")
        .expect("watch ended");
    first.proc.kill();
    assert!(
        !crate::support::wait::rolled_out(&at_kill),
        "rollout already complete at kill"
    );

    // Without an operator the Deployment controller finishes the rollout; the status lags behind.
    let done = wait_object(
        deployments,
        "p",
        Duration::from_secs(90),
        "rollout complete",
        &first,
        crate::support::wait::rolled_out,
    )
    .await;
    let stale = predictors.get("p").await.unwrap();
    assert_ne!(
        stale.status.as_ref().unwrap().version.as_deref(),
        Some("0.3"),
        "nobody could have written this status"
    );

    // A new process (another identity, as a rescheduled pod has) takes the abandoned Lease once it
    // expires, and corrects the status without touching the Deployment again.
    let second = start_scoped("operator-sigkill-2", ns, ns);
    let p = scene.serving("p", "0.3", &second).await;
    let status = p.status.unwrap();
    assert_eq!(status.observed_generation, p.metadata.generation);
    assert_eq!(status.ready.as_deref(), Some("3/3"));
    assert_eq!((status.replicas, status.ready_replicas), (Some(3), Some(3)));
    assert_eq!(status.model_sha256.as_deref(), Some(s.model_a.sha.as_str()));
    let condition = |t: &str| {
        let c = operator::status::find_condition(&status, t).unwrap();
        (c.status.as_str(), c.reason.as_str())
    };
    assert_eq!(condition("Progressing"), ("False", "RolloutComplete"));
    assert_eq!(condition("Degraded"), ("False", "AsExpected"));
    let after = deployments.get("p").await.unwrap();
    assert_eq!(after.uid(), uid, "the Deployment was re-created");
    assert_eq!(
        after.metadata.generation, done.metadata.generation,
        "the restarted operator changed a Deployment that was already right"
    );
    let replica_sets = Api::<ReplicaSet>::namespaced(scene.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(replica_sets.items.len(), 2, "one rollout, two ReplicaSets");
    let lease = Api::<Lease>::namespaced(scene.client.clone(), OPERATOR_NAMESPACE)
        .get(ns)
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("operator-sigkill-2")
    );
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn two_replicas_one_leads_and_a_killed_leader_hands_over_in_time() {
    let scene = Scene::new("ha").await;
    let ns = scene.ns;
    let leases: Api<Lease> = Api::namespaced(scene.client.clone(), OPERATOR_NAMESPACE);
    let leads = |op: &OperatorProc| op.metric("predictor_operator_leader") == Some(1.0);

    let a = start_scoped("operator-ha-a", ns, ns);
    let b = start_scoped("operator-ha-b", ns, ns);
    poll(
        Duration::from_secs(30),
        "one of two replicas to lead",
        || (leads(&a) || leads(&b)).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", a.proc.tail(20)));
    let (mut leader, follower) = if leads(&a) { (a, b) } else { (b, a) };
    scene.apply("p", 1);
    scene.serving("p", "0.2", &leader).await;
    // A rolling update, which the leader announces with an Event (a creation has none).
    scene.set_image("p", IMAGE_4);
    scene.serving("p", "0.4", &leader).await;

    // Exactly one leads: the Lease names it, and only it reconciles and writes.
    let holder = |lease: Lease| lease.spec.and_then(|s| s.holder_identity);
    assert_eq!(
        holder(leases.get(ns).await.unwrap()).as_deref(),
        Some(leader.proc.name.as_str())
    );
    assert!(!leads(&follower), "two leaders");
    assert!(writes(&leader) >= 3.0, "the leader wrote the children");
    assert_eq!(writes(&follower), 0.0, "the follower wrote");
    assert_eq!(
        follower.metric("predictor_operator_reconcile_duration_seconds_count"),
        Some(0.0),
        "the follower reconciled"
    );
    let reporters = |events: Vec<Event>| -> BTreeSet<String> {
        events
            .into_iter()
            .filter(|e| e.reporting_controller.as_deref() == Some("predictor-operator"))
            .filter_map(|e| e.reporting_instance)
            .collect()
    };
    let events: Api<Event> = Api::namespaced(scene.client.clone(), ns);
    assert_eq!(
        reporters(events.list(&ListParams::default()).await.unwrap().items),
        BTreeSet::from([leader.proc.name.clone()])
    );

    // SIGKILL: no release, so the follower must wait for the Lease to expire — and no longer than
    // that plus one election round (and 2 s of slack).
    let transitions = leases
        .get(ns)
        .await
        .unwrap()
        .spec
        .unwrap()
        .lease_transitions;
    leader.proc.kill();
    let killed = Instant::now();
    let bound = Duration::from_secs(LEASE_SECONDS + RETRY_SECONDS + 2);
    poll(bound, "the follower to take over", || {
        leads(&follower).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", follower.proc.tail(20)));
    let handover = killed.elapsed();
    eprintln!(
        "[ha] handover after SIGKILL took {:.2}s (lease {LEASE_SECONDS}s, retry {RETRY_SECONDS}s)",
        handover.as_secs_f64()
    );
    // Not before the Lease expired: it was renewed at most one retry period (plus the renewal's
    // own latency, slack for a loaded machine) before the kill, so expiry is >= LEASE/2 away.
    assert!(
        handover >= Duration::from_secs(LEASE_SECONDS / 2),
        "took over a live Lease after {handover:?}"
    );
    let lease = leases.get(ns).await.unwrap().spec.unwrap();
    assert_eq!(
        lease.holder_identity.as_deref(),
        Some(follower.proc.name.as_str())
    );
    assert_eq!(lease.lease_transitions, Some(transitions.unwrap_or(0) + 1));

    // The new leader does the work.
    scene.set_image("p", IMAGE_3);
    scene.serving("p", "0.3", &follower).await;
    assert!(writes(&follower) >= 2.0);
    assert!(
        reporters(events.list(&ListParams::default()).await.unwrap().items)
            .contains(&follower.proc.name)
    );
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn hand_edits_keep_their_own_fields_and_lose_the_operators() {
    let s = shared();
    let scene = Scene::new("conflict").await;
    let (ns, predictors, deployments) = (scene.ns, &scene.predictors, &scene.deployments);
    let op = start_scoped("operator-conflict", ns, ns);
    scene.apply("p", 2);
    scene.serving("p", "0.2", &op).await;
    let kubectl = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-n", ns]);
        s.cluster.kubectl_ok(&all);
    };

    // A human adds fields the operator does not set, each under the human's own field manager...
    kubectl(&["label", "deployment", "p", "team=humans"]);
    kubectl(&["annotate", "deployment", "p", "example.org/owner=alice"]);
    let human_patch = |spec: &str| {
        kubectl(&[
            "patch",
            "deployment",
            "p",
            "--field-manager=human",
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{spec}}}"#),
        ])
    };
    human_patch(r#"{"minReadySeconds":1}"#);
    // ...and changes two the operator owns.
    human_patch(r#"{"replicas":5}"#);
    kubectl(&["set", "image", "deployment/p", "predictor=evil.example/x:1"]);

    // The operator takes its fields back on the next reconcile; the human's fields stay.
    let d = wait_object(
        deployments,
        "p",
        Duration::from_secs(60),
        "image and replicas restored",
        &op,
        |d| image_of(d).as_deref() == Some(IMAGE) && d.spec.replicas == Some(2),
    )
    .await;
    assert_eq!(d.labels().get("team").map(String::as_str), Some("humans"));
    assert_eq!(
        d.annotations().get("example.org/owner").map(String::as_str),
        Some("alice")
    );
    assert_eq!(d.spec.min_ready_seconds, Some(1));
    let fields = |manager: &str| -> Vec<String> {
        d.managed_fields()
            .iter()
            .filter(|m| m.manager.as_deref() == Some(manager))
            .map(|m| serde_json::to_string(&m.fields_v1).unwrap())
            .collect()
    };
    let ours = only_operator_entry(&d);
    assert_eq!(ours.operation.as_deref(), Some("Apply"));
    assert_eq!(ours.subresource, None);
    let ours = fields(FIELD_MANAGER).remove(0);
    assert!(ours.contains(r#""f:replicas""#) && ours.contains(r#""f:image""#));
    assert!(!ours.contains("minReadySeconds") && !ours.contains(r#""f:team""#));
    for manager in ["human", "kubectl-set"] {
        for f in fields(manager) {
            assert!(
                !f.contains(r#""f:replicas""#) && !f.contains(r#""f:image""#),
                "{manager} still owns an operator field: {f}"
            );
        }
    }
    assert!(fields("human")[0].contains("minReadySeconds"));

    // A human applying server-side gets a conflict naming the operator instead of a silent takeover.
    let out = s.cluster.kubectl_with(
        &s.cluster.kubeconfig,
        &[
            "apply",
            "--server-side",
            "--field-manager=human",
            "-n",
            ns,
            "-f",
            "-",
        ],
        Some(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: p\nspec:\n  replicas: 7\n  \
             selector: {matchLabels: {app.kubernetes.io/name: predictor, app.kubernetes.io/instance: p}}\n  \
             template:\n    metadata: {labels: {app.kubernetes.io/name: predictor, app.kubernetes.io/instance: p}}\n    \
             spec: {containers: [{name: predictor, image: evil.example/x:2}]}\n",
        ),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains(r#"conflicts with "predictor-operator""#)
            && stderr.contains("- .spec.replicas"),
        "{stderr}"
    );

    // The Predictor's own status has one writer entry: the operator's, on the status subresource.
    let p = predictors.get("p").await.unwrap();
    let status_writer = only_operator_entry(&p);
    assert_eq!(status_writer.subresource.as_deref(), Some("status"));

    // Two edits in quick succession while the first still rolls out: the last one wins.
    scene.set_image("p", IMAGE_3);
    scene.set_image("p", IMAGE_4);
    let p = scene.serving("p", "0.4", &op).await;
    assert_eq!(p.status.unwrap().observed_generation, p.metadata.generation);
    let d = deployments.get("p").await.unwrap();
    assert_eq!(image_of(&d).as_deref(), Some(IMAGE_4));
    assert_eq!(d.labels().get("team").map(String::as_str), Some("humans"));
}

/// (apiGroup, resource, verb) triples a ServiceAccount may use in `namespace`, and its
/// non-resource URL rules, as the apiserver's SelfSubjectRulesReview reports them.
pub(crate) async fn rules(
    kubeconfig: &std::path::Path,
    namespace: &str,
) -> (BTreeSet<(String, String, String)>, BTreeSet<String>) {
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.into()),
        },
        ..SelfSubjectRulesReview::default()
    };
    let status = Api::<SelfSubjectRulesReview>::all(client_for(kubeconfig).await)
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectRulesReview")
        .status
        .expect("review status");
    assert!(!status.incomplete, "{:?}", status.evaluation_error);
    let mut resources = BTreeSet::new();
    for rule in status.resource_rules {
        assert!(
            rule.resource_names.unwrap_or_default().is_empty(),
            "name-restricted rules are not expected"
        );
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    resources.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    let urls = status
        .non_resource_rules
        .into_iter()
        .flat_map(|r| {
            let urls = r.non_resource_urls.unwrap_or_default();
            r.verbs
                .into_iter()
                .flat_map(move |v| urls.clone().into_iter().map(move |u| format!("{v} {u}")))
        })
        .collect();
    (resources, urls)
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn operator_rbac_is_exactly_what_it_uses() {
    let s = shared();
    // What any ServiceAccount may do (discovery, self reviews): a fresh one with no bindings.
    s.cluster.kubectl_ok(&[
        "create",
        "serviceaccount",
        "nobody",
        "-n",
        OPERATOR_NAMESPACE,
    ]);
    let nobody = s
        .cluster
        .service_account_kubeconfig(OPERATOR_NAMESPACE, "nobody");
    for (namespace, expected) in [
        ("default", grants(&[OPERATOR_RULES])),
        (
            OPERATOR_NAMESPACE,
            grants(&[OPERATOR_RULES, LEADER_ELECTION_RULES]),
        ),
    ] {
        let (operator, operator_urls) = rules(&s.operator_kubeconfig, namespace).await;
        let (baseline, baseline_urls) = rules(&nobody, namespace).await;
        assert!(
            baseline.is_subset(&operator),
            "{:?}",
            baseline.difference(&operator).collect::<Vec<_>>()
        );
        let own: BTreeSet<_> = operator.difference(&baseline).cloned().collect();
        assert_eq!(
            own,
            expected,
            "in {namespace}: extra {:?}, missing {:?}",
            own.difference(&expected).collect::<Vec<_>>(),
            expected.difference(&own).collect::<Vec<_>>()
        );
        assert_eq!(operator_urls, baseline_urls, "non-resource URLs");
    }
}

/// Asserts the restricted-profile settings on a pod template read back from the apiserver.
fn assert_locked_down(template: &PodTemplateSpec, what: &str) {
    let pod = template.spec.as_ref().expect("pod spec");
    let pod_sc = pod.security_context.clone().unwrap_or_default();
    assert_eq!(
        pod_sc.run_as_non_root,
        Some(true),
        "{what}: pod runAsNonRoot"
    );
    assert_ne!(pod_sc.run_as_user, Some(0), "{what}: pod runs as root");
    assert_eq!(
        pod_sc.seccomp_profile.map(|p| p.type_).as_deref(),
        Some("RuntimeDefault"),
        "{what}: pod seccomp"
    );
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let sc = c.security_context.clone().unwrap_or_default();
        let what = format!("{what}, container {}", c.name);
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{what}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{what}");
        assert_ne!(sc.run_as_non_root, Some(false), "{what}");
        assert_ne!(sc.run_as_user, Some(0), "{what}");
        assert_ne!(sc.privileged, Some(true), "{what}");
        let caps = sc.capabilities.unwrap_or_default();
        assert_eq!(caps.drop, Some(vec!["ALL".to_string()]), "{what}");
        assert!(caps.add.unwrap_or_default().is_empty(), "{what}");
        if let Some(profile) = sc.seccomp_profile {
            assert_eq!(profile.type_, "RuntimeDefault", "{what}");
        }
    }
}

/// A Pod manifest with `template`'s spec, for admission checks.
fn pod_from(template: &PodTemplateSpec, name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": template.metadata.as_ref().and_then(|m| m.labels.clone())},
        "spec": template.spec,
    })
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn pods_are_locked_down_and_the_restricted_profile_admits_them() {
    let s = shared();
    // Labelled pod-security.kubernetes.io/enforce=restricted.
    let scene = Scene::new("restricted").await;
    let op = start_scoped("operator-restricted", scene.ns, scene.ns);
    scene.apply("p", 2);
    // Ready means the ReplicaSet's pods were admitted in this restricted namespace.
    scene.serving("p", "0.2", &op).await;
    let built = scene.deployments.get("p").await.unwrap();

    // The operator's own Deployment, created for real in its restricted namespace (kwok runs its pods).
    let manager = crate::support::repo_root().join("config/manager/deployment.yaml");
    s.cluster
        .kubectl_ok(&["apply", "-f", &manager.display().to_string()]);
    let own: Api<Deployment> = Api::namespaced(scene.client.clone(), OPERATOR_NAMESPACE);
    let own = wait_object(
        &own,
        "predictor-operator",
        Duration::from_secs(90),
        "operator pods available",
        &op,
        |d| d.status.as_ref().and_then(|s| s.available_replicas) == Some(2),
    )
    .await;

    for (what, deployment) in [
        ("predictor Deployment", &built),
        ("operator Deployment", &own),
    ] {
        let template = &deployment.spec.template;
        assert_locked_down(template, what);
        // Server-side dry run of its pod in its namespace, which enforces `restricted`: admitted
        // with no warning...
        let namespace = deployment.namespace().unwrap();
        let labels = s.cluster.kubectl_ok(&[
            "get",
            "namespace",
            &namespace,
            "-o",
            "jsonpath={.metadata.labels}",
        ]);
        assert!(
            labels.contains(r#""pod-security.kubernetes.io/enforce":"restricted""#),
            "{namespace}: {labels}"
        );
        let dry_run = ["create", "--dry-run=server", "-n", &namespace, "-f", "-"];
        let pod = pod_from(template, "probe");
        let out = s
            .cluster
            .kubectl_with(&s.cluster.kubeconfig, &dry_run, Some(&pod.to_string()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what} pod refused: {stderr}");
        assert!(!stderr.contains("PodSecurity"), "{what}: {stderr}");
        // ...while the same pod allowed to escalate privileges is refused (the check has teeth).
        let mut weak = pod.clone();
        weak["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = true.into();
        let out = s
            .cluster
            .kubectl_with(&s.cluster.kubeconfig, &dry_run, Some(&weak.to_string()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("violates PodSecurity \"restricted"),
            "{what}: a weakened pod was not refused: {stderr}"
        );
    }
    s.cluster.kubectl_ok(&[
        "delete",
        "-f",
        &manager.display().to_string(),
        "--wait=false",
    ]);
}

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn model_url_credentials_never_show_in_logs_events_status_or_metrics() {
    let s = shared();
    let scene = Scene::new("credentials").await;
    let (ns, predictors) = (scene.ns, &scene.predictors);
    let op = start_scoped("operator-credentials", ns, ns);
    // A password in the URL and a presigned-URL signature in its query: both must stay hidden.
    const PRESIGNED: &str = "?X-Amz-Signature=s1gn4ture&X-Amz-Credential=AKIAEXAMPLE";
    let presigned = ServedModel::put(
        &s.files,
        &format!("/models/presigned.model{PRESIGNED}"),
        "2026-11-24T00:00:00Z",
    );
    let with_credentials = |url: &str| url.replacen("http://", "http://reader:secret@", 1);
    let good = ServedModel {
        url: with_credentials(&presigned.url),
        sha: presigned.sha.clone(),
    };
    // The right URL with the wrong digest, and a port nothing listens on.
    let mismatch = ServedModel {
        url: good.url.clone(),
        sha: "0123456789abcdef".repeat(4),
    };
    let closed = crate::support::free_port();
    let unreachable = ServedModel {
        url: format!("http://reader:secret@127.0.0.1:{closed}/models/a.model"),
        sha: s.model_a.sha.clone(),
    };
    let yaml = [
        ("good", &good),
        ("mismatch", &mismatch),
        ("unreachable", &unreachable),
    ]
    .map(|(name, m)| predictor(name, IMAGE, m, 1));
    let yaml = manifest(&yaml);
    s.cluster
        .kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &yaml);

    let verified = |reason: &'static str| {
        move |p: &Predictor| {
            p.status.as_ref().is_some_and(|st| {
                operator::status::find_condition(st, "ModelVerified")
                    .is_some_and(|c| c.reason == reason)
            })
        }
    };
    let wait = Duration::from_secs(90);
    let p = wait_object(predictors, "good", wait, "Ready", &op, is_ready).await;
    let message = &operator::status::find_condition(p.status.as_ref().unwrap(), "ModelVerified")
        .unwrap()
        .message;
    assert!(
        message.contains("http://***@127.0.0.1:")
            && message.contains("/models/presigned.model?***"),
        "{message}"
    );
    wait_object(
        predictors,
        "mismatch",
        wait,
        "DigestMismatch",
        &op,
        verified("DigestMismatch"),
    )
    .await;
    wait_object(
        predictors,
        "unreachable",
        wait,
        "FetchFailed",
        &op,
        verified("FetchFailed"),
    )
    .await;
    // The pods get the URL as it is (they need the credentials): the secret was really in play.
    let d = Api::<Deployment>::namespaced(scene.client.clone(), ns)
        .get("good")
        .await
        .unwrap();
    assert_eq!(Served::of(&d).model_url.as_deref(), Some(good.url.as_str()));

    let statuses = s.cluster.kubectl_ok(&[
        "get",
        "predictors",
        "-n",
        ns,
        "-o",
        "jsonpath={.items[*].status}",
    ]);
    let events = s
        .cluster
        .kubectl_ok(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"]);
    let log = std::fs::read_to_string(&op.proc.log).unwrap();
    let (_, metrics) = op.get("/metrics").unwrap();
    // Each place did talk about these models (so the absence below means something)...
    assert!(statuses.contains("127.0.0.1") && statuses.contains("DigestMismatch"));
    assert!(events.contains("ModelRejected"), "{events}");
    assert!(log.contains("model refused"), "{log}");
    assert!(metrics.contains("predictor_operator_model_checks_total"));
    // ...without the password or the signed query.
    for (place, text) in [
        ("status", &statuses),
        ("Events", &events),
        ("operator log", &log),
        ("metrics", &metrics),
    ] {
        for secret in ["secret", "s1gn4ture", "AKIAEXAMPLE", "X-Amz-Signature"] {
            assert!(
                !text.contains(secret),
                "{secret:?} from the model URL shows in the {place}:\n{text}"
            );
        }
    }
}
