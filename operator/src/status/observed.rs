//! What the status is computed from besides the Predictor: its children and the pre-flight checks'
//! outcomes as observed ([`Observed`]), and the pods' counts and what they serve ([`Pods`]).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;

use super::check::{ImageCheck, ModelCheck, QualityCheck};
use super::nodes::{Placement, nodes};
use super::rollout::Rollout;
use super::verdict::short;
use crate::crd::{Predictor, PredictorStatus};
use crate::drift::DriftReading;
use crate::resources::{Served, stable_replicas};

/// Everything the status is computed from besides the Predictor itself.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The Deployment as the apiserver returned it (after apply, or untouched when the model or
    /// the image was rejected).
    pub deployment: Option<&'a Deployment>,
    pub model: ModelCheck,
    /// The offline quality gate's verdict on `spec.model`.
    pub quality: QualityCheck,
    pub image: ImageCheck,
    /// Why the rollout's new pods cannot start, when the kubelet cannot pull their image
    /// ([`pull_failure`](super::rollout::pull_failure)).
    pub pull_failure: Option<String>,
    /// Why the spec cannot be run, when the validate step refused it.
    pub invalid: Option<String>,
    /// Which objects under a child's name are not the Predictor's own (see [`crate::ownership`]).
    pub conflict: Option<String>,
    /// The Predictor's HorizontalPodAutoscaler, when it is autoscaled and the autoscaler exists.
    pub autoscaler: Option<&'a HorizontalPodAutoscaler>,
    /// Where the ready pods of the Deployment run, as the operator's pod cache has them (`None`
    /// before the cache has listed the pods).
    pub placement: Option<Placement>,
    /// The last drift reading of the stable pods, when `spec.monitoring.drift` is set and one was
    /// made (`None`: the status keeps what it said of drift).
    pub drift: Option<DriftReading>,
}

impl Observed<'_> {
    /// The pre-flight refusal that blocks the rollout, model first, then its quality, then the
    /// image: `(reason, message, what)`.
    pub(super) fn refusal(&self) -> Option<(&str, &str, &'static str)> {
        [
            (self.model.refusal(), "model"),
            (self.quality.refusal(), "model"),
            (self.image.refusal(), "image"),
        ]
        .into_iter()
        .find_map(|(refusal, what)| refusal.map(|(reason, message)| (reason, message, what)))
    }
}

/// The facts the Ready condition and the status fields are read from.
#[derive(Clone, Debug)]
pub(super) struct Pods {
    /// `spec.replicas`, or what the autoscaler set (see [`stable_replicas`]).
    pub desired: i32,
    /// Pods of the Deployment, old and new.
    pub total: i32,
    /// Pods that passed their readiness probe.
    pub ready: i32,
    /// Distinct nodes the ready pods run on, when known (see [`nodes`]).
    pub nodes: Option<i32>,
    /// Version, model sha256 and image digest the ready pods serve (as of the last completed
    /// rollout).
    pub version: Option<String>,
    pub model_sha256: Option<String>,
    pub image_digest: Option<String>,
}

impl Pods {
    /// Counts from the Deployment, nodes from `placement`; what is served only moves when a
    /// rollout has completed, until then the old pods (if any) still serve what `previous` said.
    pub(super) fn observe(
        predictor: &Predictor,
        deployment: Option<&Deployment>,
        placement: Option<&Placement>,
        rollout: &Rollout,
        previous: &PredictorStatus,
    ) -> Self {
        let status = deployment.and_then(|d| d.status.as_ref());
        let (version, model_sha256, image_digest) = match (rollout, deployment) {
            (Rollout::Complete | Rollout::Scaling(_), Some(d)) => {
                let served = Served::of(d);
                let digest = served.image_digest().map(str::to_string);
                (served.version, served.model_sha256, digest)
            }
            _ => (
                previous.version.clone(),
                previous.model_sha256.clone(),
                previous.image_digest.clone(),
            ),
        };
        Self {
            desired: stable_replicas(predictor, deployment),
            total: status.and_then(|s| s.replicas).unwrap_or(0),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            nodes: nodes(placement, deployment, previous),
            version,
            model_sha256,
            image_digest,
        }
    }

    /// "2/2 pods ready on 2 nodes" ("2/2 pods ready" while the nodes are not known, "0/2 pods
    /// ready" without a ready pod).
    pub(super) fn ready_on_nodes(&self) -> String {
        let (ready, desired) = (self.ready, self.desired);
        match self.nodes.filter(|_| ready > 0) {
            Some(1) => format!("{ready}/{desired} pods ready on 1 node"),
            Some(nodes) => format!("{ready}/{desired} pods ready on {nodes} nodes"),
            None => format!("{ready}/{desired} pods ready"),
        }
    }

    /// "2/2 pods ready on 2 nodes, serving version 0.2 with model 9f2c1e0d4b3a": what a Ready
    /// Predictor says.
    pub(super) fn serving(&self) -> String {
        format!(
            "{}, serving version {} with model {}",
            self.ready_on_nodes(),
            self.version.as_deref().unwrap_or("?"),
            short(self.model_sha256.as_deref().unwrap_or("?"))
        )
    }
}
