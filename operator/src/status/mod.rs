//! Pure status computation: what the Predictor's status should say, given its Deployment and the
//! outcomes of the pre-flight checks (model, quality gate, image), and for a Canary Predictor where
//! its rollout stands ([`RolloutView`]). Also when a status write can wait, and which Events a
//! status change deserves. Nothing here touches the network.
//!
//! One job per file, in the order the status is made: `reason` (every reason's one spelling),
//! `check` (the pre-flight checks' outcomes, one [`Check`] each for the model and the image, and
//! the reasons each gives), `rollout` (where a Deployment's rollout stands), `nodes` (on how many
//! nodes the ready pods run), `observed` (what the status is computed from), `verdict` (what a
//! condition says, and how it becomes one), `conditions` (each condition's verdict), `compute`
//! (the whole status), `canary` (a Canary's rollout laid over it), `drift` (the Drift condition and `status.drift`), `kstatus` (Reconciling and Stalled
//! for Flux and kpt, read from the others), `throttle` (when a write can
//! wait), `events` (the Events of a change); `tests`: whole statuses.

use kube::ResourceExt;

use crate::crd::Predictor;

mod canary;
mod check;
mod compute;
mod conditions;
mod drift;
mod events;
mod kstatus;
mod nodes;
mod observed;
pub mod reason;
mod rollout;
#[cfg(test)]
mod tests;
mod throttle;
mod verdict;

pub use canary::{RolloutView, compute_status_with_rollout};
pub use check::{Check, ImageCheck, ModelCheck, QualityCheck};
pub use compute::compute_status;
pub use drift::defer_drift;
pub use events::{StatusEvent, status_events};
pub use nodes::{Placement, is_ready_stable_pod, keep_placement};
pub use observed::Observed;
pub use rollout::{Rollout, pull_failure, rollout_of, scaling};
pub use throttle::{defer_analysis, defer_progress};
pub use verdict::{
    AUTOSCALING, DEGRADED, DRIFT, IMAGE_RESOLVED, MODEL_VERIFIED, PROGRESSING, QUALITY_GATE, READY,
    RECONCILING, STALLED, find_condition, is_ready, short,
};

/// Name and namespace for logs.
pub fn key(predictor: &Predictor) -> String {
    format!(
        "{}/{}",
        predictor.namespace().unwrap_or_default(),
        predictor.name_any()
    )
}
