//! The drift step: while `spec.monitoring.drift` is set, the stable pods' `/metrics` are read
//! (through [`crate::scrape`], within the memory budget) at most every [`read_every`] of the
//! window, recorded in the [`crate::drift::DriftTracker`], and the last reading handed to the
//! status. Between reads the last reading stands, so a reconcile brought by anything else reads
//! nothing and, drift having not changed, writes nothing.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::context::Context;
use crate::crd::Predictor;
use crate::drift::{DriftReading, PodRead, exposition, psi_by_signal, read_every};
use crate::scrape;

/// Most pods of one Predictor read at once.
const CONCURRENT_READS: usize = 8;

/// The drift reading the status is computed from (`None`: drift is off, or the Predictor has no
/// uid yet), and when the pods are to be read next.
#[tracing::instrument(name = "drift", skip_all)]
pub(super) async fn read_drift(
    predictor: &Predictor,
    ctx: &Context,
    namespace: &str,
) -> (Option<DriftReading>, Option<Duration>) {
    let name = predictor.name_any();
    let Some(uid) = predictor.uid() else {
        return (None, None);
    };
    let Some(spec) = predictor
        .spec
        .monitoring
        .as_ref()
        .and_then(|m| m.drift.as_ref())
    else {
        if ctx.drift.forget(&uid).is_some() {
            ctx.metrics.forget_drift(namespace, &name);
        }
        return (None, None);
    };
    let (window, every) = (spec.window(), read_every(spec.window()));
    if let Some((reading, left)) = ctx.drift.fresh(&uid, Instant::now(), every) {
        return (Some(reading), Some(left));
    }
    let targets = ctx.children.drift_targets(predictor);
    let reads: Vec<(String, PodRead)> = futures::stream::iter(targets)
        .map(|(pod, address)| async move {
            // The answer is held (and parsed) within the memory budget, then dropped: only its
            // few counts per bin are kept.
            let Ok(_memory) = ctx
                .checker
                .budget()
                .reserve(scrape::MAX_BYTES, "a /metrics scrape")
                .await
            else {
                return (pod, PodRead::Failed);
            };
            let read = match ctx.pod_metrics.fetch(&address).await {
                Ok(text) => PodRead::Signals(Box::new(exposition::parse(&text))),
                Err(reason) => {
                    // The reason is the scrape's own fixed wording (sizes, status codes).
                    tracing::debug!(%pod, %reason, "cannot read pod metrics for drift");
                    PodRead::Failed
                }
            };
            if let PodRead::Signals(signals) = &read
                && let exposition::PodSignals::Unreadable(why) = signals.as_ref()
            {
                tracing::debug!(%pod, why, "unreadable drift signals");
            }
            (pod, read)
        })
        .buffer_unordered(CONCURRENT_READS)
        .collect()
        .await;
    let reading = ctx.drift.record(
        (&uid, namespace, &name),
        reads,
        Instant::now(),
        window,
        Time(Timestamp::now()),
    );
    ctx.metrics
        .drift(namespace, &name, &psi_by_signal(&reading));
    (Some(reading), Some(every))
}
