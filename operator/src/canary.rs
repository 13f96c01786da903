//! The canary rollout's decisions: which release the stable Deployment runs, whether a canary
//! runs next to it, and where the rollout stands. Pure: the controller reads the objects and the
//! pods' counters, and applies what comes out.
//!
//! The state that must survive reconciles (a rejected candidate, when its analysis started) lives
//! in `status.rollout`: the operator never edits the spec, so after a rollback the spec still
//! names the candidate, and the status says it was rejected.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::analysis::Verdict;
use crate::crd::{Candidate, ModelSpec, Predictor, RESOLVE_IMAGE_ANNOTATION, RolloutStatus, phase};
use crate::resources::Served;

/// `status.rollout.reason` values besides the verdicts' ([`crate::analysis::reason`]).
pub mod reason {
    /// The canary pods are starting: nothing to measure yet.
    pub const STARTING_CANARY: &str = "StartingCanary";
    /// The promoted candidate serves alone.
    pub const PROMOTED: &str = "Promoted";
    /// The canary pods never became ready (the canary Deployment's progress deadline passed):
    /// rolled back without an analysis.
    pub const CANARY_NOT_READY: &str = "CanaryNotReady";
}

impl Candidate {
    /// The release `predictor`'s spec asks for, its image as the pods will pull it.
    pub fn of(predictor: &Predictor, pod_image: &str) -> Self {
        Self {
            image: pod_image.into(),
            model_sha256: predictor.spec.model.sha256.clone(),
            version: predictor.spec.effective_version(),
        }
    }

    /// The release a Deployment's pods run, if its template says everything.
    pub fn served(served: &Served) -> Option<Self> {
        Some(Self {
            image: served.pod_image.clone()?,
            model_sha256: served.model_sha256.clone()?,
            version: served.version.clone()?,
        })
    }
}

/// What a reconcile of a Canary Predictor does with its Deployments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The stable Deployment takes the spec as it is: it is being created, it already runs the
    /// candidate (e.g. promoted), or the candidate was refused before any rollout (then nothing
    /// is applied). No canary is needed.
    Direct,
    /// The spec's candidate was rolled back: the stable Deployment keeps what it serves, no canary.
    Rejected,
    /// The candidate runs in the canary next to the stable pods, which keep what they serve.
    Analysing,
}

/// Where a Canary Predictor stands: from what the stable Deployment serves and the spec's
/// candidate (`None` when a pre-flight check refused it).
pub fn stage(
    predictor: &Predictor,
    served: Option<&Served>,
    candidate: Option<&Candidate>,
) -> Stage {
    let (Some(served), Some(candidate)) = (served, candidate) else {
        return Stage::Direct;
    };
    if Candidate::served(served).as_ref() == Some(candidate) {
        return Stage::Direct;
    }
    match previous(predictor) {
        Some(r) if r.phase == phase::ROLLED_BACK && &r.candidate == candidate => Stage::Rejected,
        _ => Stage::Analysing,
    }
}

fn previous(predictor: &Predictor) -> Option<&RolloutStatus> {
    predictor.status.as_ref()?.rollout.as_ref()
}

/// `predictor` as the stable Deployment serves it now: its image, model and version from `served`,
/// everything else (replicas, resources, the rollout settings) from the spec. With it the stable
/// Deployment is rebuilt without switching release. Also the pod image. `None` if the
/// Deployment's template does not say what it runs.
pub fn keep_serving(predictor: &Predictor, served: &Served) -> Option<(Predictor, String)> {
    let mut stable = predictor.clone();
    stable.spec.image = served.image.clone()?;
    // NB: the store settings and credentials are the spec's: a Secret for both stores serves a
    // rollout from one store to another.
    stable.spec.model = ModelSpec {
        url: served.model_url.clone()?,
        sha256: served.model_sha256.clone()?,
        ..predictor.spec.model.clone()
    };
    stable.spec.version = Some(served.version.clone()?);
    let annotations = stable.annotations_mut();
    match &served.resolve_token {
        Some(token) => annotations.insert(RESOLVE_IMAGE_ANNOTATION.into(), token.clone()),
        None => annotations.remove(RESOLVE_IMAGE_ANNOTATION),
    };
    Some((stable, served.pod_image.clone()?))
}

/// When the analysis of `candidate` started: kept from the status while the same candidate is
/// analysed, else `now`.
pub fn analysis_started(predictor: &Predictor, candidate: &Candidate, now: &Time) -> Time {
    previous(predictor)
        .filter(|r| r.phase == phase::ANALYZING && &r.candidate == candidate)
        .and_then(|r| r.started_at.clone())
        .unwrap_or_else(|| now.clone())
}

/// Time from `started` to `now` (zero if the clock went back).
pub fn elapsed(started: &Time, now: &Time) -> Duration {
    Duration::try_from(now.0.duration_since(started.0)).unwrap_or_default()
}

/// What happened in this reconcile, for [`next_rollout`].
#[derive(Clone, Debug, PartialEq)]
pub enum Progress<'a> {
    /// Stage [`Stage::Direct`] or [`Stage::Rejected`]; whether the stable Deployment's rollout
    /// is complete.
    Settled { stable_complete: bool },
    /// The canary pods are not all ready yet: why.
    Starting(String),
    /// The canary pods never became ready: why (the Deployment's words).
    NeverReady(String),
    /// The canary was measured.
    Judged(&'a Verdict),
}

/// The `status.rollout` after this reconcile.
pub fn next_rollout(
    predictor: &Predictor,
    stage: &Stage,
    candidate: Option<&Candidate>,
    progress: Progress,
    now: &Time,
) -> Option<RolloutStatus> {
    let previous = previous(predictor);
    let Some(candidate) = candidate else {
        // Refused before any rollout: the refusal is in Degraded; the rollout's story is unchanged.
        return previous.cloned();
    };
    let generation = predictor.metadata.generation;
    match (stage, progress) {
        (Stage::Rejected, _) => previous.cloned(),
        (Stage::Direct, Progress::Settled { stable_complete }) => {
            // Only a candidate that passed its analysis has a promotion to report.
            let passed = previous.filter(|r| {
                &r.candidate == candidate
                    && [phase::PROMOTING, phase::PROMOTED].contains(&r.phase.as_str())
            })?;
            let mut next = passed.clone();
            if stable_complete {
                next.phase = phase::PROMOTED.into();
                next.reason = reason::PROMOTED.into();
                next.message = format!(
                    "version {} with model {} serves alone; {}",
                    candidate.version,
                    crate::status::short(&candidate.model_sha256),
                    analysis_figures(&passed.message)
                );
            }
            Some(next)
        }
        (_, progress) => {
            let started = analysis_started(predictor, candidate, now);
            let measured_at = matches!(progress, Progress::Judged(_)).then(|| now.clone());
            let (phase, reason, message, measured) = match progress {
                Progress::Judged(verdict) => (
                    match verdict {
                        Verdict::Pass { .. } => phase::PROMOTING,
                        Verdict::Fail { .. } => phase::ROLLED_BACK,
                        Verdict::Waiting { .. } => phase::ANALYZING,
                    },
                    verdict.reason(),
                    verdict.message().to_string(),
                    Some(verdict.measured().clone()),
                ),
                Progress::Starting(why) => (
                    phase::ANALYZING,
                    reason::STARTING_CANARY,
                    format!("starting the canary: {why}"),
                    None,
                ),
                Progress::NeverReady(why) => (
                    phase::ROLLED_BACK,
                    reason::CANARY_NOT_READY,
                    format!("the canary pods never became ready: {why}"),
                    None,
                ),
                Progress::Settled { .. } => (
                    phase::ANALYZING,
                    reason::STARTING_CANARY,
                    "starting the canary".to_string(),
                    None,
                ),
            };
            Some(RolloutStatus {
                phase: phase.into(),
                reason: reason.into(),
                message,
                candidate: candidate.clone(),
                generation,
                started_at: Some(started),
                measured,
                measured_at,
            })
        }
    }
}

/// The figures part of a verdict message ("150 samples: …"), or the message itself.
fn analysis_figures(message: &str) -> &str {
    message
        .split_once(" analysis on ")
        .map_or(message, |(_, figures)| figures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Samples, judge};
    use crate::crd::PredictorStatus;
    use crate::fixtures::{SHA_A, SHA_B, canary, deployment_of, predictor, time};

    /// What `rollout` says: (phase, reason, message).
    fn said(rollout: &RolloutStatus) -> (&str, &str, &str) {
        (
            rollout.phase.as_str(),
            rollout.reason.as_str(),
            rollout.message.as_str(),
        )
    }

    /// A Canary Predictor serving SHA_A whose spec asks for SHA_B (generation 2).
    fn changed() -> (Predictor, Served, Candidate) {
        let p = canary(predictor("american", "team-a"));
        let served = Served::of(&deployment_of(&p).rolled_out(2));
        let mut next = p.clone();
        next.metadata.generation = Some(2);
        next.spec.model.sha256 = SHA_B.into();
        let candidate = Candidate::of(&next, served.pod_image.as_deref().unwrap());
        (next, served, candidate)
    }

    fn with_rollout(mut p: Predictor, rollout: Option<RolloutStatus>) -> Predictor {
        p.status = Some(PredictorStatus {
            rollout,
            ..PredictorStatus::default()
        });
        p
    }

    #[test]
    fn a_new_candidate_is_analysed_and_a_rejected_one_is_not_retried() {
        let (p, served, candidate) = changed();
        assert_eq!(stage(&p, Some(&served), Some(&candidate)), Stage::Analysing);
        // No stable Deployment yet, or the stable already runs it, or it was refused: direct.
        assert_eq!(stage(&p, None, Some(&candidate)), Stage::Direct);
        let same = Candidate::served(&served).unwrap();
        assert_eq!(stage(&p, Some(&served), Some(&same)), Stage::Direct);
        assert_eq!(stage(&p, Some(&served), None), Stage::Direct);

        let rejected = RolloutStatus {
            phase: phase::ROLLED_BACK.into(),
            candidate: candidate.clone(),
            ..RolloutStatus::default()
        };
        let p = with_rollout(p, Some(rejected));
        assert_eq!(stage(&p, Some(&served), Some(&candidate)), Stage::Rejected);
        // A new commit with another candidate starts a new analysis.
        let other = Candidate {
            version: "0.3".into(),
            ..candidate
        };
        assert_eq!(stage(&p, Some(&served), Some(&other)), Stage::Analysing);
    }

    #[test]
    fn the_stable_deployment_keeps_what_it_serves() {
        let (p, served, _) = changed();
        let (stable, pod_image) = keep_serving(&p, &served).unwrap();
        assert_eq!(stable.spec.model.sha256, SHA_A);
        assert_eq!(stable.spec.version.as_deref(), Some("0.2"));
        assert_eq!(Some(pod_image.as_str()), served.pod_image.as_deref());
        // Rebuilt from it, the stable Deployment is the one that serves now.
        let rebuilt = crate::resources::build_deployment(&stable, &pod_image).unwrap();
        assert_eq!(Served::of(&rebuilt), served);
        assert!(keep_serving(&p, &Served::default()).is_none());
    }

    #[test]
    fn the_rollout_status_follows_the_analysis() {
        let (p, _, candidate) = changed();
        let spec = p.spec.canary().unwrap().analysis.clone().unwrap();
        // The next rollout status of `p` with the candidate at time(at).
        let step = |p: &Predictor, stage: Stage, progress: Progress<'_>, at: i64| {
            next_rollout(p, &stage, Some(&candidate), progress, &time(at))
        };
        let starting = step(
            &p,
            Stage::Analysing,
            Progress::Starting("0 of 1 canary pods ready".into()),
            0,
        )
        .unwrap();
        assert_eq!(
            starting,
            RolloutStatus {
                phase: "Analyzing".into(),
                reason: "StartingCanary".into(),
                message: "starting the canary: 0 of 1 canary pods ready".into(),
                candidate: candidate.clone(),
                generation: Some(2),
                started_at: Some(time(0)),
                measured: None,
                measured_at: None,
            }
        );
        // Later: the start time stays, the verdict says how many samples are missing.
        let p = with_rollout(p, Some(starting));
        let waiting = judge(
            &spec,
            &Samples::default(),
            &Samples::default(),
            Duration::ZERO,
        );
        let next = step(&p, Stage::Analysing, Progress::Judged(&waiting), 30).unwrap();
        assert_eq!(
            said(&next),
            (
                "Analyzing",
                "WaitingForSamples",
                "waiting: 0 of 100 samples"
            )
        );
        assert_eq!(next.started_at, Some(time(0)));
        assert_eq!(next.measured_at, Some(time(30)));
        assert_eq!(
            elapsed(next.started_at.as_ref().unwrap(), &time(30)),
            Duration::from_secs(30)
        );

        // A pass promotes, and once the stable pods all run it, it is Promoted.
        let pass = Verdict::Pass {
            measured: Default::default(),
            message: "candidate passed the analysis on 150 samples: (figures)".into(),
        };
        let promoting = step(&p, Stage::Analysing, Progress::Judged(&pass), 40).unwrap();
        assert_eq!(promoting.phase, "Promoting");
        let p = with_rollout(p, Some(promoting));
        let rolling = step(
            &p,
            Stage::Direct,
            Progress::Settled {
                stable_complete: false,
            },
            45,
        )
        .unwrap();
        assert_eq!(rolling.phase, "Promoting");
        let done = step(
            &p,
            Stage::Direct,
            Progress::Settled {
                stable_complete: true,
            },
            50,
        )
        .unwrap();
        assert_eq!(
            said(&done),
            (
                "Promoted",
                "Promoted",
                format!(
                    "version 0.2 with model {} serves alone; 150 samples: (figures)",
                    &SHA_B[..12]
                )
                .as_str()
            )
        );

        // A rollback is kept while the spec names the same candidate; a Predictor that never
        // had a canary (created directly) has no rollout status.
        let fail = Verdict::Fail {
            reason: crate::analysis::reason::DISAGREEMENT_TOO_HIGH,
            measured: Default::default(),
            message: "candidate failed".into(),
        };
        let rolled_back = step(&p, Stage::Analysing, Progress::Judged(&fail), 60).unwrap();
        assert_eq!(
            (rolled_back.phase.as_str(), rolled_back.reason.as_str()),
            ("RolledBack", "DisagreementTooHigh")
        );
        let never = step(
            &p,
            Stage::Analysing,
            Progress::NeverReady("timed out".into()),
            60,
        )
        .unwrap();
        assert_eq!(
            said(&never),
            (
                "RolledBack",
                "CanaryNotReady",
                "the canary pods never became ready: timed out"
            )
        );
        let p = with_rollout(p, Some(rolled_back.clone()));
        let kept = step(
            &p,
            Stage::Rejected,
            Progress::Settled {
                stable_complete: true,
            },
            70,
        );
        assert_eq!(kept, Some(rolled_back));
        // Git reverted to the release that serves: the rollback is history.
        let reverted = step(
            &p,
            Stage::Direct,
            Progress::Settled {
                stable_complete: true,
            },
            80,
        );
        assert_eq!(reverted, None);
    }
}
