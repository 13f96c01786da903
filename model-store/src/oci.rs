//! Models as OCI artifacts in a container registry: `oci://registry/repository@sha256:<manifest digest>`
//! (pinned) or `oci://registry/repository:tag`, pulled and pushed with the registry client of
//! [`crate::registry`].
//!
//! An artifact is one manifest (artifactType [`ARTIFACT_TYPE`], the empty config) naming one layer:
//! the model file ([`MODEL_MEDIA_TYPE`]). Artifacts pushed by other tools (`oras push registry/repo
//! model.bin`) work too when they have exactly one layer. A pull checks the manifest against the
//! digest in the URL and the layer against the manifest's digest (so `@sha256:` pins the bytes as
//! firmly as `spec.model.sha256` does); callers then compare the model's sha256 with the pinned one.
//! The layer is fetched from wherever the registry redirects it (its storage), without the
//! registry's credentials when that is another host.
//!
//! Registries on loopback are spoken to over plain HTTP (as Docker and containerd allow by default),
//! all others over HTTPS. Credentials come from a docker config ([`crate::registry::auth`]); errors are
//! plain reasons that never carry them.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::registry::auth::DockerConfig;
pub use crate::registry::is_loopback;
use crate::registry::name::{
    check_registry, check_repository, check_tag, is_registry_host, parse_digest, split_tag,
};
use crate::registry::{self, Access, Answer, Client, Failure, MAX_BODY_BYTES, Session};

/// The manifest's `artifactType` for a predictor model.
pub const ARTIFACT_TYPE: &str = "application/vnd.mlops-predictor.model.v1";
/// The media type of the one layer, the model file.
pub const MODEL_MEDIA_TYPE: &str = "application/vnd.mlops-predictor.model.v1.bin";
/// An OCI image manifest: what artifacts are written as and read as.
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI "empty" config an artifact without configuration carries (`{}`).
const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";
/// The annotation naming the file a layer holds.
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// Largest manifest read (real ones are under 1 KiB).
const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// The tag of a URL with neither tag nor digest.
const DEFAULT_TAG: &str = "latest";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed `oci://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciUrl {
    /// `host[:port]`, as written.
    pub registry: String,
    /// `team/model`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>` when the URL pins the artifact's manifest.
    pub digest: Option<String>,
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
        if !is_registry_host(host) {
            return Err(format!(
                "{host:?} is not a registry host: use oci://registry.example.com/repository:tag"
            ));
        }
        let invalid = |reason: String| format!("{rest:?} is not an OCI reference: {reason}");
        let (name_and_tag, digest) = match path.split_once('@') {
            Some((name_and_tag, digest)) => {
                (name_and_tag, Some(parse_digest(digest).map_err(invalid)?))
            }
            None => (path, None),
        };
        let (repository, tag) = split_tag(name_and_tag);
        check_registry(host).map_err(invalid)?;
        check_repository(repository).map_err(invalid)?;
        if let Some(tag) = tag {
            check_tag(tag).map_err(invalid)?;
        }
        Ok(Self {
            registry: host.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// `oci://registry/repository@sha256:<digest>`: this artifact pinned to `digest`.
    pub fn pinned(&self, digest: &str) -> String {
        format!("oci://{}/{}@{digest}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest when pinned, else the tag (`latest` if none).
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }
}

/// An OCI image manifest, as much of it as artifacts use.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// A blob a manifest names.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

impl Descriptor {
    fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self {
            media_type: media_type.into(),
            digest: digest_of(bytes),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        }
    }
}

/// `sha256:<hex>` of `bytes`.
fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A session for `url`'s repository with the docker config's credentials for its registry (else
/// anonymous).
fn session<'a>(
    client: &'a Client,
    url: &OciUrl,
    config: Option<&'a DockerConfig>,
    access: Access,
) -> Result<Session<'a>, String> {
    let credentials = config.and_then(|c| c.credentials_for(&url.registry));
    client
        .session(&url.registry, &url.repository, access, credentials)
        .map_err(|failure| describe(&failure, url))
}

/// `future` within `timeout` as a whole.
async fn within<T>(
    timeout: Duration,
    future: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, future).await {
        Ok(done) => done,
        Err(_) => Err(format!("timed out after {timeout:?}")),
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
    let mut bytes = Vec::new();
    fetch_into(url, config, ca_pem, timeout, max_bytes, &mut bytes).await?;
    Ok(bytes)
}

/// [`fetch`] streamed into `out` (a chunk at a time in memory, digested as it passes), returning
/// the model file's length. On an error `out` may hold part of the layer: the caller throws it away.
pub async fn fetch_into<W: tokio::io::AsyncWrite + Unpin + Send>(
    url: &OciUrl,
    config: Option<&DockerConfig>,
    ca_pem: Option<&[u8]>,
    timeout: Duration,
    max_bytes: u64,
    out: &mut W,
) -> Result<u64, String> {
    use tokio::io::AsyncWriteExt;
    within(timeout, async {
        let client = Client::new(timeout, CONNECT_TIMEOUT, ca_pem)?;
        let mut session = session(&client, url, config, Access::Pull)?;
        let fail = |failure: Failure| describe(&failure, url);
        let reference = url.manifest_reference();
        let request = session
            .request(Method::GET, session.url(&format!("manifests/{reference}")))
            .header(ACCEPT, MANIFEST_MEDIA_TYPE);
        let answer = session.answer(request, Some(MAX_MANIFEST_BYTES)).await;
        let manifest = answer
            .and_then(|answer| succeeded(answer, &session, &format!("manifest {reference}")))
            .map_err(fail)?;
        let actual = digest_of(&manifest.body);
        if let Some(pinned) = url.digest.as_ref().filter(|&pinned| *pinned != actual) {
            return Err(format!(
                "the registry's manifest does not match the pinned digest: expected {pinned}, \
                 got {actual}"
            ));
        }
        tracing::debug!(digest = %actual, "artifact manifest");
        let layer = model_layer(&manifest.body)?;
        let size = layer.size;
        if size > max_bytes {
            return Err(crate::transport::too_large(Some(size), max_bytes));
        }
        // Registries may redirect to their storage: reqwest follows, and drops the Authorization
        // header when the redirect leaves the registry's host, port or scheme.
        let what = format!("blob {}", layer.digest);
        let request = session.request(Method::GET, session.url(&format!("blobs/{}", layer.digest)));
        let mut response = session.send(request).await.map_err(fail)?;
        if !response.status().is_success() {
            let answer = Answer::read(response, Some(MAX_BODY_BYTES))
                .await
                .map_err(fail)?;
            return Err(fail(refusal(&answer, &session, &what)));
        }
        let mut out = crate::digest::DigestWriter::new(out);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(Failure::Unreachable(crate::transport::describe_reqwest(&e))))?
        {
            if out.written() + chunk.len() as u64 > size {
                return Err(format!(
                    "the layer is more than the {size} bytes its manifest says"
                ));
            }
            out.write_all(&chunk)
                .await
                .map_err(|e| format!("cannot keep the downloaded bytes: {e}"))?;
        }
        let (got, written, _) = out.finish();
        if written != size {
            return Err(format!(
                "the layer is {written} bytes, the manifest says {size}"
            ));
        }
        let got = format!("sha256:{got}");
        if got != layer.digest {
            return Err(format!(
                "the layer's bytes do not match its digest: expected {}, got {got}",
                layer.digest
            ));
        }
        Ok(written)
    })
    .await
}

/// The one model layer of an artifact manifest: the layer of [`MODEL_MEDIA_TYPE`], or the only layer.
/// Its digest is a sha256 one (what it is checked with, and part of a URL path).
fn model_layer(manifest: &[u8]) -> Result<Descriptor, String> {
    let manifest: Manifest = serde_json::from_slice(manifest).map_err(|e| {
        format!(
            "the manifest is not an OCI image manifest (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let mut ours = manifest
        .layers
        .iter()
        .filter(|layer| layer.media_type == MODEL_MEDIA_TYPE);
    let layer = match (ours.next(), ours.next(), manifest.layers.as_slice()) {
        (Some(layer), None, _) => layer,
        (None, _, [only]) => only,
        (None, _, []) => return Err("the artifact has no layers: no model file in it".into()),
        _ => {
            return Err(format!(
                "the artifact has {} layers and not exactly one of type {MODEL_MEDIA_TYPE}: \
                 which is the model file?",
                manifest.layers.len()
            ));
        }
    };
    // NB: the manifest is the registry's answer: its words are never quoted.
    parse_digest(&layer.digest).map_err(|_| {
        "the model layer's digest is not sha256: followed by 64 lowercase hex digits".to_string()
    })?;
    Ok(layer.clone())
}

/// The artifact manifest for `model` (and the empty config): pure, so the digest is known before pushing.
pub fn artifact_manifest(model: &[u8], title: &str) -> Vec<u8> {
    let mut layer = Descriptor::of(MODEL_MEDIA_TYPE, model);
    layer
        .annotations
        .insert(TITLE_ANNOTATION.into(), title.into());
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.into()),
        artifact_type: Some(ARTIFACT_TYPE.into()),
        config: Descriptor::of(EMPTY_CONFIG_MEDIA_TYPE, EMPTY_CONFIG),
        layers: vec![layer],
    };
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
    within(timeout, async {
        let client = Client::new(timeout, CONNECT_TIMEOUT, ca_pem)?;
        let mut session = session(&client, url, config, Access::Push)?;
        let fail = |failure: Failure| describe(&failure, url);
        let manifest = artifact_manifest(&model, title);
        let digest = digest_of(&manifest);
        push_blob(&mut session, EMPTY_CONFIG.to_vec())
            .await
            .map_err(fail)?;
        push_blob(&mut session, model).await.map_err(fail)?;
        // By tag, or (no tag) by the manifest's own digest.
        let reference = url.tag.as_deref().unwrap_or(&digest);
        let request = session
            .request(Method::PUT, session.url(&format!("manifests/{reference}")))
            .header(CONTENT_TYPE, MANIFEST_MEDIA_TYPE)
            .body(manifest);
        let answer = session.answer(request, Some(MAX_BODY_BYTES)).await;
        let answer = answer
            .and_then(|answer| succeeded(answer, &session, &format!("manifest {reference}")))
            .map_err(fail)?;
        if let Some(stored) = answer.digest_header().filter(|stored| *stored != digest) {
            return Err(format!(
                "the registry stored the manifest as {stored}, not as the {digest} it was sent"
            ));
        }
        Ok(url.pinned(&digest))
    })
    .await
}

/// Uploads `bytes` as a blob of the session's repository unless the registry has it: one
/// `POST …/blobs/uploads/`, one `PUT <Location>?digest=…` with all the bytes (a monolithic upload).
async fn push_blob(session: &mut Session<'_>, bytes: Vec<u8>) -> Result<(), Failure> {
    let digest = digest_of(&bytes);
    let what = format!("blob {digest}");
    let request = session.request(Method::HEAD, session.url(&format!("blobs/{digest}")));
    let present = session.answer(request, None).await?;
    if present.status.is_success() {
        return Ok(());
    }
    if present.status != StatusCode::NOT_FOUND {
        return Err(refusal(&present, session, &what));
    }
    let request = session.request(Method::POST, session.url("blobs/uploads/"));
    let started = session.answer(request, Some(MAX_BODY_BYTES)).await?;
    let started = succeeded(started, session, "upload of a blob")?;
    let location = started
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Failure::Unreachable("it started an upload without a Location".into()))?;
    let mut target = session.location(location)?;
    target.query_pairs_mut().append_pair("digest", &digest);
    let request = session
        .request(Method::PUT, target)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(bytes);
    let done = session.answer(request, Some(MAX_BODY_BYTES)).await?;
    succeeded(done, session, &what).map(drop)
}

/// `answer` when it is a success, else what it means about `what`.
fn succeeded(answer: Answer, session: &Session<'_>, what: &str) -> Result<Answer, Failure> {
    if answer.status.is_success() {
        Ok(answer)
    } else {
        Err(refusal(&answer, session, what))
    }
}

/// What a failed answer about `what` means, with the registry's error codes where they say more
/// than the status.
fn refusal(answer: &Answer, session: &Session<'_>, what: &str) -> Failure {
    match registry::classify(answer, session.repository(), what, session.authenticated()) {
        Failure::Unreachable(reason) if !answer.error_codes().is_empty() => {
            Failure::Unreachable(format!("{reason} ({})", answer.error_codes().join(", ")))
        }
        failure => failure,
    }
}

/// What went wrong, in words a user can act on; never a credential.
fn describe(failure: &Failure, url: &OciUrl) -> String {
    let registry = &url.registry;
    match failure {
        Failure::Unauthorized(reason) => format!(
            "the registry {registry} refused the credentials ({reason}): check the docker \
             config (REGISTRY_AUTH_FILE, or the Predictor's credentials Secret)"
        ),
        Failure::NotFound(reason) => format!("not found in the registry {registry}: {reason}"),
        Failure::Unreachable(reason) => format!("the registry {registry}: {reason}"),
    }
}

#[cfg(test)]
mod tests;
