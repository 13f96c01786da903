//! Step 2: the pre-flight checks of the model (its bytes, then its quality on the labelled data)
//! and of the image, each only when it differs from what the pods run. A refusal leaves the
//! Deployment as it is.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use tracing::Instrument;

use super::context::Context;
use crate::crd::Predictor;
use crate::model_access;
use crate::resources::Served;
use crate::status::{ImageCheck, ModelCheck, QualityCheck};

/// What the pre-flights found.
pub(super) struct Preflight {
    pub(super) model: ModelCheck,
    pub(super) quality: QualityCheck,
    pub(super) image: ImageCheck,
}

impl Preflight {
    /// Nothing checked, for `reason`; `why` ends each message ("not checked: {why}").
    pub(super) fn skipped(reason: &str, why: &str) -> Self {
        Self {
            model: ModelCheck::Unchecked {
                reason: reason.into(),
                message: format!("not checked: {why}"),
            },
            quality: QualityCheck::Unchecked {
                reason: reason.into(),
                message: format!("not measured: {why}"),
            },
            image: ImageCheck::Unchecked {
                reason: reason.into(),
                message: format!("not resolved: {why}"),
            },
        }
    }

    /// The image the pods are to run; none when the model (bytes or quality) or the image was
    /// refused.
    pub(super) fn pod_image<'a>(&'a self, predictor: &'a Predictor) -> Option<&'a str> {
        if self.refused_model() {
            return None;
        }
        self.image.pod_image(predictor)
    }

    pub(super) fn refused_model(&self) -> bool {
        self.model.refuses() || self.quality.refuses()
    }

    pub(super) fn refused_image(&self) -> bool {
        self.image.refuses()
    }
}

/// The model (then its quality) and the image, checked together; `served` is what the pods run.
#[tracing::instrument(name = "preflight", skip_all)]
pub(super) async fn preflight(
    predictor: &Predictor,
    ctx: &Context,
    served: Option<&Served>,
    namespace: &str,
) -> Preflight {
    let running = served.is_some_and(|s| s.runs_model(&predictor.spec.model));
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let model_checks = async {
        // The store access the pods will have (spec.model.s3 and its credentials Secret).
        let (model, access) = model_access::check_model(
            &predictor.spec.model,
            running,
            &secrets,
            &ctx.checker,
            &ctx.metrics,
        )
        .instrument(tracing::info_span!("model"))
        .await;
        let quality = ctx
            .gate
            .check(&predictor.spec, &model, served, &access, &ctx.metrics)
            .await;
        // Checked and gated: the spooled copy is not needed any more.
        ctx.checker.release(&predictor.spec.model);
        (model, quality)
    };
    let ((model, quality), image) = tokio::join!(
        model_checks,
        ctx.images.check(predictor, served, &secrets, &ctx.metrics),
    );
    Preflight {
        model,
        quality,
        image,
    }
}
