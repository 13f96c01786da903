//! The image pre-flight, the image's twin of the model check: before a new `spec.image` reaches
//! the Deployment, ask its registry which manifest digest the tag names (with the credentials of
//! the Predictor's `spec.imagePullSecrets`), and pin the pods to `image@sha256:…`. A missing tag,
//! a refused credential or an unreachable registry never rolls out, so the old pods keep serving.
//!
//! A tag is resolved once per `spec.image` (and [`RESOLVE_IMAGE_ANNOTATION`] value): after that
//! the Deployment's pinned image is reused, so a tag re-pushed to other bytes changes no pod until
//! the Predictor changes.
//!
//! [`RESOLVE_IMAGE_ANNOTATION`]: crate::crd::RESOLVE_IMAGE_ANNOTATION

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::crd::Predictor;
use crate::error::{Error, Result};
use crate::image::credentials::parse_pull_secret;
use crate::image::{Credentials, ImageReference, Resolver, rejection_reason};
use crate::metrics::Metrics;
use crate::resources::Served;
use crate::status::{ImageCheck, reason};

/// The key of a `kubernetes.io/dockerconfigjson` Secret that holds the registry credentials.
const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";

/// Resolves image tags to digests, or (disabled) lets `spec.image` through as written.
pub struct ImageChecker {
    resolver: Option<Resolver>,
    budget: Option<std::sync::Arc<crate::budget::Budget>>,
}

/// What one resolve may hold in memory: a registry answer (token or manifest, one at a time, each
/// at most [`crate::image::resolver::MAX_BODY_BYTES`]) and what is parsed from it.
const RESOLVE_MEMORY: u64 = crate::image::resolver::MAX_BODY_BYTES as u64 + (1 << 20);

impl ImageChecker {
    /// A checker whose registry requests each finish within `timeout`; `enabled == false`
    /// reports every image as unchecked and never calls a registry.
    pub fn new(enabled: bool, timeout: Duration) -> Result<Self> {
        Ok(Self {
            resolver: enabled.then(|| Resolver::new(timeout)).transpose()?,
            budget: None,
        })
    }

    /// The same checker, each resolve reserving what it may hold from `budget` first.
    pub fn within(mut self, budget: std::sync::Arc<crate::budget::Budget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Which image `predictor`'s pods are to run, given the Deployment `served` now (if any).
    /// `secrets` reads the pull Secrets of the Predictor's namespace.
    pub async fn check(
        &self,
        predictor: &Predictor,
        served: Option<&Served>,
        secrets: &Api<Secret>,
        metrics: &Metrics,
    ) -> ImageCheck {
        let Some(resolver) = &self.resolver else {
            return ImageCheck::Unchecked {
                reason: reason::CHECK_DISABLED.into(),
                message: "the operator runs with --skip-image-check; the pods pull spec.image as \
                          written"
                    .into(),
            };
        };
        let image = match ImageReference::parse(&predictor.spec.image) {
            Ok(image) => image,
            Err(e) => return rejection(&e),
        };
        if image.digest.is_some() {
            // Pinned by the spec itself: nothing a registry could change.
            return ImageCheck::Passed(predictor.spec.image.clone());
        }
        if let Some(pinned) = served.and_then(|s| s.pinned_for(predictor)) {
            return ImageCheck::Passed(pinned.to_string());
        }
        // NB: a budget smaller than one answer cannot lend it; the operator refuses to start
        // with one (manager::MIN_MEMORY_BUDGET), so that case resolves unreserved.
        let _memory = match &self.budget {
            Some(budget) => budget
                .reserve(RESOLVE_MEMORY, "an image resolve")
                .await
                .ok(),
            None => None,
        };
        let resolved = async {
            let credentials = credentials(predictor, &image, secrets).await?;
            resolver.resolve(&image, credentials.as_ref()).await
        };
        match resolved.await {
            Ok(digest) => {
                metrics.image_check("resolved");
                tracing::info!(image = %image, %digest, "resolved image tag");
                ImageCheck::Passed(image.pinned(&digest))
            }
            Err(e) => {
                metrics.image_check(e.metric_label());
                tracing::warn!(image = %image, error = %e, "image refused");
                rejection(&e)
            }
        }
    }
}

/// How a refused image shows in the status.
pub fn rejection(error: &Error) -> ImageCheck {
    ImageCheck::Rejected {
        reason: rejection_reason(error)
            .unwrap_or(reason::REGISTRY_UNREACHABLE)
            .into(),
        message: format!("{error}; the Deployment was left unchanged"),
    }
}

/// The credentials for `image`'s registry from the first of `predictor`'s pull Secrets that has
/// some, as the kubelet picks them; `None` when it names no Secret or none has this registry.
async fn credentials(
    predictor: &Predictor,
    image: &ImageReference,
    secrets: &Api<Secret>,
) -> Result<Option<Credentials>> {
    for name in predictor.spec.image_pull_secrets.iter().map(|s| &s.name) {
        let unusable = |reason: String| Error::PullSecret {
            secret: name.clone(),
            reason,
        };
        let secret =
            crate::model_access::named_secret(secrets, name, "get pull secret", unusable).await?;
        let Some(json) = secret.data.as_ref().and_then(|d| d.get(DOCKER_CONFIG_KEY)) else {
            return Err(unusable(format!(
                "it has no {DOCKER_CONFIG_KEY} key (type kubernetes.io/dockerconfigjson)"
            )));
        };
        let config = parse_pull_secret(name, &json.0)?;
        if let Some(found) = config.credentials_for(&image.registry) {
            return Ok(Some(found.clone()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{IMAGE_DIGEST, deployment_of, predictor, resolved};

    fn on() -> ImageChecker {
        ImageChecker::new(true, Duration::from_secs(2)).unwrap()
    }

    /// The Secrets API of a fake apiserver that fails the test if it is ever called.
    fn no_secrets() -> (Api<Secret>, crate::fixtures::apiserver::ApiServer) {
        let (client, server) = crate::fixtures::apiserver::client();
        (Api::namespaced(client, "team-a"), server)
    }

    #[tokio::test]
    async fn a_digest_in_the_spec_or_a_pin_for_the_same_spec_needs_no_registry() {
        let (secrets, mut server) = no_secrets();
        let metrics = Metrics::default();
        let mut p = predictor("american", "team-a");
        // The Deployment already pins this spec.image: reused as is.
        let served = Served::of(&deployment_of(&p).rolled_out(2));
        let check = on().check(&p, Some(&served), &secrets, &metrics).await;
        assert_eq!(check, resolved(&p));
        // The spec names a digest: that is the pin.
        p.spec.image = format!("registry.local/american-predictor:0.3@{IMAGE_DIGEST}");
        let check = on().check(&p, Some(&served), &secrets, &metrics).await;
        assert_eq!(check, ImageCheck::Passed(p.spec.image.clone()));
        assert!(!metrics.render().contains("image_checks_total{"));
        server.expect_no_more().await;
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_refused_with_its_reason() {
        let (secrets, mut server) = no_secrets();
        let metrics = Metrics::default();
        let mut p = predictor("american", "team-a");
        // A loopback port nothing listens on.
        p.spec.image = "127.0.0.1:9/american-predictor:0.3".into();
        let check = on().check(&p, None, &secrets, &metrics).await;
        let ImageCheck::Rejected { reason, message } = &check else {
            panic!("{check:?}");
        };
        assert_eq!(reason, reason::REGISTRY_UNREACHABLE);
        assert!(
            message.contains("127.0.0.1:9")
                && message.ends_with("the Deployment was left unchanged"),
            "{message}"
        );
        assert_eq!(check.pod_image(&p), None);
        assert!(
            metrics.render().contains(
                "predictor_operator_image_checks_total{result=\"registry_unreachable\"} 1"
            ),
            "{}",
            metrics.render()
        );
        server.expect_no_more().await;
    }

    #[tokio::test]
    async fn disabled_lets_the_image_through_as_written() {
        let checker = ImageChecker::new(false, Duration::from_secs(1)).unwrap();
        let p = predictor("american", "team-a");
        let (client, _server) = crate::fixtures::apiserver::client();
        let secrets: Api<Secret> = Api::namespaced(client, "team-a");
        let check = checker.check(&p, None, &secrets, &Metrics::default()).await;
        assert!(
            matches!(&check, ImageCheck::Unchecked { reason, .. } if reason == reason::CHECK_DISABLED),
            "{check:?}"
        );
        assert_eq!(check.pod_image(&p), Some(p.spec.image.as_str()));
    }
}
