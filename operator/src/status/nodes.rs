//! Where a Predictor's ready pods run ([`Placement`]): counted from the operator's pod cache, which
//! keeps of each pod only what the count reads ([`keep_placement`]), and believed only while it
//! agrees with the Deployment's own count of ready pods ([`nodes`]).

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::verdict::TRUE;
use crate::crd::PredictorStatus;
use crate::resources::{TRACK_LABEL, selector_labels};

/// A pod's condition that its readiness probes passed (the Predictor's Ready is another).
const POD_READY: &str = "Ready";

/// The ready pods of a Predictor's stable Deployment, as the pod cache has them: how many, and on
/// how many distinct nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub ready: i32,
    pub nodes: i32,
}

impl Placement {
    /// Of `pods`, those of Predictor `name`'s stable Deployment in `namespace` that are ready, not
    /// terminating (the ReplicaSet no longer counts them either) and bound to a node. A pod is the
    /// stable Deployment's by the labels its selector matches, without [`TRACK_LABEL`] (the
    /// canary's pods carry it). NB: any pod may carry labels: a team that gives pods of its own
    /// these changes only what its own Predictor says (and [`nodes`] then no longer believes the
    /// count); a pod of another namespace never counts.
    pub fn of<'a>(pods: impl IntoIterator<Item = &'a Pod>, namespace: &str, name: &str) -> Self {
        let nodes: Vec<&str> = pods
            .into_iter()
            .filter(|pod| is_ready_stable_pod(pod, namespace, name))
            .filter_map(|pod| pod.spec.as_ref()?.node_name.as_deref())
            .collect();
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            ready: count(nodes.len()),
            nodes: count(nodes.iter().collect::<BTreeSet<_>>().len()),
        }
    }

    /// Whether the cache counts the ready pods `deployment`'s status counts. The two are fed by
    /// separate watches: at start the pods may not be listed yet, and a pod's change reaches the
    /// Deployment's status only after the ReplicaSet controller has seen it.
    pub fn agrees_with(&self, deployment: Option<&Deployment>) -> bool {
        self.ready == ready_replicas(deployment)
    }
}

/// `status.nodes`: the cache's count when it agrees with `deployment`; none (0) without ready pods;
/// else what `previous` said if it was said of as many ready pods (the cache has not caught up or
/// not listed the pods yet (`placement` is `None`), e.g. right after the operator started); else
/// unknown.
pub fn nodes(
    placement: Option<&Placement>,
    deployment: Option<&Deployment>,
    previous: &PredictorStatus,
) -> Option<i32> {
    let ready = ready_replicas(deployment);
    if let Some(placement) = placement.filter(|p| p.agrees_with(deployment)) {
        Some(placement.nodes)
    } else if ready == 0 {
        Some(0)
    } else if previous.ready_replicas == Some(ready) {
        previous.nodes
    } else {
        None
    }
}

/// The Deployment's ready pods, old and new (0 without a Deployment or its status).
fn ready_replicas(deployment: Option<&Deployment>) -> i32 {
    deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// Whether `pod`'s Ready condition is True.
fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == POD_READY && c.status == TRUE))
}

/// Cuts `pod` down to what [`Placement::of`] and drift read (name, namespace, labels, deletion
/// time, node, Ready condition and IP), for the pod cache: about 4 KB a pod (most of it the empty `Pod` struct)
/// instead of several times that, and at 1,000 Predictors the cache holds thousands.
pub fn keep_placement(pod: &mut Pod) {
    let metadata = std::mem::take(&mut pod.metadata);
    let status = pod.status.take();
    // The address drift reads the pod's `/metrics` at (see `crate::scrape::drift_targets`).
    let pod_ip = status.as_ref().and_then(|s| s.pod_ip.clone());
    let ready = status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_ == POD_READY);
    *pod = Pod {
        metadata: ObjectMeta {
            name: metadata.name,
            namespace: metadata.namespace,
            labels: metadata.labels,
            deletion_timestamp: metadata.deletion_timestamp,
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: pod.spec.take().and_then(|s| s.node_name),
            ..PodSpec::default()
        }),
        status: (ready.is_some() || pod_ip.is_some()).then(|| PodStatus {
            conditions: ready.map(|c| {
                vec![PodCondition {
                    type_: c.type_,
                    status: c.status,
                    ..PodCondition::default()
                }]
            }),
            pod_ip,
            ..PodStatus::default()
        }),
    };
}

/// Whether `pod` is one of Predictor `name`'s stable pods in `namespace`, by the labels the
/// operator sets on them (the canary's carry [`TRACK_LABEL`] too), ready and not terminating.
pub fn is_ready_stable_pod(pod: &Pod, namespace: &str, name: &str) -> bool {
    let labels = pod.labels();
    pod.metadata.namespace.as_deref() == Some(namespace)
        && selector_labels(name)
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        && !labels.contains_key(TRACK_LABEL)
        && pod.metadata.deletion_timestamp.is_none()
        && is_ready(pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{
        canary, canary_deployment_of, deployment_of, predictor, ready_pod, time,
    };

    fn placement(pods: &[Pod]) -> Placement {
        Placement::of(pods, "team-a", "american")
    }

    #[test]
    fn ready_stable_pods_of_the_predictor_are_counted_once_per_node() {
        let p = canary(predictor("american", "team-a"));
        let d = deployment_of(&p).rolled_out(3);
        let pods = [
            ready_pod(&d, "american-1", "node-a"),
            ready_pod(&d, "american-2", "node-a"),
            ready_pod(&d, "american-3", "node-b"),
        ];
        assert_eq!(placement(&pods), Placement { ready: 3, nodes: 2 });

        let not_ready = {
            let mut pod = ready_pod(&d, "american-4", "node-c");
            let conditions = pod.status.as_mut().unwrap().conditions.as_mut().unwrap();
            conditions
                .iter_mut()
                .for_each(|c| c.status = "False".into());
            pod
        };
        let terminating = Pod {
            metadata: ObjectMeta {
                deletion_timestamp: Some(time(5)),
                ..ready_pod(&d, "american-5", "node-d").metadata
            },
            ..ready_pod(&d, "american-5", "node-d")
        };
        let unbound = Pod {
            spec: Some(PodSpec::default()),
            ..ready_pod(&d, "american-6", "node-e")
        };
        let canary_pod = ready_pod(&canary_deployment_of(&p).rolled_out(1), "c-1", "node-f");
        let other_predictor = ready_pod(
            &deployment_of(&predictor("british", "team-a")).rolled_out(1),
            "british-1",
            "node-g",
        );
        // The same name in another namespace: another team's Predictor.
        let other_namespace = ready_pod(
            &deployment_of(&predictor("american", "team-b")).rolled_out(1),
            "american-1",
            "node-h",
        );
        let unlabelled = Pod {
            metadata: ObjectMeta {
                labels: None,
                ..ready_pod(&d, "american-7", "node-i").metadata
            },
            ..ready_pod(&d, "american-7", "node-i")
        };
        let all: Vec<Pod> = pods
            .into_iter()
            .chain([
                not_ready,
                terminating,
                unbound,
                canary_pod,
                other_predictor,
                other_namespace,
                unlabelled,
            ])
            .collect();
        assert_eq!(placement(&all), Placement { ready: 3, nodes: 2 });
        assert_eq!(placement(&[]), Placement::default());
    }

    #[test]
    fn the_cache_keeps_only_what_the_count_reads() {
        let d = deployment_of(&predictor("american", "team-a")).rolled_out(1);
        let mut pod = ready_pod(&d, "american-1", "node-a");
        pod.metadata.deletion_timestamp = Some(time(5));
        let mut kept = pod.clone();
        keep_placement(&mut kept);
        let expected = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "american-1",
                "namespace": "team-a",
                "labels": d.spec.template.metadata.as_ref().unwrap().labels,
                "deletionTimestamp": "2026-11-25T10:00:05Z"
            },
            "spec": {"containers": [], "nodeName": "node-a"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "podIP": "10.0.0.7"}
        });
        assert_eq!(serde_json::to_value(&kept).unwrap(), expected);

        // Whatever a pod is, the cut-down copy counts as the whole one.
        let mut ready = ready_pod(&d, "american-2", "node-b");
        let mut not_ready = ready_pod(&d, "american-3", "node-c");
        not_ready.status.as_mut().unwrap().conditions = None;
        let whole = [pod, ready.clone(), not_ready.clone()];
        keep_placement(&mut ready);
        keep_placement(&mut not_ready);
        assert_eq!(
            serde_json::to_value(&not_ready.status).unwrap(),
            serde_json::json!({"podIP": "10.0.0.7"})
        );
        assert_eq!(
            placement(&[kept, ready, not_ready]),
            placement(&whole),
            "{whole:?}"
        );
    }

    #[test]
    fn the_nodes_are_believed_while_the_cache_agrees_with_the_deployment() {
        let d = deployment_of(&predictor("american", "team-a")).rolled_out(2);
        let spread = Placement { ready: 2, nodes: 2 };
        let nothing = PredictorStatus::default();
        assert_eq!(nodes(Some(&spread), Some(&d), &nothing), Some(2));
        assert_eq!(
            nodes(Some(&Placement { ready: 2, nodes: 1 }), Some(&d), &nothing),
            Some(1)
        );
        // No ready pod: on no node, whatever the cache says.
        let starting = deployment_of(&predictor("american", "team-a")).without_status();
        assert_eq!(
            nodes(Some(&Placement::default()), Some(&starting), &nothing),
            Some(0)
        );
        assert_eq!(nodes(Some(&spread), Some(&starting), &nothing), Some(0));
        assert_eq!(nodes(Some(&spread), None, &nothing), Some(0));

        // The cache behind (the operator just started, or a pod's event not in yet): what the
        // status said of as many ready pods stands; of another count, nothing is said.
        let before = PredictorStatus {
            ready_replicas: Some(2),
            nodes: Some(2),
            ..PredictorStatus::default()
        };
        let behind = Placement { ready: 1, nodes: 1 };
        assert!(!behind.agrees_with(Some(&d)));
        assert_eq!(nodes(Some(&behind), Some(&d), &before), Some(2));
        let fewer = PredictorStatus {
            ready_replicas: Some(1),
            nodes: Some(1),
            ..PredictorStatus::default()
        };
        assert_eq!(nodes(Some(&behind), Some(&d), &fewer), None);
        assert_eq!(nodes(Some(&behind), Some(&d), &nothing), None);
        // Not listed yet: the same.
        assert_eq!(nodes(None, Some(&d), &before), Some(2));
        assert_eq!(nodes(None, Some(&d), &nothing), None);
        assert_eq!(nodes(None, Some(&starting), &nothing), Some(0));
    }
}
