//! Models as OCI artifacts in a container registry: `oci://registry/repository@sha256:<manifest digest>`
//! (pinned) or `oci://registry/repository:tag`, pulled and pushed with `oci-client`.
//!
//! An artifact is one manifest (artifactType [`ARTIFACT_TYPE`], the empty config) naming one layer:
//! the model file ([`MODEL_MEDIA_TYPE`]). Artifacts pushed by other tools (`oras push registry/repo
//! model.bin`) work too when they have exactly one layer. A pull checks the manifest against the
//! digest in the URL and the layer against the manifest's digest (so `@sha256:` pins the bytes as
//! firmly as `spec.model.sha256` does); callers then compare the model's sha256 with the pinned one.
//!
//! Registries on loopback are spoken to over plain HTTP (as Docker and containerd allow by default),
//! all others over HTTPS. Credentials come from a docker config ([`crate::registry_auth`]); errors are
//! plain reasons that never carry them.

use std::collections::BTreeMap;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use crate::registry_auth::DockerConfig;

/// The manifest's `artifactType` for a predictor model.
pub const ARTIFACT_TYPE: &str = "application/vnd.mlops-predictor.model.v1";
/// The media type of the one layer, the model file.
pub const MODEL_MEDIA_TYPE: &str = "application/vnd.mlops-predictor.model.v1.bin";
/// The OCI "empty" config an artifact without configuration carries (`{}`).
const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";
/// Largest manifest read (real ones are under 1 KiB).
const MAX_MANIFEST_BYTES: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed `oci://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciUrl {
    pub reference: Reference,
}

impl OciUrl {
    /// `oci://registry/repository[:tag][@sha256:<64 hex>]`; the registry must be named (no Docker
    /// Hub default) and credentials in the URL are refused.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .get(..6)
            .filter(|scheme| scheme.eq_ignore_ascii_case("oci://"))
            .map(|_| &url[6..])
            .ok_or_else(|| "not an oci:// URL".to_string())?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.contains('@') {
            return Err(
                "credentials in oci:// URLs are not used: give a docker config \
                        (REGISTRY_AUTH_FILE, or the Predictor's credentials Secret)"
                    .into(),
            );
        }
        if path.is_empty() {
            return Err(
                "the URL names no repository: use oci://registry/repository:tag or \
                        oci://registry/repository@sha256:<digest>"
                    .into(),
            );
        }
        let reference = Reference::try_from(rest)
            .map_err(|e| format!("{rest:?} is not an OCI reference: {e}"))?;
        if reference.registry() != host {
            return Err(format!(
                "{host:?} is not a registry host: use oci://registry.example.com/repository:tag"
            ));
        }
        if let Some(digest) = reference.digest() {
            let hex = digest.strip_prefix("sha256:").unwrap_or_default();
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "{digest:?} is not a sha256 digest (sha256:<64 hex>)"
                ));
            }
        }
        Ok(Self { reference })
    }

    /// `oci://registry/repository@sha256:<digest>`: this artifact pinned to `digest`.
    pub fn pinned(&self, digest: &str) -> String {
        format!(
            "oci://{}/{}@{digest}",
            self.reference.registry(),
            self.reference.repository()
        )
    }
}

/// Whether `host` (`name[:port]` or `[v6][:port]`) is `localhost` or a loopback address.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `sha256:<hex>` of `bytes`.
fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn client(url: &OciUrl, ca_pem: Option<&[u8]>, timeout: Duration) -> Client {
    crate::tls::install_crypto_provider();
    let registry = url.reference.resolve_registry().to_string();
    let protocol = if is_loopback(&registry) {
        ClientProtocol::HttpsExcept(vec![registry])
    } else {
        ClientProtocol::Https
    };
    Client::new(ClientConfig {
        protocol,
        extra_root_certificates: ca_pem
            .map(|pem| {
                vec![Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.to_vec(),
                }]
            })
            .unwrap_or_default(),
        connect_timeout: Some(CONNECT_TIMEOUT.min(timeout)),
        read_timeout: Some(timeout),
        platform_resolver: None,
        ..ClientConfig::default()
    })
}

/// The docker config's credentials for the URL's registry, else anonymous.
fn auth(url: &OciUrl, config: Option<&DockerConfig>) -> RegistryAuth {
    match config.and_then(|c| c.credentials_for(url.reference.registry())) {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
        None => RegistryAuth::Anonymous,
    }
}

/// The model file of the artifact at `url` (async), bounded by `timeout` as a whole and by
/// `max_bytes`. Checks the manifest against a pinned digest and the layer against the manifest.
pub async fn fetch(
    url: &OciUrl,
    config: Option<&DockerConfig>,
    ca_pem: Option<&[u8]>,
    timeout: Duration,
    max_bytes: u64,
) -> Result<Vec<u8>, String> {
    let pull = async {
        let client = client(url, ca_pem, timeout);
        let auth = auth(url, config);
        let (manifest, digest) = client
            .pull_manifest_raw(&url.reference, &auth, &[OCI_IMAGE_MEDIA_TYPE])
            .await
            .map_err(|e| describe(&e, url))?;
        if manifest.len() > MAX_MANIFEST_BYTES {
            return Err("the manifest is more than 1 MiB: not a model artifact".to_string());
        }
        let actual = digest_of(&manifest);
        if let Some(pinned) = url.reference.digest().filter(|&pinned| pinned != actual) {
            return Err(format!(
                "the registry's manifest does not match the pinned digest: expected {pinned}, \
                 got {actual}"
            ));
        }
        tracing::debug!(%digest, "artifact manifest");
        let layer = model_layer(&manifest)?;
        let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if size > max_bytes {
            return Err(format!(
                "{size} bytes is more than the {max_bytes}-byte limit"
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // pull_blob checks the bytes against the layer's digest.
        client
            .pull_blob(&url.reference, &layer, &mut bytes)
            .await
            .map_err(|e| describe(&e, url))?;
        if bytes.len() as u64 != size {
            return Err(format!(
                "the layer is {} bytes, the manifest says {size}",
                bytes.len()
            ));
        }
        Ok(bytes)
    };
    match tokio::time::timeout(timeout, pull).await {
        Ok(pulled) => pulled,
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

/// The one model layer of an artifact manifest: the layer of [`MODEL_MEDIA_TYPE`], or the only layer.
fn model_layer(manifest: &[u8]) -> Result<OciDescriptor, String> {
    let manifest: OciImageManifest = serde_json::from_slice(manifest)
        .map_err(|e| format!("the manifest is not an OCI image manifest: {e}"))?;
    let mut ours = manifest
        .layers
        .iter()
        .filter(|layer| layer.media_type == MODEL_MEDIA_TYPE);
    match (ours.next(), ours.next(), manifest.layers.as_slice()) {
        (Some(layer), None, _) => Ok(layer.clone()),
        (None, _, [only]) => Ok(only.clone()),
        (None, _, []) => Err("the artifact has no layers: no model file in it".into()),
        _ => Err(format!(
            "the artifact has {} layers and not exactly one of type {MODEL_MEDIA_TYPE}: \
             which is the model file?",
            manifest.layers.len()
        )),
    }
}

/// The artifact manifest for `model` (and the empty config): pure, so the digest is known before pushing.
pub fn artifact_manifest(model: &[u8], title: &str) -> Vec<u8> {
    let mut manifest = OciImageManifest {
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.into()),
        artifact_type: Some(ARTIFACT_TYPE.into()),
        config: OciDescriptor {
            media_type: EMPTY_CONFIG_MEDIA_TYPE.into(),
            digest: digest_of(EMPTY_CONFIG),
            size: EMPTY_CONFIG.len() as i64,
            ..OciDescriptor::default()
        },
        layers: vec![OciDescriptor {
            media_type: MODEL_MEDIA_TYPE.into(),
            digest: digest_of(model),
            size: model.len() as i64,
            annotations: Some(BTreeMap::from([(
                "org.opencontainers.image.title".to_string(),
                title.to_string(),
            )])),
            ..OciDescriptor::default()
        }],
        ..OciImageManifest::default()
    };
    manifest.annotations = None;
    serde_json::to_vec(&manifest).expect("a manifest serialises")
}

/// Pushes `model` as an artifact to `url` (a tag, or a repository) and returns its pinned URL,
/// `oci://registry/repository@sha256:<manifest digest>`.
pub async fn push(
    url: &OciUrl,
    config: Option<&DockerConfig>,
    ca_pem: Option<&[u8]>,
    timeout: Duration,
    model: Vec<u8>,
    title: &str,
) -> Result<String, String> {
    let push = async {
        let client = client(url, ca_pem, timeout);
        client
            .store_auth_if_needed(url.reference.resolve_registry(), &auth(url, config))
            .await;
        let manifest = artifact_manifest(&model, title);
        let digest = digest_of(&manifest);
        let reference = &url.reference;
        for (bytes, blob_digest) in [
            (EMPTY_CONFIG.to_vec(), digest_of(EMPTY_CONFIG)),
            (model.clone(), digest_of(&model)),
        ] {
            client
                .push_blob(reference, bytes, &blob_digest)
                .await
                .map_err(|e| describe(&e, url))?;
        }
        let target = match reference.tag() {
            Some(_) => reference.clone(),
            None => reference.clone_with_digest(digest.clone()),
        };
        client
            .push_manifest_raw(
                &target,
                manifest,
                http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
            )
            .await
            .map_err(|e| describe(&e, url))?;
        Ok(url.pinned(&digest))
    };
    match tokio::time::timeout(timeout, push).await {
        Ok(pushed) => pushed,
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

/// What went wrong, in words a user can act on; never a credential.
fn describe(error: &OciDistributionError, url: &OciUrl) -> String {
    let registry = url.reference.registry();
    match error {
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => format!(
            "the registry {registry} refused the credentials (unauthorized): check the docker \
             config (REGISTRY_AUTH_FILE, or the Predictor's credentials Secret)"
        ),
        OciDistributionError::ImageManifestNotFoundError(_) => format!(
            "not found: no manifest {} in the registry {registry}",
            url.reference.whole()
        ),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}", e.code))
                .collect();
            let codes = codes.join(", ");
            if codes.contains("Unauthorized") || codes.contains("Denied") {
                format!("the registry {registry} refused the credentials ({codes})")
            } else if codes.contains("Unknown") {
                format!("not found: the registry {registry} answered {codes}")
            } else {
                format!("the registry {registry} answered {codes}")
            }
        }
        OciDistributionError::ServerError { code, .. } => match *code {
            401 | 403 => format!("the registry {registry} refused the credentials (HTTP {code})"),
            404 => format!("not found: the registry {registry} answered HTTP 404"),
            _ => format!("the registry {registry} answered HTTP {code}"),
        },
        OciDistributionError::RequestError(e) => {
            format!("{registry}: {}", crate::source::describe_reqwest(e))
        }
        OciDistributionError::DigestError(e) => {
            format!("the layer's bytes do not match its digest: {e}")
        }
        other => other.to_string().chars().take(300).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_tags_and_digests_and_refuses_the_rest() {
        let url = OciUrl::parse(&format!("oci://127.0.0.1:5000/models/american@{DIGEST}")).unwrap();
        assert_eq!(url.reference.registry(), "127.0.0.1:5000");
        assert_eq!(url.reference.repository(), "models/american");
        assert_eq!(url.reference.digest(), Some(DIGEST));
        let url = OciUrl::parse("oci://registry.example.com/team/model:v2").unwrap();
        assert_eq!(url.reference.tag(), Some("v2"));
        assert_eq!(
            url.pinned(DIGEST),
            format!("oci://registry.example.com/team/model@{DIGEST}")
        );
        for (url, expected) in [
            ("oci://registry.example.com", "names no repository"),
            (
                "oci://u:pw@registry.example.com/m:v1",
                "credentials in oci:// URLs",
            ),
            ("oci://models/american:v1", "is not a registry host"),
            ("oci://r.example.com/m@sha256:abc", "not"),
            ("oci://r.example.com/Models:v1", "not an OCI reference"),
            ("s3://r/m", "not an oci:// URL"),
        ] {
            let err = OciUrl::parse(url).unwrap_err();
            assert!(err.contains(expected), "{url}: {err}");
            assert!(!err.contains("pw@"), "{err}");
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost:5000",
            "127.0.0.1",
            "127.0.0.2:5000",
            "[::1]:5000",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["10.77.0.1:5443", "registry.local", "[fe80::1]:5000"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn the_artifact_manifest_is_an_oci_artifact_naming_the_model() {
        let manifest = artifact_manifest(b"model bytes", "american.bin");
        let value: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_IMAGE_MEDIA_TYPE,
                "artifactType": ARTIFACT_TYPE,
                "config": {
                    "mediaType": EMPTY_CONFIG_MEDIA_TYPE,
                    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                    "size": 2
                },
                "layers": [{
                    "mediaType": MODEL_MEDIA_TYPE,
                    "digest": digest_of(b"model bytes"),
                    "size": 11,
                    "annotations": {"org.opencontainers.image.title": "american.bin"}
                }]
            })
        );
        assert_eq!(
            model_layer(&manifest).unwrap().digest,
            digest_of(b"model bytes")
        );
    }

    #[test]
    fn the_model_layer_is_ours_or_the_only_one() {
        let layer = |media_type: &str| serde_json::json!({"mediaType": media_type, "digest": DIGEST, "size": 1});
        let manifest = |layers: Vec<serde_json::Value>| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "config": {"mediaType": EMPTY_CONFIG_MEDIA_TYPE, "digest": DIGEST, "size": 2},
                "layers": layers
            }))
            .unwrap()
        };
        // oras push's default layer type.
        let oras = manifest(vec![layer("application/vnd.oci.image.layer.v1.tar")]);
        assert!(model_layer(&oras).is_ok());
        let two = manifest(vec![layer("a/b"), layer(MODEL_MEDIA_TYPE)]);
        assert_eq!(model_layer(&two).unwrap().media_type, MODEL_MEDIA_TYPE);
        let err = model_layer(&manifest(vec![layer("a/b"), layer("c/d")])).unwrap_err();
        assert!(err.contains("2 layers"), "{err}");
        let err = model_layer(&manifest(vec![])).unwrap_err();
        assert!(err.contains("no layers"), "{err}");
        let err = model_layer(b"{\"not\": 1}").unwrap_err();
        assert!(err.contains("not an OCI image manifest"), "{err}");
    }
}
