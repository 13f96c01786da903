//! Where a Deployment's rollout stands, read the way `kubectl rollout status` reads it: missing,
//! in progress, failed, complete, or only scaling the release that already serves; and why the
//! rollout's new pods cannot start when the kubelet cannot pull their image.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::reason;
use super::verdict::PROGRESSING;
use crate::crd::PredictorStatus;
use crate::resources::{CONTAINER, Served};

/// Where the Deployment's rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// There is no Deployment (yet).
    Missing,
    /// Pods are being created or replaced.
    InProgress(String),
    /// The deployment controller gave up (`ProgressDeadlineExceeded`).
    Failed(String),
    /// Every pod runs the current template and is available.
    Complete,
    /// Pods of the release the ready pods already serve are being added (see [`scaling`]).
    Scaling(String),
}

/// Reads the rollout state of a Deployment the way `kubectl rollout status` does.
pub fn rollout_of(deployment: Option<&Deployment>) -> Rollout {
    let Some(d) = deployment else {
        return Rollout::Missing;
    };
    let desired = d.spec.replicas.unwrap_or(1);
    let Some(status) = d.status.as_ref() else {
        return Rollout::InProgress("waiting for the deployment controller".into());
    };
    if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
        return Rollout::InProgress("waiting for the deployment controller".into());
    }
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(PROGRESSING))
        && c.reason.as_deref() == Some(reason::PROGRESS_DEADLINE_EXCEEDED)
    {
        return Rollout::Failed(format!(
            "{} The new pods never became ready (their /readyz and logs say why, e.g. a model they \
             cannot fetch or whose sha256 differs); the old pods keep serving.",
            c.message.as_deref().unwrap_or("The rollout timed out.")
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        Rollout::InProgress(format!("{updated} of {desired} pods updated"))
    } else if total > updated {
        Rollout::InProgress(format!("{} old pods terminating", total - updated))
    } else if available < updated {
        Rollout::InProgress(format!("{available} of {updated} updated pods available"))
    } else {
        Rollout::Complete
    }
}

/// `rollout`, or [`Rollout::Scaling`] when what is in progress only adds pods: the Deployment has
/// no pod of another template, and its template is the release the status already reports as
/// served (a rollout of it completed before). The autoscaler, or a new `spec.replicas`, then
/// changes the number of pods, not what they serve: the Predictor stays Ready (with fewer pods
/// than wanted for a moment) and is not Progressing, so ArgoCD keeps it Healthy.
pub fn scaling(
    rollout: Rollout,
    deployment: Option<&Deployment>,
    served: &PredictorStatus,
) -> Rollout {
    let (Rollout::InProgress(_), Some(d)) = (&rollout, deployment) else {
        return rollout;
    };
    let Some(status) = d.status.as_ref() else {
        return rollout;
    };
    let release = Served::of(d);
    let same_release = served.version.is_some()
        && release.version == served.version
        && release.model_sha256 == served.model_sha256
        && release.image_digest() == served.image_digest.as_deref();
    let only_current_pods = status.replicas.unwrap_or(0) == status.updated_replicas.unwrap_or(0);
    if same_release && only_current_pods {
        Rollout::Scaling(format!("scaling to {} pods", d.spec.replicas.unwrap_or(1)))
    } else {
        rollout
    }
}

/// Container waiting reasons of a kubelet that cannot get the image.
const PULL_FAILURES: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "RegistryUnavailable",
];

/// Why pods running `image` (the rollout's new pods) cannot start because the kubelet cannot
/// pull their image, from the pods' container states; `None` when none is stuck so. Read during a
/// rollout, this says why it stalls long before the progress deadline does.
pub fn pull_failure(pods: &[Pod], image: &str) -> Option<String> {
    pods.iter().find_map(|pod| {
        let spec = pod.spec.as_ref()?;
        let container = spec.containers.iter().find(|c| c.name == CONTAINER)?;
        if container.image.as_deref() != Some(image) {
            return None;
        }
        let waiting = pod
            .status
            .as_ref()?
            .container_statuses
            .iter()
            .flatten()
            .find(|c| c.name == CONTAINER)?
            .state
            .as_ref()?
            .waiting
            .as_ref()?;
        let reason = waiting.reason.as_deref()?;
        PULL_FAILURES.contains(&reason).then(|| {
            format!(
                "pod {} cannot pull image {image}: {reason}: {}; the old pods keep serving",
                pod.name_any(),
                waiting
                    .message
                    .as_deref()
                    .unwrap_or("no message from the kubelet")
            )
        })
    })
}
