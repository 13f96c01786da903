//! The `Predictor` custom resource: its Rust types, which are also the source of the CRD schema.
//!
//! Everything the apiserver can check is expressed here (required fields, patterns, ranges, CEL
//! rules), so invalid objects are refused at `kubectl apply` time instead of failing later in the
//! operator. `crdgen` turns these types into `crds/predictor.yaml`.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::image::ImageReference;
use crate::image::reference::DEFAULT_TAG;

/// API group of the Predictor resource.
pub const GROUP: &str = "mlops.dev";
/// Default Service and container port (the predictor's own default).
pub const DEFAULT_PORT: i32 = 5008;
/// Default `spec.progressDeadlineSeconds`: a predictor pod is ready within seconds unless its model
/// is very large, so two minutes without progress means the new pods are stuck.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 120;

/// Annotation on a Predictor that makes the operator ask the registry again for the digest of
/// `spec.image`'s tag: set it to a new value (e.g. the time) after re-pushing a tag on purpose.
/// Without it, a tag is resolved once, when `spec.image` changes, and the pods keep that digest.
pub const RESOLVE_IMAGE_ANNOTATION: &str = "mlops.dev/resolve-image";

/// Desired state of a Predictor: which image serves which model, on which port, with how many pods.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mlops.dev",
    version = "v1alpha1",
    kind = "Predictor",
    plural = "predictors",
    shortname = "pred",
    namespaced,
    status = "PredictorStatus",
    doc = "A trained model served over HTTP: the operator runs it as a Deployment plus a Service and reports which version and model the ready pods serve.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.ready",
        description = "Ready pods / desired pods"
    ),
    printcolumn(
        name = "Nodes",
        type_ = "integer",
        json_path = ".status.nodes",
        priority = 1,
        description = "Distinct nodes the ready pods run on (kubectl get -o wide)"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.version",
        description = "Version the ready pods serve"
    ),
    printcolumn(
        name = "Model",
        type_ = "string",
        json_path = ".status.modelShort",
        description = "First 12 hex digits of the sha256 of the model the ready pods serve"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".status.url",
        description = "In-cluster URL of the prediction endpoint"
    ),
    printcolumn(
        name = "Image",
        type_ = "string",
        json_path = ".status.imageDigest",
        priority = 1,
        description = "Digest of the image the ready pods run (kubectl get -o wide)"
    ),
    printcolumn(
        name = "Accuracy",
        type_ = "number",
        json_path = ".status.quality.accuracy",
        priority = 1,
        description = "Accuracy of spec.model on spec.validation's data set, as the quality gate measured it (kubectl get -o wide)"
    ),
    printcolumn(
        name = "Rollout",
        type_ = "string",
        json_path = ".status.rollout.phase",
        description = "Phase of the canary rollout (Analyzing, Promoting, Promoted, RolledBack); empty for rolling updates"
    ),
    printcolumn(
        name = "Drift",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Drift\")].status",
        priority = 1,
        description = "Whether the live answers drifted from the model's training set (True, False, Unknown; empty without spec.monitoring.drift) (kubectl get -o wide)"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63 characters) because it names the Service"),
    validation = Rule::new("!has(self.spec.rollout) || !has(self.spec.rollout.strategy) || self.spec.rollout.strategy != 'Canary' || size(self.metadata.name) <= 56")
        .message("a Canary Predictor's metadata.name must be at most 56 characters: its canary Service is named <name>-canary"),
    validation = Rule::new("!has(self.spec.autoscaling) || !has(self.spec.resources) || (has(self.spec.resources.requests) && 'cpu' in self.spec.resources.requests) || (has(self.spec.resources.limits) && 'cpu' in self.spec.resources.limits)")
        .message("spec.autoscaling needs a CPU request: spec.resources must set requests.cpu (or limits.cpu, which it then defaults to), or be left unset for the default")
)]
#[serde(rename_all = "camelCase")]
pub struct PredictorSpec {
    /// Container image of the predictor, e.g. `registry.local/american-predictor:0.2`. The tag is the
    /// code version: change it to roll out new code.
    #[schemars(length(min = 1))]
    pub image: String,

    /// The model file the pods load and verify before they report ready. Change `url` and `sha256`
    /// together to roll out a new model.
    pub model: ModelSpec,

    /// Port of the Service and of the predictor's HTTP listener.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Number of predictor pods. Ignored when `autoscaling` is set: the autoscaler decides.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,

    /// Version string the predictor reports in its responses. Defaults to the image tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub version: Option<String>,

    /// Seconds a rollout may take before the Predictor reports `Degraded` (the Deployment's
    /// `progressDeadlineSeconds`). New pods that cannot load and verify their model never become
    /// ready; the old pods keep serving and the Predictor says so after this long. Default 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 3600))]
    pub progress_deadline_seconds: Option<i32>,

    /// CPU and memory requests and limits of the predictor container. Defaults to requests of
    /// 100m CPU / 128Mi memory and a 512Mi memory limit. With `autoscaling`, the CPU request is
    /// what `targetCPUUtilizationPercentage` is a percentage of, so it must be set (the default
    /// is). A CPU limit also sets how many threads a pod serves with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Secrets of type `kubernetes.io/dockerconfigjson` in the Predictor's namespace that hold the
    /// credentials for pulling `image` from a private registry, written as in a pod spec
    /// (`- name: registry-team-a`). The pods get them as their `imagePullSecrets`. At most 8.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub image_pull_secrets: Vec<SecretName>,

    /// The offline quality gate: before a new model rolls out, the operator measures its accuracy
    /// on this labelled data set (and that of the model now serving) and refuses it when it falls
    /// below the thresholds. A refused model never reaches the Deployment: the old pods keep
    /// serving and the Predictor is Degraded with reason `ModelBelowQualityGate`. Unset: no gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationSpec>,

    /// Replicas that follow the load: the operator creates a HorizontalPodAutoscaler
    /// (`autoscaling/v2`, named like the Predictor) that sets the Deployment's replica count
    /// between `minReplicas` and `maxReplicas` from the pods' CPU use; `replicas` is then
    /// ignored. Unset: `replicas` pods, and no autoscaler (one left from before is deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// How a new image or model reaches the pods: `RollingUpdate` (the default: every pod is
    /// replaced as soon as the pre-flight checks pass) or `Canary` (the online gate: a share of
    /// the pods runs the candidate, the stable pods copy live requests to it, and the candidate is
    /// promoted or rolled back on what was measured). Unset: `RollingUpdate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,

    /// How many pods a voluntary disruption (a node drain, an eviction) may take at once. A
    /// Predictor with at least 2 pods (`replicas`, or `autoscaling.minReplicas`) gets a
    /// PodDisruptionBudget (`policy/v1`, named like it) over all its pods, canary pods included,
    /// with this budget; unset: `maxUnavailable: 1`. With fewer pods it gets none (one left from
    /// before is deleted): a budget on a single pod would either protect nothing or block every
    /// drain of its node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<DisruptionSpec>,

    /// What the operator watches in the serving pods beside their readiness. Unset: nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringSpec>,
}

/// What the operator watches in the serving pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Drift: the operator reads the live answers' profile from the stable pods' `/metrics` and
    /// compares it (PSI per signal) with the reference the model file holds of its training set.
    /// Set (even `{}`, every field defaulted) to turn it on: the status then has a `Drift`
    /// condition and `status.drift`. Drift never changes Ready, Progressing or Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftSpec>,
}

/// When the live answers have drifted from the model's training set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DriftSpec {
    /// Largest PSI (Population Stability Index) of each signal before the Predictor reports
    /// `Drift` True. Each defaults to 0.25 (the usual reading: below 0.1 no shift, 0.1 to 0.25 a
    /// moderate one, above 0.25 a large one).
    #[serde(default)]
    pub thresholds: DriftThresholds,

    /// Seconds of live answers compared with the reference: the last `windowSeconds` of every
    /// stable pod. 30 to 86400, default 600.
    #[serde(default = "default_drift_window")]
    #[schemars(range(min = 30, max = 86400))]
    pub window_seconds: i32,

    /// Answers the window must hold before any verdict (fewer: `Drift` is Unknown with reason
    /// `NotEnoughSamples`): PSI swings on small samples. At least 20, default 500.
    #[serde(default = "default_drift_min_samples")]
    #[schemars(range(min = 20))]
    pub min_samples: i64,
}

impl Default for DriftSpec {
    fn default() -> Self {
        Self {
            thresholds: DriftThresholds::default(),
            window_seconds: default_drift_window(),
            min_samples: default_drift_min_samples(),
        }
    }
}

/// Largest PSI of each drift signal, each greater than 0 and at most 10.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DriftThresholds {
    /// The predicted probability of the US class. Default 0.25.
    #[serde(default = "default_psi_threshold")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 10.0").message("spec.monitoring.drift.thresholds.probability must be greater than 0 and at most 10"))]
    pub probability: f64,

    /// The share of a text's n-grams the model's vocabulary knows. Default 0.25.
    #[serde(default = "default_psi_threshold")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 10.0").message("spec.monitoring.drift.thresholds.known must be greater than 0 and at most 10"))]
    pub known: f64,

    /// The text's length in characters. Default 0.25.
    #[serde(default = "default_psi_threshold")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 10.0").message("spec.monitoring.drift.thresholds.length must be greater than 0 and at most 10"))]
    pub length: f64,

    /// The predicted class (the share of US answers). Default 0.25.
    #[serde(default = "default_psi_threshold")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 10.0").message("spec.monitoring.drift.thresholds.positive must be greater than 0 and at most 10"))]
    pub positive: f64,
}

impl Default for DriftThresholds {
    fn default() -> Self {
        let t = default_psi_threshold();
        Self {
            probability: t,
            known: t,
            length: t,
            positive: t,
        }
    }
}

impl DriftThresholds {
    /// The threshold of `signal`.
    pub fn of(&self, signal: predictor::drift::Signal) -> f64 {
        use predictor::drift::Signal;
        match signal {
            Signal::Probability => self.probability,
            Signal::Known => self.known,
            Signal::Length => self.length,
            Signal::Positive => self.positive,
        }
    }
}

impl DriftSpec {
    /// `windowSeconds` as a duration (30 s at least, whatever the object says).
    pub fn window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::try_from(self.window_seconds.max(30)).unwrap_or(30))
    }
}

/// The disruption budget of a Predictor's pods: exactly one of `maxUnavailable` and
/// `minAvailable`, each a number of pods or a percentage of the desired pods (`"50%"`), as in a
/// PodDisruptionBudget.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.maxUnavailable) != has(self.minAvailable)")
        .message("spec.disruption sets exactly one of maxUnavailable and minAvailable"),
    validation = Rule::new("!has(self.maxUnavailable) || (type(self.maxUnavailable) == int ? self.maxUnavailable >= 1 : self.maxUnavailable.matches('^(100|[1-9][0-9]?)%$'))")
        .message("spec.disruption.maxUnavailable must be at least 1, or a percentage from 1% to 100%: 0 would block every node drain"),
    validation = Rule::new("!has(self.minAvailable) || (type(self.minAvailable) == int ? self.minAvailable >= 0 : self.minAvailable.matches('^(100|[1-9]?[0-9])%$'))")
        .message("spec.disruption.minAvailable must be a number of pods (0 or more) or a percentage from 0% to 100%")
)]
pub struct DisruptionSpec {
    /// Most pods that may be unavailable after an eviction: a number (at least 1) or a
    /// percentage of the desired pods (`"25%"`, rounded up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,

    /// Fewest pods that must stay available after an eviction: a number or a percentage of the
    /// desired pods (`"50%"`, rounded up). As many as there are pods (or `"100%"`) blocks every
    /// drain of their nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
}

/// Bounds and target of the autoscaler.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.minReplicas <= self.maxReplicas")
        .message("spec.autoscaling.minReplicas must not exceed maxReplicas")
)]
pub struct AutoscalingSpec {
    /// Fewest pods, at least 1. Default 1.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,

    /// Most pods, at least `minReplicas`, at most 1000.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,

    /// Average CPU use of the ready pods the autoscaler aims at, in percent of their CPU request
    /// (`resources.requests.cpu`), 1 to 1000. Default 80. CPU is the only target: a requests-per-
    /// second target needs a custom-metrics API (Prometheus and its adapter), which the operator
    /// does not assume.
    #[serde(
        default = "default_cpu_target",
        rename = "targetCPUUtilizationPercentage"
    )]
    #[schemars(range(min = 1, max = 1000))]
    pub target_cpu_utilization_percentage: i32,

    /// How fast the autoscaler may scale up and down, exactly as in a HorizontalPodAutoscaler's
    /// `spec.behavior` (e.g. `scaleDown.stabilizationWindowSeconds: 60` to scale down a minute
    /// after the load has gone instead of five). Unset: the Kubernetes defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// How a change of `image` or `model` rolls out.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.strategy != 'Canary' || has(self.analysis)")
        .message("spec.rollout.strategy Canary needs spec.rollout.analysis"),
    validation = Rule::new("!has(self.analysis) || !has(self.analysis.maxDisagreement) || self.shadowPercent > 0")
        .message("spec.rollout.analysis.maxDisagreement needs shadowPercent > 0: predictions are compared on the copies of live requests")
)]
pub struct RolloutSpec {
    /// `RollingUpdate` (default): the Deployment replaces every pod once the pre-flight checks
    /// pass. `Canary`: the candidate first runs in a `<name>-canary` Deployment next to the stable
    /// pods and is promoted only when its analysis passes.
    #[serde(default)]
    pub strategy: RolloutStrategy,

    /// Canary only: size of the canary Deployment, in percent of `replicas` (1 to 100, rounded
    /// up). The canary pods sit behind the same Service as the stable ones, so they get their
    /// share of the traffic by replica count (no service mesh): with 2 replicas and 10, one canary
    /// pod takes about a third. Default 10.
    #[serde(default = "default_canary_percent")]
    #[schemars(range(min = 1, max = 100))]
    pub canary_percent: i32,

    /// Canary only: percent (0 to 100) of the live `/api/american` requests the stable pods copy
    /// to the candidate after answering them, to compare its predictions with theirs. The copy
    /// never delays or changes the live answer; copies are dropped when too many are in flight.
    /// Default 0 (no copies: the analysis sees only the canary's own traffic).
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub shadow_percent: i32,

    /// Canary only: what the candidate must show before it is promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
}

/// Which rollout strategy a Predictor uses.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum RolloutStrategy {
    // NB: no `///` on the variants: schemars would describe them in a `oneOf`, which a
    // structural CRD schema cannot hold. The field's description documents both.
    #[default]
    RollingUpdate,
    Canary,
}

/// The thresholds of a canary analysis, measured on the candidate and compared with the stable
/// pods. The verdict waits for `minSamples`; it never promotes on fewer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.maxDisagreement) || has(self.maxErrorRate) || has(self.maxP99LatencyRatio)")
        .message("spec.rollout.analysis needs at least one of maxDisagreement, maxErrorRate and maxP99LatencyRatio")
)]
pub struct AnalysisSpec {
    /// Requests the candidate must have answered (live share and shadow copies) before it is
    /// judged, at least 1. Below it the analysis waits, however long it takes: a candidate is
    /// never promoted blindly.
    #[schemars(range(min = 1))]
    pub min_samples: i64,

    /// Largest fraction (0 to 1) of compared predictions (shadow copies) in which the candidate's
    /// `is_american` differs from the stable model's, e.g. `0.05`. Needs `shadowPercent` > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_disagreement: Option<f64>,

    /// Largest fraction (0 to 1) of the candidate's prediction requests that may fail (5xx, or a
    /// shadow copy it did not answer), e.g. `0.01`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: Option<f64>,

    /// Largest ratio of the candidate's p99 latency to the stable pods' p99 (server side, same
    /// histogram buckets), greater than 0, e.g. `1.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0").message("spec.rollout.analysis.maxP99LatencyRatio must be greater than 0"))]
    pub max_p99_latency_ratio: Option<f64>,

    /// Seconds after which an analysis still short of `minSamples` says so (Progressing stays
    /// True with "waiting: N of M samples" and the deadline in the message); it is still not
    /// promoted. 10 to 86400, default 600.
    #[serde(default = "default_analysis_deadline")]
    #[schemars(range(min = 10, max = 86400))]
    pub deadline_seconds: i32,
}

/// The offline quality gate: a labelled data set and at least one accuracy threshold.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.minAccuracy) || has(self.maxAccuracyDrop)")
        .message("spec.validation needs minAccuracy, maxAccuracyDrop or both")
)]
pub struct ValidationSpec {
    /// The labelled data set the candidate model is measured on.
    pub data: DataSpec,

    /// Lowest accuracy (fraction of correctly classified rows, 0 to 1) a new model may have on
    /// `data`, e.g. `0.8`. A model below it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_accuracy: Option<f64>,

    /// Largest drop in accuracy (0 to 1, in accuracy points: `0.02` allows 0.91 → 0.89) a new
    /// model may have on `data` compared with the model the Deployment runs now. A model that
    /// loses more is refused. Ignored while no model serves yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_accuracy_drop: Option<f64>,
}

/// Where the labelled data set is and which file it must be.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct DataSpec {
    /// Location of a labelled CSV in the training format (a `text` and a `country_code` column):
    /// an `http://`, `https://` or `hdfs://` URL. The operator downloads it (at most 32 MiB).
    #[x_kube(validation = crate::store_url::DATA_URL.cel())]
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,

    /// sha256 of the data file, 64 lowercase hex digits. A file with another digest is refused,
    /// and so is the model it was meant to judge.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: String,
}

/// A Secret in the Predictor's namespace, named the way a pod spec names its pull secrets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretName {
    /// The Secret's name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

impl From<&str> for SecretName {
    fn from(name: &str) -> Self {
        Self { name: name.into() }
    }
}

/// Where the model file is and which file it must be.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!self.url.startsWith('oci://') || !self.url.contains('@') || self.url.matches('^oci://[^/@]+/[^@]+@sha256:[0-9a-f]{64}$')")
        .message("an oci:// model.url pins its artifact as oci://registry/repository@sha256:<64 lowercase hex>, the digest of the artifact's manifest"),
    validation = Rule::new("!has(self.s3) || self.url.startsWith('s3://')")
        .message("model.s3 configures s3:// URLs only")
)]
pub struct ModelSpec {
    /// Location of the model file: an `http://`, `https://`, `hdfs://`, `s3://bucket/key` or
    /// `oci://registry/repository@sha256:<manifest digest>` (or `:tag`) URL.
    #[x_kube(validation = crate::store_url::MODEL_URL.cel())]
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,

    /// sha256 of the model file, 64 lowercase hex digits. Pods refuse a file with another digest,
    /// and the operator checks it before rolling out. For `oci://`, the artifact's model layer must
    /// have this digest.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: String,

    /// A Secret in this namespace with what the model's store needs: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) for `s3://`, with `AWS_ENDPOINT_URL` for a
    /// store that is not AWS S3; `.dockerconfigjson` for `oci://` (a `kubernetes.io/dockerconfigjson`
    /// pull Secret works as it is); `ca.crt` for a store behind a private CA. The Secret is used
    /// only when it carries the label `mlops.dev/model-credentials: "true"` (its owner's consent);
    /// otherwise the model is refused (`CredentialsUnusable`) and the pods do not get its keys. S3
    /// keys are signed only for the endpoint the Secret names (AWS S3 when it names none):
    /// `s3.endpoint` may be left unset or repeat it, any other is refused before a request is sent.
    /// The pods get the keys as environment variables; the operator reads the Secret for its
    /// pre-flight check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SecretName>,

    /// Where an `s3://` store is when it is not AWS S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
}

/// An S3-compatible store (SeaweedFS, Ceph RGW, MinIO, R2, …).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    /// The store's `http://` or `https://` URL; unset = the endpoint the credentials Secret names
    /// in `AWS_ENDPOINT_URL`, else AWS S3. With credentials, it must be the Secret's endpoint.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("model.s3.endpoint must be an http:// or https:// URL"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub endpoint: Option<String>,

    /// The region requests are signed for (default `us-east-1`): lowercase letters, digits and `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region: Option<String>,

    /// `https://endpoint/bucket/key` (true, the default: what S3-compatible servers serve) or
    /// `https://bucket.endpoint/key` (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
}

/// What the operator observed, computed from the Deployment it manages.
// The apiserver serves a Predictor the operator has not seen yet with `observedGeneration: 0` (a
// schema default, applied when the object is read): "not observed yet" in the words every GitOps
// tool reads (kstatus: InProgress, where an object with no status at all would be Current).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": 0}))]
pub struct PredictorStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Pods of the Deployment, old and new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Pods that passed their readiness probe (model loaded and verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// Ready pods over desired pods, e.g. `2/2` (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,

    /// Distinct nodes the ready pods run on (of the Deployment, old and new; not the canary's):
    /// with fewer nodes than ready pods, losing one node takes more than one pod. Unset while the
    /// operator cannot tell (its pod cache does not agree with the Deployment's ready count yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<i32>,

    /// Version the ready pods serve (set once a rollout has completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// sha256 of the model the ready pods serve (set once a rollout has completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,

    /// First 12 hex digits of `modelSha256` (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_short: Option<String>,

    /// Manifest digest (`sha256:…`) of the image the ready pods run, when the operator resolved
    /// `spec.image` to it (set once a rollout has completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,

    /// In-cluster URL of the prediction endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// What the offline quality gate measured for `spec.model` (set when `spec.validation` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityStatus>,

    /// Where a Canary rollout stands: analysing a candidate, promoting it, promoted, or rolled
    /// back (with the measured values and thresholds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,

    /// What the autoscaler decided (set while `spec.autoscaling` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingStatus>,

    /// Canary only: the model the stable pods serve. After a rollback this is what serves, while
    /// `spec.model` still names the rejected candidate (the operator never edits the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_good_model: Option<ModelRef>,

    /// Canary only: the image the stable pods run (see `lastGoodModel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_good_image: Option<String>,

    /// What the last drift reading measured (set while `spec.monitoring.drift` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftStatus>,

    /// Ready, Progressing, Degraded, ModelVerified, ImageResolved, (with `spec.validation`)
    /// QualityGate, (with `spec.autoscaling`) Autoscaling and (with `spec.monitoring.drift`) Drift,
    /// following the Kubernetes API conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The figures of the last drift reading: the live answers of the window against the model
/// file's reference.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftStatus {
    /// Answers of the stable pods in the window (those served under the reference judged).
    pub samples: i64,
    /// `spec.monitoring.drift.windowSeconds` when measured.
    pub window_seconds: i32,
    /// PSI of each signal against the reference (3 decimals); unset while there is no verdict
    /// (fewer than `minSamples` answers, or no reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<DriftPsi>,
    /// When the pods were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// PSI of each drift signal.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftPsi {
    pub probability: f64,
    pub known: f64,
    pub length: f64,
    pub positive: f64,
}

/// The autoscaler's view of the Predictor's pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingStatus {
    /// Pods the Deployment has now (old and new, ready or not).
    pub current_replicas: i32,
    /// Pods the autoscaler last asked for (the Deployment's replica count).
    pub desired_replicas: i32,
    /// `spec.autoscaling.minReplicas` and `maxReplicas`.
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// When the autoscaler last changed the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// Accuracies the offline quality gate measured on `spec.validation.data`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QualityStatus {
    /// sha256 of the model measured (`spec.model.sha256` when it was measured).
    pub model_sha256: String,

    /// Its accuracy on the data set (fraction of rows classified correctly, 0 to 1).
    pub accuracy: f64,

    /// sha256 of the data set it was measured on.
    pub data_sha256: String,

    /// Rows of the data set that were scored.
    pub rows: u64,

    /// sha256 of the model the Deployment ran when the gate compared against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_model_sha256: Option<String>,

    /// That model's accuracy on the same data set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_accuracy: Option<f64>,
}

/// A model as the status names it: its URL (credentials redacted) and sha256.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelRef {
    /// Location of the model file, with any credentials redacted.
    pub url: String,
    /// sha256 of the model file.
    pub sha256: String,
}

/// Where a Canary rollout stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// `Analyzing` (the candidate runs in the canary Deployment and is measured), `Promoting`
    /// (it passed; the stable Deployment rolls over to it), `Promoted` (it is the only version),
    /// `RolledBack` (it failed; the canary was removed and the stable pods serve on).
    pub phase: String,

    /// CamelCase reason, e.g. `WaitingForSamples`, `AnalysisPassed`, `DisagreementTooHigh`.
    pub reason: String,

    /// For humans: the measured values and the thresholds, or what the analysis waits for.
    pub message: String,

    /// The candidate this phase is about.
    pub candidate: Candidate,

    /// The `metadata.generation` that asked for the candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,

    /// When the analysis of this candidate started (its deadline counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,

    /// What the analysis measured last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Measured>,

    /// When the analysis last measured the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// A release of a Predictor: the image its pods run and the model they serve.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The image the pods run (pinned to a digest when the operator resolved the tag).
    pub image: String,
    /// sha256 of the model.
    pub model_sha256: String,
    /// The version the pods report.
    pub version: String,
}

/// Figures of one canary analysis.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measured {
    /// Prediction requests the candidate answered or failed (the samples).
    pub samples: i64,
    /// `spec.rollout.analysis.minSamples` when measured.
    pub min_samples: i64,
    /// Shadow copies whose answers were compared with the stable pods' answers.
    #[serde(default)]
    pub compared: i64,
    /// Fraction of the compared predictions that differed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disagreement: Option<f64>,
    /// Fraction of the candidate's requests that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// The same for the stable pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_error_rate: Option<f64>,
    /// Candidate p99 latency over stable p99 latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_latency_ratio: Option<f64>,
}

fn default_min_replicas() -> i32 {
    1
}

fn default_cpu_target() -> i32 {
    80
}

fn default_canary_percent() -> i32 {
    10
}

fn default_analysis_deadline() -> i32 {
    600
}

fn default_drift_window() -> i32 {
    600
}

fn default_drift_min_samples() -> i64 {
    500
}

fn default_psi_threshold() -> f64 {
    0.25
}

fn default_port() -> i32 {
    DEFAULT_PORT
}

fn default_replicas() -> i32 {
    1
}

impl PredictorSpec {
    /// The canary settings, when `spec.rollout.strategy` is `Canary`.
    pub fn canary(&self) -> Option<&RolloutSpec> {
        self.rollout
            .as_ref()
            .filter(|r| r.strategy == RolloutStrategy::Canary)
    }

    /// The version the pods report: `spec.version`, else the image tag (`latest` when the image
    /// names none, as the runtime reads it; a reference pinned by digest alone has no version).
    pub fn effective_version(&self) -> String {
        match &self.version {
            Some(v) if !v.is_empty() => v.clone(),
            _ => ImageReference::parse(&self.image)
                .ok()
                .and_then(|image| image.tag)
                .unwrap_or_else(|| DEFAULT_TAG.to_string()),
        }
    }
}

/// The CRD as YAML, exactly as `crdgen` writes it to `crds/predictor.yaml`: descriptions unwrapped
/// (see [`unwrap_descriptions`]).
pub fn crd_yaml() -> String {
    let mut crd = serde_json::to_value(Predictor::crd()).expect("the CRD serialises to JSON");
    unwrap_descriptions(&mut crd);
    // One line per description (no folding at 80 columns): what the file says is what
    // `kubectl explain` shows.
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    let crd =
        serde_saphyr::to_string_with_options(&crd, options).expect("the CRD serialises to YAML");
    format!(
        "# GENERATED by `cargo run -p operator --bin crdgen`; do not edit. CI fails when this file is stale.\n{crd}"
    )
}

/// Rewrites every `description` string in `schema` as paragraphs: the line breaks of wrapped `///`
/// comments become spaces (`kubectl explain` would show them as hard breaks), blank lines stay
/// paragraph breaks.
pub fn unwrap_descriptions(schema: &mut serde_json::Value) {
    use serde_json::Value;
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(text) if key == "description" => *text = unwrap_text(text),
                    other => unwrap_descriptions(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// `text` with the lines of each paragraph joined by single spaces.
fn unwrap_text(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|paragraph| !paragraph.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `status.rollout.phase` values.
pub mod phase {
    /// The candidate runs in the canary Deployment and is measured.
    pub const ANALYZING: &str = "Analyzing";
    /// It passed; the stable Deployment rolls over to it.
    pub const PROMOTING: &str = "Promoting";
    /// It is the only version.
    pub const PROMOTED: &str = "Promoted";
    /// It failed; the canary was retired and the stable pods serve on.
    pub const ROLLED_BACK: &str = "RolledBack";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_defaults_to_the_image_tag() {
        let spec = |image: &str, version: Option<&str>| PredictorSpec {
            image: image.into(),
            version: version.map(Into::into),
            ..crate::fixtures::predictor("american", "team-a").spec
        };
        assert_eq!(
            spec("registry.local/american-predictor:0.2", None).effective_version(),
            "0.2"
        );
        assert_eq!(
            spec(
                &format!("localhost:5000/p:1.0@sha256:{}", "ab".repeat(32)),
                None
            )
            .effective_version(),
            "1.0"
        );
        assert_eq!(spec("localhost:5000/p", None).effective_version(), "latest");
        assert_eq!(
            spec("p:0.2", Some("0.2-rc1")).effective_version(),
            "0.2-rc1"
        );
    }

    #[test]
    fn descriptions_read_as_paragraphs() {
        let mut schema = serde_json::json!({
            "description": "First line\nwraps here.\n\nSecond paragraph\n  indented.",
            "properties": {"a": {"description": "one\ntwo", "type": "string"}},
            "items": [{"description": "x\ny"}],
            "example": {"not_description": "keep\nthis"}
        });
        unwrap_descriptions(&mut schema);
        assert_eq!(
            schema,
            serde_json::json!({
                "description": "First line wraps here.\n\nSecond paragraph indented.",
                "properties": {"a": {"description": "one two", "type": "string"}},
                "items": [{"description": "x y"}],
                "example": {"not_description": "keep\nthis"}
            })
        );
        // The generated CRD has no description with a single line break left.
        let crd: serde_json::Value = serde_saphyr::from_str(&crd_yaml()).unwrap();
        let mut descriptions = Vec::new();
        collect_descriptions(&crd, &mut descriptions);
        assert!(descriptions.len() > 10, "{descriptions:?}");
        for d in descriptions {
            assert!(!d.replace("\n\n", "").contains('\n'), "{d:?}");
        }
    }

    fn collect_descriptions(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match v {
                        serde_json::Value::String(s) if key == "description" => out.push(s.clone()),
                        other => collect_descriptions(other, out),
                    }
                }
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|v| collect_descriptions(v, out))
            }
            _ => {}
        }
    }

    /// Both committed copies: config/crd's (kustomize) and the Helm chart's.
    #[test]
    fn committed_crd_matches_the_types() {
        let committed = [
            ("crds", include_str!("../../crds/predictor.yaml")),
            (
                "charts/predictor-operator/crds",
                include_str!("../../charts/predictor-operator/crds/predictor.yaml"),
            ),
        ];
        for (dir, text) in committed {
            crate::reference::assert_current(&format!("{dir}/predictor.yaml"), text, &crd_yaml());
        }
    }
}
