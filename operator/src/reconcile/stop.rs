//! The reconciles that stop before any rollout: the status says why, and nothing is applied.

use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::children::Current;
use super::context::Context;
use super::preflight::Preflight;
use super::rollout::previous_view;
use super::write::update_status;
use super::{CONFLICT_RETRY, observe};
use crate::crd::Predictor;
use crate::error::{Error, Result};
use crate::ownership::owned_by;
use crate::status::{self, Observed};

/// An invalid spec is not a rollout: nothing is deferred. The status says why, and the error
/// (`InvalidSpec`) sets when the controller looks again.
pub(super) async fn invalid_spec(
    predictor: &Predictor,
    current: &Current,
    reason: String,
    ctx: &Context,
) -> Result<Action> {
    tracing::warn!(%reason, "invalid spec");
    let checks = Preflight::skipped(status::reason::INVALID_SPEC, "the spec is invalid");
    let observed = observe(
        current.deployment.as_ref(),
        checks,
        None,
        current.autoscaler.as_ref(),
        ctx.children.placement(predictor),
    );
    let observed = Observed {
        invalid: Some(reason.clone()),
        ..observed
    };
    update_status(predictor, &observed, &previous_view(predictor), ctx).await?;
    Err(Error::InvalidSpec {
        name: predictor.name_any(),
        reason,
    })
}

/// A child's name taken by an object this Predictor does not control: the Predictor says so
/// until it is gone (nothing watches an object without our labels, hence the poll).
pub(super) async fn child_conflict(
    predictor: &Predictor,
    current: &Current,
    conflict: String,
    ctx: &Context,
) -> Result<Action> {
    tracing::warn!(%conflict, "child conflict");
    let why = "a child's name is taken, see Degraded";
    let checks = Preflight::skipped(status::reason::CHILD_CONFLICT, why);
    let own = current
        .deployment
        .as_ref()
        .filter(|d| owned_by(*d, predictor));
    let observed = Observed {
        conflict: Some(conflict),
        ..observe(own, checks, None, None, ctx.children.placement(predictor))
    };
    let deferred = update_status(predictor, &observed, &previous_view(predictor), ctx).await?;
    Ok(Action::requeue(
        deferred.map_or(CONFLICT_RETRY, |d| d.min(CONFLICT_RETRY)),
    ))
}
