//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas never reconcile
//! at the same time.
//!
//! The protocol is client-go's: the holder renews `renewTime` well within `leaseDurationSeconds`;
//! a candidate takes the Lease over only once it has expired. Every write is an update carrying the
//! `resourceVersion` it read, so two candidates racing for an expired Lease cannot both win: the
//! apiserver refuses the second write with a conflict. Only `get`, `create` and `update` are used.
//!
//! NB: why not `kube-lease-manager` (0.13.1, read for kube 5 / k8s-openapi 0.29)? It does acquire
//! with retry, renew, release and identity well, but (1) it has no renew deadline: while the
//! apiserver cannot be reached its holder keeps believing it leads (`changed()` only errors and
//! backs off), so after the Lease expires a standby could take over with the old leader still
//! reconciling; here the leader stops after `--renew-deadline` (< the lease duration);
//! (2) it renews once per `duration - grace` instead of every `--retry-period`, so one
//! failed renewal eats most of the margin; (3) it writes with `patch` (strategic merge and apply,
//! one field manager per identity), which widens the operator's RBAC beyond get/create/update
//! and changes what the exact-RBAC test pins. The protocol here is ~150 lines with a pure,
//! tested `decide`; a dependency would not remove the step-down logic we would still need.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// What a candidate should do with the Lease it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Someone else held it but let it expire (or released it): take it over.
    TakeOver,
    /// Someone else holds a live Lease.
    Wait { holder: String },
}

/// Pure decision of one election round.
pub fn decide(
    lease: Option<&LeaseSpec>,
    me: &str,
    now: Timestamp,
    default_duration: Duration,
) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == me {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let duration = spec
        .lease_duration_seconds
        .map(|s| SignedDuration::from_secs(s.into()))
        .unwrap_or_else(|| {
            SignedDuration::try_from(default_duration).unwrap_or(SignedDuration::ZERO)
        });
    match &spec.renew_time {
        Some(renewed) if renewed.0.checked_add(duration).is_ok_and(|end| end > now) => {
            Decision::Wait { holder }
        }
        _ => Decision::TakeOver,
    }
}

/// One candidate for the leadership of one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaderElector {
    /// A candidate called `identity` (e.g. the pod name) for Lease `name` in `api`'s namespace.
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            duration,
        }
    }

    /// The identity this candidate writes into `holderIdentity`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn fail(&self, reason: impl std::fmt::Display) -> Error {
        Error::Leader {
            lease: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// One round: returns whether this candidate holds the Lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.fail(e))?;
        let now = Timestamp::now();
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
            self.duration,
        );
        let duration_secs = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        match (decision, current) {
            (Decision::Wait { holder }, _) => {
                tracing::debug!(%holder, lease = %self.name, "another replica leads");
                Ok(false)
            }
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(duration_secs),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.write(self.api.create(&PostParams::default(), &lease).await)
            }
            (decision, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if decision == Decision::TakeOver {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(duration_secs);
                spec.renew_time = Some(MicroTime(now));
                // `lease` still carries the resourceVersion we read: a concurrent writer makes this a 409.
                self.write(
                    self.api
                        .replace(&self.name, &PostParams::default(), &lease)
                        .await,
                )
            }
            (_, None) => Ok(false),
        }
    }

    fn write(&self, result: kube::Result<Lease>) -> Result<bool> {
        match result {
            Ok(_) => Ok(true),
            // Lost a race with another candidate: not an error, just not the leader.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Waits until this candidate leads, trying every `retry`. Returns `false` if `stop` fired first.
    pub async fn acquire(&self, retry: Duration, stop: &CancellationToken) -> bool {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election round failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = stop.cancelled() => return false,
            }
        }
    }

    /// Renews every `retry` until `stop` fires (returns `true`) or no renewal succeeded for
    /// `deadline` (returns `false`: leadership is lost and the caller must stop working).
    pub async fn keep_renewing(
        &self,
        retry: Duration,
        deadline: Duration,
        stop: &CancellationToken,
    ) -> bool {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = stop.cancelled() => return true,
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %self.name, "another replica took the Lease over");
                    return false;
                }
                Err(e) => tracing::warn!(error = %e, "renewing the Lease failed"),
            }
            if last_renewal.elapsed() > deadline {
                tracing::error!(lease = %self.name, ?deadline, "could not renew the Lease in time");
                return false;
            }
        }
    }

    /// Gives the Lease up (on graceful shutdown) so another replica need not wait for it to expire.
    pub async fn release(&self) -> Result<()> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.fail(e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.acquire_time = None;
        self.write(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_secs_ago: i64) -> LeaseSpec {
        let now: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        LeaseSpec {
            holder_identity: holder.map(Into::into),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_secs_ago))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn election_rounds() {
        let now: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let d = Duration::from_secs(15);
        assert_eq!(decide(None, "a", now, d), Decision::Create);
        assert_eq!(
            decide(Some(&lease(Some("a"), 5)), "a", now, d),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&lease(Some("b"), 5)), "a", now, d),
            Decision::Wait { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&lease(Some("b"), 20)), "a", now, d),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&lease(None, 1)), "a", now, d),
            Decision::TakeOver
        );
    }
}
