//! Writing a model file to a store: `s3://bucket/key` (one signed PUT) or
//! `oci://registry/repository[:tag]` (an OCI artifact), what `predictor publish` does after checking
//! the file is a model.

use std::time::Duration;

use crate::access::StoreAccess;
use crate::error::{Error, Result};
use crate::location::{Location, redact};
use crate::{oci, s3};

/// Longest an upload may take.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Uploads `bytes` to `to` with `access`; `title` names the file in an OCI artifact. Returns what
/// names the object from now on: the same `s3://` URL, or the `oci://` artifact pinned by its
/// manifest digest.
pub async fn upload(bytes: Vec<u8>, to: &str, title: &str, access: &StoreAccess) -> Result<String> {
    let fail = |reason: String| Error::Upload {
        location: redact(to),
        reason,
    };
    match Location::parse(to)? {
        Location::S3(url) => {
            s3::put(
                &url,
                &access.s3,
                access.ca_pem.as_deref(),
                UPLOAD_TIMEOUT,
                bytes,
            )
            .await
            .map_err(fail)?;
            Ok(to.to_string())
        }
        Location::Oci(url) => oci::push(
            &url,
            access.registry.as_ref(),
            access.ca_pem.as_deref(),
            UPLOAD_TIMEOUT,
            bytes,
            title,
        )
        .await
        .map_err(fail),
        _ => Err(fail(
            "publish writes to s3://bucket/key or oci://registry/repository:tag".into(),
        )),
    }
}
