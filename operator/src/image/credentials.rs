//! Registry credentials from a `kubernetes.io/dockerconfigjson` Secret: the predictor's own parser
//! (also what `oci://` model sources use), with the Secret named in the operator's error.

pub use model_store::registry::auth::{Credentials, DockerConfig};

use crate::error::{Error, Result};

/// Reads the `.dockerconfigjson` of Secret `secret` (named in errors, which never quote the file: it
/// is all credentials).
pub fn parse_pull_secret(secret: &str, json: &[u8]) -> Result<DockerConfig> {
    DockerConfig::parse(json).map_err(|reason| Error::PullSecret {
        secret: secret.to_string(),
        reason,
    })
}
