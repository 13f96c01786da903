use super::*;
use crate::fixtures::{IMAGE_DIGEST, SHA_A, autoscaled, canary, predictor};
use serde_json::json;

/// The metadata of every child of the fixture Predictor but the Deployment (which adds
/// annotations).
fn child_metadata() -> serde_json::Value {
    json!({
        "name": "american",
        "namespace": "team-a",
        "labels": labels(),
        "ownerReferences": owner_references()
    })
}

/// The labels of every child of the fixture Predictor.
fn labels() -> serde_json::Value {
    json!({
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/instance": "american",
        "app.kubernetes.io/managed-by": "predictor-operator",
        "app.kubernetes.io/name": "predictor",
        "app.kubernetes.io/part-of": "mlops",
        "app.kubernetes.io/version": "0.2"
    })
}

/// The owner references of every child of the fixture Predictor: it, as controller.
fn owner_references() -> serde_json::Value {
    json!([{
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Predictor",
        "name": "american",
        "uid": "00000000-0000-0000-0000-00000000a11c",
        "controller": true
    }])
}

/// The fixture Predictor's image pinned to the digest its tag resolved to.
fn pinned() -> String {
    format!("registry.local/american-predictor:0.2@{IMAGE_DIGEST}")
}

/// The whole Deployment, field by field: any change to the builder shows up here.
#[test]
fn deployment_is_built_completely() {
    let deployment = build_deployment(&predictor("american", "team-a"), &pinned()).unwrap();
    assert_eq!(
        serde_json::to_value(&deployment).unwrap(),
        expected_deployment()
    );
}

/// Pull secrets go into the pod spec as references, in order; nothing else changes.
#[test]
fn image_pull_secrets_reach_the_pod_spec() {
    let mut p = predictor("american", "team-a");
    p.spec.image_pull_secrets = vec!["registry-team-a".into(), "mirror.pull".into()];
    let deployment = build_deployment(&p, &pinned()).unwrap();
    let mut expected = expected_deployment();
    expected["spec"]["template"]["spec"]["imagePullSecrets"] =
        json!([{"name": "registry-team-a"}, {"name": "mirror.pull"}]);
    assert_eq!(serde_json::to_value(&deployment).unwrap(), expected);
}

/// What [`build_deployment`] makes of the fixture Predictor, as JSON.
fn expected_deployment() -> serde_json::Value {
    let labels = labels();
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "american",
            "namespace": "team-a",
            "labels": labels,
            "annotations": {"mlops.dev/image": "registry.local/american-predictor:0.2"},
            "ownerReferences": owner_references()
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {
                "app.kubernetes.io/instance": "american",
                "app.kubernetes.io/name": "predictor"
            }},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "100%"}},
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": 120,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"}
                    },
                    "topologySpreadConstraints": spread_constraints(),
                    "tolerations": [
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 30},
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 30}
                    ],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "drain-socket", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
                    ],
                    "containers": [{
                        "name": "predictor",
                        "image": pinned(),
                        "args": ["serve"],
                        "env": [
                            {"name": "MODEL_URL", "value": "https://models.example.org/american/2026-11-24.model"},
                            {"name": "MODEL_SHA256", "value": SHA_A},
                            {"name": "VERSION", "value": "0.2"},
                            {"name": "PORT", "value": "5008"},
                            {"name": "SHUTDOWN_DELAY", "value": "2s"},
                            {"name": "SHUTDOWN_DELAY_MS", "value": "2000"},
                            {"name": "DRAIN_SOCKET", "value": "/run/predictor/drain.sock"}
                        ],
                        "ports": [{"name": "predictor", "containerPort": 5008, "protocol": "TCP"}],
                        "readinessProbe": {
                            "httpGet": {"path": "/readyz", "port": "predictor"},
                            "periodSeconds": 1, "failureThreshold": 3, "timeoutSeconds": 2
                        },
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": "predictor"},
                            "initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 3,
                            "timeoutSeconds": 2
                        },
                        "lifecycle": {"preStop": {"exec": {
                            "command": ["/predictor", "drain", "--wait", "5s"]
                        }}},
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"memory": "512Mi"}
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "runAsUser": 65532,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}
                        },
                        "volumeMounts": [
                            {"name": "tmp", "mountPath": "/tmp"},
                            {"name": "drain-socket", "mountPath": "/run/predictor"}
                        ]
                    }]
                }
            }
        }
    })
}

/// The fixture Predictor's pods spread over nodes, as a preference, each ReplicaSet's pods counted
/// on their own.
fn spread_constraints() -> serde_json::Value {
    json!([{
        "topologyKey": "kubernetes.io/hostname",
        "maxSkew": 1,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {
            "app.kubernetes.io/instance": "american",
            "app.kubernetes.io/name": "predictor"
        }},
        "matchLabelKeys": ["pod-template-hash"]
    }])
}

/// A Canary Predictor's stable Deployment: the same, plus where and how much to copy.
#[test]
fn canary_stable_pods_carry_the_shadow_target() {
    let p = canary(predictor("american", "team-a"));
    let deployment = build_deployment(&p, &pinned()).unwrap();
    let mut expected = expected_deployment();
    let env = expected["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap();
    env.push(json!({"name": "SHADOW_URL", "value": "http://american-canary.team-a.svc:5008"}));
    env.push(json!({"name": "SHADOW_PERCENT", "value": "20"}));
    assert_eq!(serde_json::to_value(&deployment).unwrap(), expected);
}

/// The canary Deployment, whole: the candidate's template, its share of the pods, selected by
/// the track label, no shadow env. Its pods spread with the stable pods' constraints (their
/// own ReplicaSet's `pod-template-hash` keeps the two apart).
#[test]
fn canary_deployment_is_built_completely() {
    let p = canary(predictor("american", "team-a"));
    let deployment = build_canary_deployment(&p, &pinned(), p.spec.replicas).unwrap();
    let mut expected = expected_deployment();
    expected["metadata"]["name"] = json!("american-canary");
    expected["metadata"]["labels"]["mlops.dev/track"] = json!("canary");
    expected["spec"]["replicas"] = json!(1);
    expected["spec"]["selector"]["matchLabels"]["mlops.dev/track"] = json!("canary");
    expected["spec"]["template"]["metadata"]["labels"]["mlops.dev/track"] = json!("canary");
    assert_eq!(serde_json::to_value(&deployment).unwrap(), expected);
}

#[test]
fn canary_share_is_rounded_up_and_never_zero_while_serving() {
    let mut p = canary(predictor("american", "team-a"));
    let share = |p: &mut Predictor, replicas: i32, percent: i32| {
        p.spec.rollout.as_mut().unwrap().canary_percent = percent;
        canary_replicas(p, replicas)
    };
    assert_eq!(share(&mut p, 2, 50), 1);
    assert_eq!(share(&mut p, 2, 10), 1);
    assert_eq!(share(&mut p, 10, 10), 1);
    assert_eq!(share(&mut p, 10, 11), 2);
    assert_eq!(share(&mut p, 3, 100), 3);
    assert_eq!(share(&mut p, 0, 50), 0);
    // Not a Canary Predictor: no canary pods.
    p.spec.rollout = None;
    assert_eq!(canary_replicas(&p, 4), 0);
}

/// The stable count the canary share is taken of: `spec.replicas`, or when autoscaled what
/// the autoscaler set on the live Deployment (`minReplicas` before there is one).
#[test]
fn stable_replicas_follow_the_autoscaler_when_there_is_one() {
    let p = predictor("american", "team-a");
    let mut live = build_deployment(&p, &pinned()).unwrap();
    live.spec.replicas = Some(5);
    assert_eq!(stable_replicas(&p, Some(&live)), 2, "spec.replicas");
    let p = autoscaled(p);
    assert_eq!(stable_replicas(&p, Some(&live)), 5, "the autoscaler's");
    assert_eq!(stable_replicas(&p, None), 2, "minReplicas");
}

/// Autoscaled: the Deployment names no replica count (the autoscaler owns it); nothing else
/// changes.
#[test]
fn an_autoscaled_deployment_leaves_replicas_to_the_autoscaler() {
    let p = autoscaled(predictor("american", "team-a"));
    let deployment = build_deployment(&p, &pinned()).unwrap();
    let mut expected = expected_deployment();
    expected["spec"].as_object_mut().unwrap().remove("replicas");
    assert_eq!(serde_json::to_value(&deployment).unwrap(), expected);
}

#[test]
fn autoscaler_is_built_completely() {
    assert!(
        build_autoscaler(&predictor("american", "team-a"))
            .unwrap()
            .is_none()
    );
    let p = autoscaled(predictor("american", "team-a"));
    let hpa = build_autoscaler(&p).unwrap().unwrap();
    let expected = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "american"},
            "minReplicas": 2,
            "maxReplicas": 6,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}
            }],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}
        }
    });
    assert_eq!(serde_json::to_value(&hpa).unwrap(), expected);
}

/// The handover apply names the replica count and nothing else a manager could come to own.
#[test]
fn the_replicas_handover_names_only_the_replica_count() {
    let p = autoscaled(predictor("american", "team-a"));
    assert_eq!(
        build_replicas_handover(&p, 3),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "american", "namespace": "team-a"},
            "spec": {"replicas": 3}
        })
    );
}

/// The PodDisruptionBudget of a Predictor with 2 pods, whole: every pod of the Predictor (the
/// Service's selector: canary pods too), one at a time, unready pods always evictable.
#[test]
fn disruption_budget_is_built_completely() {
    let budget = build_disruption_budget(&predictor("american", "team-a"))
        .unwrap()
        .expect("2 replicas get a budget");
    assert_eq!(
        serde_json::to_value(&budget).unwrap(),
        expected_disruption_budget(json!({"maxUnavailable": 1}))
    );
}

/// What [`build_disruption_budget`] makes of the fixture Predictor with `budget` (the field
/// `maxUnavailable` or `minAvailable`), as JSON.
fn expected_disruption_budget(budget: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({
        "selector": {"matchLabels": {
            "app.kubernetes.io/instance": "american",
            "app.kubernetes.io/name": "predictor"
        }},
        "unhealthyPodEvictionPolicy": "AlwaysAllow"
    });
    for (field, value) in budget.as_object().unwrap() {
        spec[field] = value.clone();
    }
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(),
        "spec": spec
    })
}

/// `spec.disruption` replaces the default: `minAvailable` alone (a budget with both is refused
/// by the apiserver), or a percentage.
#[test]
fn spec_disruption_sets_the_budget() {
    use crate::crd::DisruptionSpec;
    let with = |max_unavailable, min_available| {
        let mut p = predictor("american", "team-a");
        p.spec.replicas = 4;
        p.spec.disruption = Some(DisruptionSpec {
            max_unavailable,
            min_available,
        });
        let budget = build_disruption_budget(&p).unwrap().unwrap();
        serde_json::to_value(&budget).unwrap()
    };
    assert_eq!(
        with(None, Some(IntOrString::Int(3))),
        expected_disruption_budget(json!({"minAvailable": 3}))
    );
    assert_eq!(
        with(None, Some(IntOrString::String("50%".into()))),
        expected_disruption_budget(json!({"minAvailable": "50%"}))
    );
    assert_eq!(
        with(Some(IntOrString::String("25%".into())), None),
        expected_disruption_budget(json!({"maxUnavailable": "25%"}))
    );
    assert_eq!(
        with(Some(IntOrString::Int(2)), None),
        expected_disruption_budget(json!({"maxUnavailable": 2}))
    );
}

/// A budget only for 2 pods or more: `spec.replicas`, or the autoscaler's `minReplicas` (the
/// fewest it keeps, whatever `replicas` says).
#[test]
fn a_disruption_budget_needs_two_pods() {
    use crate::crd::DisruptionSpec;
    let budget = |p: &Predictor| build_disruption_budget(p).unwrap();
    let mut p = predictor("american", "team-a");
    p.spec.replicas = 1;
    assert_eq!(budget(&p), None, "one pod");
    p.spec.disruption = Some(DisruptionSpec {
        max_unavailable: None,
        min_available: Some(IntOrString::Int(1)),
    });
    assert_eq!(budget(&p), None, "one pod, even with spec.disruption");
    p.spec.replicas = 0;
    assert_eq!(budget(&p), None, "scaled to zero");

    // Autoscaled between 2 and 6 (replicas 1 is ignored): a budget, as for 2 replicas.
    let mut p = autoscaled(predictor("american", "team-a"));
    p.spec.replicas = 1;
    assert_eq!(
        serde_json::to_value(budget(&p).expect("minReplicas 2")).unwrap(),
        expected_disruption_budget(json!({"maxUnavailable": 1}))
    );
    // Autoscaled from 1: the autoscaler may leave a single pod, so no budget.
    p.spec.replicas = 2;
    p.spec.autoscaling.as_mut().unwrap().min_replicas = 1;
    assert_eq!(budget(&p), None, "minReplicas 1");
}

#[test]
fn canary_service_selects_only_canary_pods() {
    let p = canary(predictor("american", "team-a"));
    let service = build_canary_service(&p).unwrap();
    let mut metadata = child_metadata();
    metadata["name"] = json!("american-canary");
    metadata["labels"]["mlops.dev/track"] = json!("canary");
    let expected = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "ClusterIP",
            "selector": {
                "app.kubernetes.io/instance": "american",
                "app.kubernetes.io/name": "predictor",
                "mlops.dev/track": "canary"
            },
            "ports": [{"name": "http", "port": 5008, "targetPort": "predictor", "protocol": "TCP"}]
        }
    });
    assert_eq!(serde_json::to_value(&service).unwrap(), expected);
}

/// What the watches select is what the builders label: every child, and every pod of the stable
/// and canary Deployments, of any Predictor (a version that is no label value included).
#[test]
fn the_watches_select_every_child_and_pod_the_builders_make() {
    use kube::core::SelectorExt;
    let mut odd = autoscaled(canary(predictor("other", "team-b")));
    odd.spec.version = Some("not a label value".into());
    for p in [autoscaled(canary(predictor("american", "team-a"))), odd] {
        let stable = build_deployment(&p, &pinned()).unwrap();
        let canary = build_canary_deployment(&p, &pinned(), 2).unwrap();
        let children = [
            stable.metadata.labels.clone(),
            canary.metadata.labels.clone(),
            build_service(&p).unwrap().metadata.labels,
            build_canary_service(&p).unwrap().metadata.labels,
            build_autoscaler(&p).unwrap().unwrap().metadata.labels,
            build_disruption_budget(&p)
                .unwrap()
                .unwrap()
                .metadata
                .labels,
        ];
        for labels in children {
            assert!(managed_children().matches(&labels.unwrap()));
        }
        for deployment in [stable, canary] {
            let template = deployment.spec.template.metadata.unwrap();
            assert!(managed_pods().matches(&template.labels.unwrap()));
        }
    }
    assert_eq!(
        managed_pods().to_string(),
        "app.kubernetes.io/managed-by=predictor-operator,app.kubernetes.io/name=predictor"
    );
}

#[test]
fn service_is_built_completely() {
    let service = build_service(&predictor("american", "team-a")).unwrap();
    let expected = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/instance": "american", "app.kubernetes.io/name": "predictor"},
            "ports": [{"name": "http", "port": 5008, "targetPort": "predictor", "protocol": "TCP"}]
        }
    });
    assert_eq!(serde_json::to_value(&service).unwrap(), expected);
}

#[test]
fn explicit_resources_and_version_replace_the_defaults() {
    let mut p = predictor("american", "team-a");
    p.spec.version = Some("2026.11 build+7".into());
    p.spec.resources = Some(ResourceRequirements {
        limits: Some(BTreeMap::from([("cpu".into(), Quantity("1".into()))])),
        ..ResourceRequirements::default()
    });
    let d = build_deployment(&p, &p.spec.image).unwrap();
    let c = &d.spec.template.spec.unwrap().containers[0];
    assert_eq!(c.resources, p.spec.resources);
    let version = c.env.as_ref().unwrap().iter().find(|e| e.name == "VERSION");
    assert_eq!(version.unwrap().value.as_deref(), Some("2026.11 build+7"));
    // Not a valid label value, so no version label rather than a rejected Deployment.
    assert!(
        !d.metadata
            .labels
            .unwrap()
            .contains_key("app.kubernetes.io/version")
    );
}

#[test]
fn builders_refuse_objects_not_read_from_the_apiserver() {
    let mut p = predictor("american", "team-a");
    p.metadata.uid = None;
    assert!(matches!(
        build_deployment(&p, &p.spec.image),
        Err(Error::MissingField("metadata.uid"))
    ));
}

#[test]
fn served_reads_back_what_was_built() {
    let mut p = predictor("american", "team-a");
    let d = build_deployment(&p, &p.spec.image).unwrap();
    assert_eq!(
        Served::of(&d),
        Served {
            image: Some(p.spec.image.clone()),
            pod_image: Some(p.spec.image.clone()),
            resolve_token: None,
            model_url: Some(p.spec.model.url.clone()),
            model_sha256: Some(SHA_A.into()),
            version: Some("0.2".into()),
        }
    );
    assert!(Served::of(&d).runs_model(&p.spec.model));
    assert_eq!(Served::of(&d).image_digest(), None);
    assert_eq!(Served::of(&d).pinned_for(&p), None, "not pinned");

    // Pinned: the spec image from the annotation, the digest from the container.
    let d = build_deployment(&p, &pinned()).unwrap();
    let served = Served::of(&d);
    assert_eq!(served.image.as_deref(), Some(p.spec.image.as_str()));
    assert_eq!(served.pod_image, Some(pinned()));
    assert_eq!(served.image_digest(), Some(IMAGE_DIGEST));
    assert_eq!(served.pinned_for(&p), Some(pinned().as_str()));
    // The pin is reused only for the same spec.image and re-resolve annotation.
    let mut bumped = p.clone();
    bumped.spec.image = "registry.local/american-predictor:0.3".into();
    assert_eq!(served.pinned_for(&bumped), None);
    p.annotations_mut()
        .insert(RESOLVE_IMAGE_ANNOTATION.into(), "2026-11-26T10:00".into());
    assert_eq!(served.pinned_for(&p), None);
    let d = build_deployment(&p, &pinned()).unwrap();
    assert_eq!(Served::of(&d).pinned_for(&p), Some(pinned().as_str()));
    assert_eq!(
        service_url(&p),
        "http://american.team-a.svc:5008/api/american"
    );
}
