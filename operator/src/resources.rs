//! Pure builders of the child objects of a Predictor: its Deployment and its Service, for a
//! Canary rollout the `<name>-canary` Deployment and Service of the candidate, with
//! `spec.autoscaling` its HorizontalPodAutoscaler, and with 2 pods or more its
//! PodDisruptionBudget.
//!
//! No client, no I/O: a Predictor goes in, plain k8s-openapi structs come out, so every field can
//! be checked by comparing whole objects in unit tests. The controller applies them with
//! server-side apply under [`FIELD_MANAGER`].

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, ExecAction,
    HTTPGetAction, Lifecycle, LifecycleHandler, LocalObjectReference, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service,
    ServicePort, ServiceSpec, Toleration, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::Selector;
use kube::{Resource, ResourceExt};

use crate::crd::{Predictor, RESOLVE_IMAGE_ANNOTATION};
use crate::error::{Error, Result};

/// The one field manager every server-side apply of this operator uses.
pub const FIELD_MANAGER: &str = "predictor-operator";
/// The field manager that holds an autoscaled Deployment's `spec.replicas` while the operator
/// lets go of it (see [`build_replicas_handover`]).
pub const HANDOVER_FIELD_MANAGER: &str = "predictor-operator-handover";
/// Name of the predictor container (and of its port).
pub const CONTAINER: &str = "predictor";
/// Env vars the predictor reads at start-up; the status is derived from them too.
pub const ENV_MODEL_URL: &str = "MODEL_URL";
pub const ENV_MODEL_SHA256: &str = "MODEL_SHA256";
pub const ENV_VERSION: &str = "VERSION";
pub const ENV_PORT: &str = "PORT";
pub const ENV_SHUTDOWN_DELAY: &str = "SHUTDOWN_DELAY";
/// [`ENV_SHUTDOWN_DELAY`] in milliseconds, as predictor images from before humantime durations read
/// it. NB: set too for one release, so a Predictor still on such an image keeps its delay (a newer
/// predictor takes `SHUTDOWN_DELAY`, silently when both agree); remove with the old spelling.
pub const ENV_SHUTDOWN_DELAY_MS: &str = "SHUTDOWN_DELAY_MS";
/// Where the server answers `POST /drain` and the preStop hook asks (the same variable for both).
pub const ENV_DRAIN_SOCKET: &str = "DRAIN_SOCKET";
/// Where a Canary Predictor's stable pods copy live requests to (its canary Service), and what share.
pub const ENV_SHADOW_URL: &str = "SHADOW_URL";
pub const ENV_SHADOW_PERCENT: &str = "SHADOW_PERCENT";
/// Label that tells a candidate's canary pods from the stable ones (same Service selector labels).
pub const TRACK_LABEL: &str = "mlops.dev/track";
/// [`TRACK_LABEL`]'s value on canary pods (stable pods do not carry the label).
pub const TRACK_CANARY: &str = "canary";
/// How long a predictor keeps answering after SIGTERM (the pre-stop pause is over), every answer
/// with `Connection: close`, before it closes its listener and its idle connections. A kept-alive
/// client sends its next request within this time, reads the close and reconnects to a serving pod,
/// instead of racing the server's close of an idle connection (1 failed request of 1,248 was seen in
/// a node-tier rollout with no delay).
pub const SHUTDOWN_DELAY: Duration = Duration::from_secs(2);
/// Seconds a terminating pod keeps serving (draining: every answer closes its connection) after it
/// was taken out of the endpoints: enough for kube-proxies to stop sending new connections to it.
pub const PRE_STOP_SLEEP_SECONDS: i64 = 5;
/// The pod-local directory of the drain socket: a memory-backed emptyDir that only the pod's own
/// containers see, so no network peer (a mesh's sidecar proxy connects from 127.0.0.6) can drain a pod.
pub const DRAIN_SOCKET_DIR: &str = "/run/predictor";
/// The drain socket's path in [`DRAIN_SOCKET_DIR`].
pub const DRAIN_SOCKET: &str = "/run/predictor/drain.sock";
/// The pod volume mounted at [`DRAIN_SOCKET_DIR`]; it holds one socket (no data), hence the small limit.
const DRAIN_SOCKET_VOLUME: &str = "drain-socket";
/// Upper bound for pre-stop + shutdown delay + draining in-flight requests after SIGTERM.
pub const TERMINATION_GRACE_SECONDS: i64 = 30;
/// Annotation on the Deployment: the `spec.image` its container image was made from. With the
/// container pinned to a digest, this is how the operator knows the pin is still the one for
/// the spec, so a tag re-pushed later changes nothing until the spec does.
pub const SPEC_IMAGE_ANNOTATION: &str = "mlops.dev/image";
/// The non-root user of the predictor image (distroless `nonroot`).
pub const RUN_AS_USER: i64 = 65532;
/// The node label the pods are spread over.
pub const HOSTNAME_TOPOLOGY: &str = "kubernetes.io/hostname";
/// The taints the node controller puts on a node it has stopped hearing from (`unreachable`) or
/// whose kubelet reports it not ready (`not-ready`), after `--node-monitor-grace-period`.
pub const NODE_LOSS_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];
/// How long a predictor pod stays bound to a lost node (one with a [`NODE_LOSS_TAINTS`] taint)
/// before it is evicted and replaced on another node. Without a toleration of its own, a pod gets
/// 300 s from the apiserver's DefaultTolerationSeconds admission: five minutes with one replica
/// fewer, when a replacement costs only a model fetch (a predictor is a stateless server that
/// fetches and verifies its model at start). Shorter would evict on a kubelet that is briefly
/// gone (a restart, a short partition) and pay that fetch for nothing; the taint itself only
/// comes after the grace period (40-50 s by default), so a lost node's pods are replaced about
/// 30 s after they left the Service.
pub const NODE_LOSS_TOLERATION_SECONDS: i64 = 30;
/// The label the Deployment controller gives each ReplicaSet's pods.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Fewest pods that get a PodDisruptionBudget (see [`build_disruption_budget`]).
pub const MIN_PODS_FOR_BUDGET: i32 = 2;
/// `maxUnavailable` of the PodDisruptionBudget when `spec.disruption` is not set.
pub const DEFAULT_MAX_UNAVAILABLE: i32 = 1;

/// Labels that select the pods of one Predictor (stable: a Deployment's selector is immutable).
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "predictor".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), name.to_string()),
    ])
}

/// All labels of the child objects: the selector labels plus who manages them and the version.
pub fn labels(predictor: &Predictor) -> BTreeMap<String, String> {
    let mut labels = selector_labels(&predictor.name_any());
    labels.insert("app.kubernetes.io/component".into(), "server".into());
    labels.insert("app.kubernetes.io/part-of".into(), "mlops".into());
    labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    let version = predictor.spec.effective_version();
    if is_label_value(&version) {
        labels.insert("app.kubernetes.io/version".into(), version);
    }
    labels
}

/// What every child object the operator makes carries (see [`labels`]), whatever its Predictor:
/// what the watches of its children select.
pub fn managed_children() -> Selector {
    Selector::from_iter([("app.kubernetes.io/managed-by", FIELD_MANAGER)])
}

/// What every pod the operator's Deployments make carries (their template's [`labels`]), stable
/// or canary, whatever its Predictor: what the pod watch selects.
pub fn managed_pods() -> Selector {
    Selector::from_iter([
        ("app.kubernetes.io/name", "predictor"),
        ("app.kubernetes.io/managed-by", FIELD_MANAGER),
    ])
}

/// Whether `s` is a valid label value (at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends).
fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && s.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
}

/// Metadata shared by both children: same name and namespace as the Predictor, owned by it.
fn child_meta(predictor: &Predictor) -> Result<ObjectMeta> {
    let owner = predictor
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))?;
    Ok(ObjectMeta {
        name: Some(predictor.name_any()),
        namespace: Some(
            predictor
                .namespace()
                .ok_or(Error::MissingField("metadata.namespace"))?,
        ),
        labels: Some(labels(predictor)),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    })
}

/// Requests and limits used when `spec.resources` is not set.
pub fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity("128Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity("512Mi".into()),
        )])),
        ..ResourceRequirements::default()
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(CONTAINER.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

/// `predictor drain --wait <PRE_STOP_SLEEP_SECONDS>s` (the socket comes from the container's
/// [`ENV_DRAIN_SOCKET`]: so the command is the same for predictor images from before the drain socket,
/// which ask over loopback TCP and ignore the variable).
fn pre_stop_command() -> Vec<String> {
    ["/predictor", "drain", "--wait"]
        .map(String::from)
        .into_iter()
        .chain([format!("{PRE_STOP_SLEEP_SECONDS}s")])
        .collect()
}

/// The predictor container: `predictor serve`, configured through env, probed over HTTP, locked down.
/// The stable pods of a Canary Predictor also copy live requests to the canary Service; they carry
/// that env whether a canary runs or not, so starting one never restarts them.
fn build_container(predictor: &Predictor, image: &str, track: Track) -> Container {
    let spec = &predictor.spec;
    let mut vars = vec![
        env(ENV_MODEL_URL, &spec.model.url),
        env(ENV_MODEL_SHA256, &spec.model.sha256),
        env(ENV_VERSION, spec.effective_version()),
        env(ENV_PORT, spec.port.to_string()),
        env(
            ENV_SHUTDOWN_DELAY,
            humantime::format_duration(SHUTDOWN_DELAY).to_string(),
        ),
        env(
            ENV_SHUTDOWN_DELAY_MS,
            SHUTDOWN_DELAY.as_millis().to_string(),
        ),
        env(ENV_DRAIN_SOCKET, DRAIN_SOCKET),
    ];
    vars.extend(crate::store_env::pod_env(&spec.model));
    if let (Track::Stable, Some(rollout)) = (track, spec.canary()) {
        vars.push(env(ENV_SHADOW_URL, canary_service_url(predictor)));
        vars.push(env(ENV_SHADOW_PERCENT, rollout.shadow_percent.to_string()));
    }
    Container {
        name: CONTAINER.into(),
        image: Some(image.into()),
        args: Some(vec!["serve".into()]),
        env: Some(vars),
        ports: Some(vec![ContainerPort {
            name: Some(CONTAINER.into()),
            container_port: spec.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        // Ready only once the model is downloaded and its digest verified.
        // Every second: a new pod joins the Service as soon as its model is verified (rollouts take
        // seconds, not probe periods), and an overloaded or broken pod leaves it within ~3 s.
        readiness_probe: Some(http_probe("/readyz", 1, 3)),
        liveness_probe: Some(Probe {
            // Model download may take a while; liveness must not kill a pod that is still loading.
            initial_delay_seconds: Some(10),
            ..http_probe("/healthz", 10, 3)
        }),
        lifecycle: Some(Lifecycle {
            // The predictor itself (the image has no shell): it tells the server to drain at once
            // (over the drain socket), so clients on kept-alive connections are told to reconnect (to
            // a pod that stays) with their next answer, then it waits while endpoints and kube-proxy
            // catch up.
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(pre_stop_command()),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: DRAIN_SOCKET_VOLUME.into(),
                mount_path: DRAIN_SOCKET_DIR.into(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    }
}

/// `spec.imagePullSecrets` as the pod spec wants them; none at all (not an empty list) when the
/// Predictor names none, so the field is not owned by this operator's apply.
fn image_pull_secrets(predictor: &Predictor) -> Option<Vec<LocalObjectReference>> {
    let secrets = &predictor.spec.image_pull_secrets;
    (!secrets.is_empty()).then(|| {
        secrets
            .iter()
            .map(|secret| LocalObjectReference {
                name: secret.name.clone(),
            })
            .collect()
    })
}

/// The Deployment whose pods run `image` (`spec.image`, or the digest it resolved to: see
/// [`ImageCheck::pod_image`]). Its annotations record what the image was made from:
/// [`SPEC_IMAGE_ANNOTATION`] and, if the Predictor has it, [`RESOLVE_IMAGE_ANNOTATION`].
///
/// [`ImageCheck::pod_image`]: crate::status::ImageCheck::pod_image
pub fn build_deployment(predictor: &Predictor, image: &str) -> Result<Deployment> {
    build_track(predictor, image, Track::Stable)
}

/// Which of a Predictor's Deployments a pod template is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Track {
    Stable,
    Canary,
}

/// The Deployment of `track`; the canary one is adjusted by [`build_canary_deployment`].
fn build_track(predictor: &Predictor, image: &str, track: Track) -> Result<Deployment> {
    let mut meta = child_meta(predictor)?;
    let mut annotations = BTreeMap::from([(
        SPEC_IMAGE_ANNOTATION.to_string(),
        predictor.spec.image.clone(),
    )]);
    if let Some(token) = predictor.annotations().get(RESOLVE_IMAGE_ANNOTATION) {
        annotations.insert(RESOLVE_IMAGE_ANNOTATION.into(), token.clone());
    }
    meta.annotations = Some(annotations);
    Ok(Deployment {
        metadata: meta,
        spec: DeploymentSpec {
            // Autoscaled: the field is left to the HorizontalPodAutoscaler (not in this apply, so
            // not owned by the operator, which then never reverts a scale).
            replicas: predictor
                .spec
                .autoscaling
                .is_none()
                .then_some(predictor.spec.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&predictor.name_any())),
                ..LabelSelector::default()
            },
            // Never fewer ready pods than desired during a rollout, and every new pod started at
            // once: a rollout takes one pod start-up whatever the replica count (one surge pod at a
            // time took one start-up per replica), old pods leave as new ones turn ready. The price
            // is room for twice the pods while it runs; without it the surge pods wait Pending and
            // the old pods keep serving.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::String("100%".into())),
                }),
            }),
            revision_history_limit: Some(3),
            progress_deadline_seconds: Some(
                predictor
                    .spec
                    .progress_deadline_seconds
                    .unwrap_or(crate::crd::DEFAULT_PROGRESS_DEADLINE_SECONDS),
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(predictor)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![build_container(predictor, image, track)],
                    image_pull_secrets: image_pull_secrets(predictor),
                    topology_spread_constraints: Some(spread_constraints(&predictor.name_any())),
                    tolerations: Some(node_loss_tolerations()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS_USER),
                        run_as_group: Some(RUN_AS_USER),
                        fs_group: Some(RUN_AS_USER),
                        seccomp_profile: Some(runtime_default_seccomp()),
                        ..PodSecurityContext::default()
                    }),
                    volumes: Some(vec![
                        Volume {
                            name: "tmp".into(),
                            empty_dir: Some(EmptyDirVolumeSource {
                                size_limit: Some(Quantity("1Gi".into())),
                                ..EmptyDirVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume {
                            name: DRAIN_SOCKET_VOLUME.into(),
                            empty_dir: Some(EmptyDirVolumeSource {
                                medium: Some("Memory".into()),
                                size_limit: Some(Quantity("1Mi".into())),
                                ..EmptyDirVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    })
}

/// The pods of Predictor `name` spread over nodes, one pod of skew at most, as a preference
/// (`ScheduleAnyway`): a single-node cluster still schedules every pod. Only the pods of the same
/// ReplicaSet count (`matchLabelKeys` [`POD_TEMPLATE_HASH`]), so the old pods of a rollout do not
/// push the new ones aside, and the stable and canary pods each spread on their own.
///
/// Nodes only, not zones too: when scoring, kube-scheduler ignores every node that lacks the key
/// of any of a pod's constraints (podtopologyspread `PreScore`, `IgnoredNodes`), so a second
/// constraint on `topology.kubernetes.io/zone` turns the node spreading off on every cluster whose
/// nodes carry no zone label: on the node tier's 3 nodes, without zones, 3 replicas landed 2 + 1 with
/// it, 1 + 1 + 1 without. (Without any constraint of its own a pod gets the scheduler's defaults,
/// zones included; with this one, a platform that wants zones too sets its own in the scheduler's
/// profile or admission.)
fn spread_constraints(name: &str) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        topology_key: HOSTNAME_TOPOLOGY.into(),
        max_skew: 1,
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector_labels(name)),
            ..LabelSelector::default()
        }),
        match_label_keys: Some(vec![POD_TEMPLATE_HASH.into()]),
        ..TopologySpreadConstraint::default()
    }]
}

/// The pods' tolerations of a lost node: [`NODE_LOSS_TOLERATION_SECONDS`] for each of the
/// [`NODE_LOSS_TAINTS`] (with them, the apiserver adds no 300 s defaults). `NoExecute` only: a
/// node with such a taint gets no new pods either way (its `NoSchedule` twin is not tolerated).
fn node_loss_tolerations() -> Vec<Toleration> {
    NODE_LOSS_TAINTS
        .map(|key| Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(NODE_LOSS_TOLERATION_SECONDS),
            ..Toleration::default()
        })
        .into()
}

/// Name of the canary Deployment and Service of Predictor `name`.
pub fn canary_name(name: &str) -> String {
    format!("{name}-canary")
}

/// Pods the stable Deployment is meant to have: `spec.replicas`; when autoscaled, what the
/// autoscaler set on the Deployment (`live`), or `minReplicas` before it exists.
pub fn stable_replicas(predictor: &Predictor, live: Option<&Deployment>) -> i32 {
    match &predictor.spec.autoscaling {
        None => predictor.spec.replicas,
        Some(autoscaling) => live
            .and_then(|d| d.spec.replicas)
            .unwrap_or(autoscaling.min_replicas),
    }
}

/// Pods of the canary Deployment: `ceil(canaryPercent% × stable)`, at least 1 unless the
/// Predictor is scaled to zero (`stable` from [`stable_replicas`]).
pub fn canary_replicas(predictor: &Predictor, stable: i32) -> i32 {
    let replicas = u64::try_from(stable).unwrap_or(0);
    let percent = predictor.spec.canary().map_or(0, |r| {
        u64::try_from(r.canary_percent.clamp(1, 100)).unwrap_or(1)
    });
    let pods = (replicas * percent).div_ceil(100);
    i32::try_from(pods).unwrap_or(i32::MAX)
}

/// The labels that select only the canary pods of `name`.
fn canary_selector(name: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(name);
    labels.insert(TRACK_LABEL.into(), TRACK_CANARY.into());
    labels
}

/// The candidate's Deployment `<name>-canary`: the pod template of `predictor` (the candidate
/// spec) running `image`, [`canary_replicas`] pods, its pods labelled [`TRACK_LABEL`]`=canary` and
/// still carrying the Service's selector labels, so the Service spreads live traffic over stable
/// and canary pods by their number (no mesh). Canary pods copy nothing. Its size follows the
/// `stable` replica count (never the autoscaler: it scales only the stable Deployment).
pub fn build_canary_deployment(
    predictor: &Predictor,
    image: &str,
    stable: i32,
) -> Result<Deployment> {
    let mut deployment = build_track(predictor, image, Track::Canary)?;
    let name = predictor.name_any();
    deployment.metadata.name = Some(canary_name(&name));
    if let Some(labels) = deployment.metadata.labels.as_mut() {
        labels.insert(TRACK_LABEL.into(), TRACK_CANARY.into());
    }
    let spec = &mut deployment.spec;
    spec.replicas = Some(canary_replicas(predictor, stable));
    spec.selector.match_labels = Some(canary_selector(&name));
    if let Some(labels) = spec
        .template
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
    {
        labels.insert(TRACK_LABEL.into(), TRACK_CANARY.into());
    }
    Ok(deployment)
}

/// The Service `<name>-canary` in front of the canary pods only: where the stable pods send
/// their shadow copies.
pub fn build_canary_service(predictor: &Predictor) -> Result<Service> {
    let mut service = build_service(predictor)?;
    let name = predictor.name_any();
    service.metadata.name = Some(canary_name(&name));
    if let Some(labels) = service.metadata.labels.as_mut() {
        labels.insert(TRACK_LABEL.into(), TRACK_CANARY.into());
    }
    if let Some(spec) = service.spec.as_mut() {
        spec.selector = Some(canary_selector(&name));
    }
    Ok(service)
}

/// The HorizontalPodAutoscaler of an autoscaled Predictor (`None` without `spec.autoscaling`):
/// named like it, owned by it, scaling its stable Deployment on the pods' average CPU use in
/// percent of their request, with the Predictor's `behavior`.
pub fn build_autoscaler(predictor: &Predictor) -> Result<Option<HorizontalPodAutoscaler>> {
    let Some(autoscaling) = &predictor.spec.autoscaling else {
        return Ok(None);
    };
    Ok(Some(HorizontalPodAutoscaler {
        metadata: child_meta(predictor)?,
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: predictor.name_any(),
            },
            min_replicas: Some(autoscaling.min_replicas),
            max_replicas: autoscaling.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(autoscaling.target_cpu_utilization_percentage),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: autoscaling.behavior.clone(),
        },
        status: None,
    }))
}

/// Whether `predictor` gets a PodDisruptionBudget: it has at least [`MIN_PODS_FOR_BUDGET`]
/// pods (`spec.replicas`, or `spec.autoscaling.minReplicas`, the fewest the autoscaler keeps).
pub fn wants_disruption_budget(predictor: &Predictor) -> bool {
    let fewest = match &predictor.spec.autoscaling {
        Some(autoscaling) => autoscaling.min_replicas,
        None => predictor.spec.replicas,
    };
    fewest >= MIN_PODS_FOR_BUDGET
}

/// The PodDisruptionBudget of a Predictor with 2 pods or more (`None` with fewer: see
/// [`wants_disruption_budget`]): named like it, owned by it, over every pod of the Predictor,
/// which is the Service's selector, so the canary's pods too. One budget, not one per
/// Deployment: the eviction API refuses to evict a pod that two budgets select. Its budget is
/// `spec.disruption`'s, else `maxUnavailable: 1`.
pub fn build_disruption_budget(predictor: &Predictor) -> Result<Option<PodDisruptionBudget>> {
    if !wants_disruption_budget(predictor) {
        return Ok(None);
    }
    let budget = predictor.spec.disruption.as_ref();
    let min_available = budget.and_then(|d| d.min_available.clone());
    let max_unavailable = match &min_available {
        Some(_) => None,
        None => Some(
            budget
                .and_then(|d| d.max_unavailable.clone())
                .unwrap_or(IntOrString::Int(DEFAULT_MAX_UNAVAILABLE)),
        ),
    };
    Ok(Some(PodDisruptionBudget {
        metadata: child_meta(predictor)?,
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&predictor.name_any())),
                ..LabelSelector::default()
            }),
            max_unavailable,
            min_available,
            // A pod that is not ready serves nothing, so evicting it costs no capacity; with the
            // default (IfHealthyBudget), pods that never become ready (a model they cannot load)
            // would hold up the drain of their node.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
        }),
        status: None,
    }))
}

/// The apply that hands an autoscaled Deployment's `spec.replicas` over: applied under
/// [`HANDOVER_FIELD_MANAGER`] (not forced) with the count the Deployment has (`replicas`), it
/// makes that manager a co-owner, so the operator's next apply, which no longer names the field,
/// leaves it as it is instead of removing it (the apiserver would then default it to 1 and kill
/// pods). Applied right after the operator creates the Deployment, it starts it at
/// `minReplicas` instead of 1. The autoscaler's first scale takes the field over.
pub fn build_replicas_handover(predictor: &Predictor, replicas: i32) -> serde_json::Value {
    // NB: JSON, not a `Deployment`: its `selector` and `template` are not optional, and an apply
    // must name only the fields its manager is to own.
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": predictor.name_any(), "namespace": predictor.namespace()},
        "spec": {"replicas": replicas},
    })
}

/// The base URL of the canary Service, as the stable pods' `SHADOW_URL`.
pub fn canary_service_url(predictor: &Predictor) -> String {
    format!(
        "http://{}.{}.svc:{}",
        canary_name(&predictor.name_any()),
        predictor.namespace().unwrap_or_default(),
        predictor.spec.port
    )
}

/// The ClusterIP Service in front of the ready predictor pods.
pub fn build_service(predictor: &Predictor) -> Result<Service> {
    Ok(Service {
        metadata: child_meta(predictor)?,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(&predictor.name_any())),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: predictor.spec.port,
                target_port: Some(IntOrString::String(CONTAINER.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// The URL clients in the cluster use to ask for predictions.
pub fn service_url(predictor: &Predictor) -> String {
    format!(
        "http://{}.{}.svc:{}/api/american",
        predictor.name_any(),
        predictor.namespace().unwrap_or_default(),
        predictor.spec.port
    )
}

/// What a Deployment's pod template runs: image, model and version, read back from its env.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// The `spec.image` the pods were made from (the annotation; else the container's image).
    pub image: Option<String>,
    /// The container's image: `spec.image`, or the digest it resolved to.
    pub pod_image: Option<String>,
    /// The Predictor's [`RESOLVE_IMAGE_ANNOTATION`] when the image was resolved.
    pub resolve_token: Option<String>,
    pub model_url: Option<String>,
    pub model_sha256: Option<String>,
    pub version: Option<String>,
}

/// The literal value of `container`'s environment variable `name`, if it sets one.
pub(crate) fn env_value(container: &Container, name: &str) -> Option<String> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

impl Served {
    /// Reads what `deployment`'s pod template runs (the predictor container only).
    pub fn of(deployment: &Deployment) -> Self {
        let container = deployment
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|p| p.containers.iter().find(|c| c.name == CONTAINER));
        let Some(container) = container else {
            return Self::default();
        };
        let var = |name: &str| env_value(container, name);
        let annotation = |name: &str| deployment.annotations().get(name).cloned();
        Self {
            image: annotation(SPEC_IMAGE_ANNOTATION).or_else(|| container.image.clone()),
            pod_image: container.image.clone(),
            resolve_token: annotation(RESOLVE_IMAGE_ANNOTATION),
            model_url: var(ENV_MODEL_URL),
            model_sha256: var(ENV_MODEL_SHA256),
            version: var(ENV_VERSION),
        }
    }

    /// The manifest digest the pods pull by, when their image is pinned to one.
    pub fn image_digest(&self) -> Option<&str> {
        self.pod_image.as_deref()?.split_once('@').map(|(_, d)| d)
    }

    /// The digest-pinned image these pods run, if it was resolved for exactly `predictor`'s
    /// `spec.image` and re-resolve annotation: then it is reused, not asked of the registry again.
    pub fn pinned_for(&self, predictor: &Predictor) -> Option<&str> {
        let token = predictor.annotations().get(RESOLVE_IMAGE_ANNOTATION);
        (self.image.as_deref() == Some(predictor.spec.image.as_str())
            && self.resolve_token.as_ref() == token
            && self.image_digest().is_some())
        .then_some(self.pod_image.as_deref())
        .flatten()
    }

    /// Whether these pods run exactly `model`.
    pub fn runs_model(&self, model: &crate::crd::ModelSpec) -> bool {
        self.model_url.as_deref() == Some(model.url.as_str())
            && self.model_sha256.as_deref() == Some(model.sha256.as_str())
    }
}

#[cfg(test)]
mod tests;
