//! Namespaced mode (config/namespaced): the operator with RoleBindings in two team namespaces and no
//! cluster-wide grant acts in those two, and nowhere else.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use model_store::testing::FileServer;
use operator::crd::Predictor;
use operator::status::is_ready;

use crate::faults::rules;
use crate::support::manifests::{manifest, predictor};
use crate::support::rbac::{LEADER_ELECTION_RULES, OPERATOR_RULES, grants};
use crate::support::{OPERATOR_NAMESPACE, OPERATOR_SA, ServedModel, TestCluster, client_for};
use crate::{IMAGE, assert_forbidden, wait_object};

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn namespaced_operator_acts_only_in_its_namespaces() {
    // A control plane of its own: the shared one binds the ClusterRole cluster-wide for every test.
    let cluster = TestCluster::start(1);
    for ns in ["team-a", "team-b", "team-c"] {
        cluster.create_namespace(ns);
    }
    // Exactly what ships: config/default with config/components/namespaced.
    let overlay = crate::support::repo_root().join("config/namespaced");
    let applied = cluster.kubectl_ok(&["apply", "-k", &overlay.display().to_string()]);
    assert!(
        !applied.contains("clusterrolebinding"),
        "namespaced mode binds nothing cluster-wide:\n{applied}"
    );
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/predictors.mlops.dev",
    ]);
    let admin = client_for(&cluster.kubeconfig).await;
    // The namespaces the shipped Deployment tells the operator to watch.
    let shipped = Api::<Deployment>::namespaced(admin.clone(), OPERATOR_NAMESPACE)
        .get("predictor-operator")
        .await
        .unwrap();
    let watch = shipped.spec.template.spec.unwrap().containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "WATCH_NAMESPACES")
        .and_then(|e| e.value.clone())
        .expect("the namespaced Deployment sets WATCH_NAMESPACES");
    assert_eq!(watch, "team-a,team-b");

    // What the apiserver grants the ServiceAccount, beyond what any ServiceAccount may do: the
    // operator's rules in team-a and team-b, its Lease in predictor-system, nothing in team-c.
    let kubeconfig = cluster.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA);
    cluster.kubectl_ok(&[
        "create",
        "serviceaccount",
        "nobody",
        "-n",
        OPERATOR_NAMESPACE,
    ]);
    let nobody = cluster.service_account_kubeconfig(OPERATOR_NAMESPACE, "nobody");
    for (ns, expected) in [
        ("team-a", grants(&[OPERATOR_RULES])),
        ("team-b", grants(&[OPERATOR_RULES])),
        ("team-c", grants(&[])),
        ("default", grants(&[])),
        (OPERATOR_NAMESPACE, grants(&[LEADER_ELECTION_RULES])),
    ] {
        let (operator, urls) = rules(&kubeconfig, ns).await;
        let (baseline, baseline_urls) = rules(&nobody, ns).await;
        let own: std::collections::BTreeSet<_> = operator.difference(&baseline).cloned().collect();
        assert_eq!(own, expected, "granted in {ns}");
        assert_eq!(urls, baseline_urls, "non-resource URLs in {ns}");
    }
    let everywhere = Api::<Predictor>::all(client_for(&kubeconfig).await);
    let listed = everywhere.list(&ListParams::default()).await;
    assert_forbidden(listed, "listing Predictors cluster-wide");

    // The same Predictor in all three namespaces; team-c's first, so the operator has had all the
    // time it took for the others to act on it, had it seen it.
    let files = FileServer::start();
    let model = ServedModel::put(&files, "/models/a.model", "2026-11-24T00:00:00Z");
    let p = manifest(&[predictor("p", IMAGE, &model, 1)]);
    cluster.kubectl_stdin(&["apply", "-n", "team-c", "-f", "-"], &p);
    let op = cluster.start_operator(
        "operator-namespaced",
        &kubeconfig,
        &["--skip-image-check", "--namespaces", &watch],
    );
    for ns in ["team-a", "team-b"] {
        cluster.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &p);
    }
    for ns in ["team-a", "team-b"] {
        let predictors = Api::<Predictor>::namespaced(admin.clone(), ns);
        wait_object(
            &predictors,
            "p",
            Duration::from_secs(120),
            &format!("Ready in {ns}"),
            &op,
            is_ready,
        )
        .await;
        let deployment = Api::<Deployment>::namespaced(admin.clone(), ns)
            .get("p")
            .await
            .unwrap();
        assert_eq!(deployment.owner_references().len(), 1, "{ns}");
    }
    // One more reconcile period for anything late, then team-c is still untouched.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ignored = Api::<Predictor>::namespaced(admin.clone(), "team-c")
        .get("p")
        .await
        .unwrap();
    // Only the CRD's default (generation 1 not observed yet): nothing the operator wrote.
    assert_eq!(
        ignored.status,
        Some(operator::crd::PredictorStatus {
            observed_generation: Some(0),
            ..Default::default()
        }),
        "team-c's Predictor has a status"
    );
    let children = Api::<Deployment>::namespaced(admin.clone(), "team-c")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        children.items.is_empty(),
        "Deployments in team-c: {:?}",
        children
            .items
            .iter()
            .map(|d| d.name_any())
            .collect::<Vec<_>>()
    );
    let events = crate::lifecycle::events_for(&admin, "team-c", "p").await;
    assert!(
        events.is_empty(),
        "Events about team-c's Predictor: {events:?}"
    );
    let log = std::fs::read_to_string(&op.proc.log).unwrap();
    assert!(
        log.contains("namespaces team-a,team-b"),
        "{}",
        op.proc.tail(20)
    );
    assert!(
        !log.contains("team-c"),
        "the operator mentions team-c:\n{log}"
    );
    assert!(!log.contains("forbidden"), "a refused request:\n{log}");
}
