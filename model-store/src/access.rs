//! Who may read (and write) a store that is not anonymous: a [`StoreAccess`], this process's own from
//! its environment ([`StoreAccess::from_env`]), or one the operator builds for a Predictor.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::registry::auth::DockerConfig;
use crate::s3::S3Settings;

/// What a process needs to read (and write) stores that are not anonymous: S3 settings and keys, a
/// docker config for registries, a CA bundle for stores behind a private CA. `Debug` shows no secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreAccess {
    pub s3: S3Settings,
    pub registry: Option<DockerConfig>,
    /// PEM certificates trusted for the stores' TLS on top of the usual roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// The docker config's content (a pod gets it from its credentials Secret's `.dockerconfigjson`).
pub const REGISTRY_AUTH_ENV: &str = "PREDICTOR_REGISTRY_AUTH";
/// PEM certificates to trust for model stores (a pod gets them from its credentials Secret's `ca.crt`).
pub const STORE_CA_ENV: &str = "PREDICTOR_STORE_CA";

impl StoreAccess {
    /// This process's own access: [`S3Settings::from_env`]; the docker config from
    /// `PREDICTOR_REGISTRY_AUTH` (its content), else the file `REGISTRY_AUTH_FILE`, else
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` when present; a CA bundle from
    /// `PREDICTOR_STORE_CA`.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let refuse = |what: String, reason: String| Error::Settings(format!("{what}: {reason}"));
        let registry = match var(REGISTRY_AUTH_ENV) {
            Some(json) => Some(
                DockerConfig::parse(json.as_bytes())
                    .map_err(|reason| refuse(REGISTRY_AUTH_ENV.into(), reason))?,
            ),
            None => {
                let file = var("REGISTRY_AUTH_FILE").map(PathBuf::from).or_else(|| {
                    let dir = var("DOCKER_CONFIG")
                        .map(PathBuf::from)
                        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".docker")))?;
                    Some(dir.join("config.json")).filter(|file| file.is_file())
                });
                match file {
                    Some(file) => {
                        let json = std::fs::read(&file)
                            .map_err(|e| refuse(file.display().to_string(), e.to_string()))?;
                        Some(
                            DockerConfig::parse(&json)
                                .map_err(|reason| refuse(file.display().to_string(), reason))?,
                        )
                    }
                    None => None,
                }
            }
        };
        Ok(Self {
            s3: S3Settings::from_env(),
            registry,
            ca_pem: var(STORE_CA_ENV).map(String::into_bytes),
        })
    }
}
