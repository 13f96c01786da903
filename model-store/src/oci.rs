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
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_tags_and_digests_and_refuses_the_rest() {
        let url = OciUrl::parse(&format!("oci://127.0.0.1:5000/models/american@{DIGEST}")).unwrap();
        assert_eq!(url.registry, "127.0.0.1:5000");
        assert_eq!(url.repository, "models/american");
        assert_eq!(url.digest.as_deref(), Some(DIGEST));
        assert_eq!(url.manifest_reference(), DIGEST);
        let url = OciUrl::parse("oci://registry.example.com/team/model:v2").unwrap();
        assert_eq!(url.tag.as_deref(), Some("v2"));
        assert_eq!(url.manifest_reference(), "v2");
        assert_eq!(
            url.pinned(DIGEST),
            format!("oci://registry.example.com/team/model@{DIGEST}")
        );
        let url = OciUrl::parse(&format!("OCI://localhost/a/b.c__d-e:V_1.2@{DIGEST}")).unwrap();
        assert_eq!(
            (url.registry.as_str(), url.repository.as_str()),
            ("localhost", "a/b.c__d-e")
        );
        assert_eq!(
            (url.tag.as_deref(), url.digest.as_deref()),
            (Some("V_1.2"), Some(DIGEST))
        );
        let url = OciUrl::parse("oci://[::1]:5000/m").unwrap();
        assert_eq!(
            (url.tag.as_deref(), url.manifest_reference()),
            (None, "latest")
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
            ("oci://r.example.com/m:-v1", "the tag \"-v1\""),
            ("oci://r.example.com/m:a/b", "component \"m:a\""),
            ("oci://r.example.com//m", "component \"\""),
            (
                "oci://r.example.com:x/m",
                "the registry \"r.example.com:x\"",
            ),
            ("oci://r.example.com/m@md5:0", "not sha256"),
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
                "mediaType": MANIFEST_MEDIA_TYPE,
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
        let odd = serde_json::json!({"mediaType": MODEL_MEDIA_TYPE, "digest": "sha256:../../x", "size": 1});
        let err = model_layer(&manifest(vec![odd])).unwrap_err();
        assert!(
            err.contains("the model layer's digest is not sha256"),
            "{err}"
        );
        // The manifest is the registry's answer: its words never show in a reason.
        let echo = serde_json::json!({"mediaType": MODEL_MEDIA_TYPE, "digest": "AKIAEXAMPLEINTERNAL", "size": 1});
        let err = model_layer(&manifest(vec![echo])).unwrap_err();
        assert!(!err.contains("AKIA"), "{err}");
        let err = model_layer(br#"{"layers": "AKIAEXAMPLEINTERNAL"}"#).unwrap_err();
        assert!(
            err.contains("(line 1, column") && !err.contains("AKIA"),
            "{err}"
        );
    }

    mod fake {
        //! A registry on loopback behind Bearer tokens (a pull token cannot write), whose blobs
        //! are served by a storage on another host it redirects to.

        use std::collections::HashMap;
        use std::sync::{Arc, Mutex};

        use axum::Router;
        use axum::body::Bytes;
        use axum::extract::{Path, Query, State};
        use axum::http::header::{AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
        use axum::http::{HeaderMap, Method, StatusCode};
        use axum::response::{IntoResponse, Response};

        use super::super::digest_of;
        use crate::registry::auth::basic_token;

        pub const PASSWORD: &str = "fake-s3cret";

        #[derive(Default)]
        pub struct Seen {
            pub blobs: HashMap<String, Vec<u8>>,
            pub manifests: HashMap<String, Vec<u8>>,
            pub uploads: usize,
            pub challenges: usize,
            /// The scopes tokens were asked for.
            pub scopes: Vec<String>,
            /// The Authorization header of each request the storage got.
            pub storage_authorizations: Vec<Option<String>>,
        }

        #[derive(Clone)]
        pub struct Fake {
            pub seen: Arc<Mutex<Seen>>,
            /// `127.0.0.1:<port>`: the registry.
            pub host: String,
            /// `localhost:<port>`: its blob storage.
            storage: String,
        }

        fn errors(status: StatusCode, code: &str) -> Response {
            (status, crate::testing::registry_error(code)).into_response()
        }

        async fn v2(
            State(fake): State<Fake>,
            method: Method,
            headers: HeaderMap,
            Path(rest): Path<String>,
            Query(query): Query<HashMap<String, String>>,
            body: Bytes,
        ) -> Response {
            let token = headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let writes = method == Method::POST || method == Method::PUT;
            let mut seen = fake.seen.lock().unwrap();
            if !matches!(
                (token, writes),
                (Some("tok-push"), _) | (Some("tok-pull"), false)
            ) {
                seen.challenges += 1;
                let challenge = format!(
                    r#"Bearer realm="http://{}/token",service="fake",scope="repository:models/american:pull""#,
                    fake.host
                );
                return (StatusCode::UNAUTHORIZED, [(WWW_AUTHENTICATE, challenge)]).into_response();
            }
            if method == Method::POST && rest.ends_with("/blobs/uploads/") {
                let location = format!("/v2/{rest}1");
                return (StatusCode::ACCEPTED, [(LOCATION, location)]).into_response();
            }
            if method == Method::PUT && rest.contains("/blobs/uploads/") {
                let digest = query.get("digest").cloned().unwrap_or_default();
                if digest_of(&body) != digest {
                    return errors(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
                }
                seen.uploads += 1;
                seen.blobs.insert(digest, body.to_vec());
                return StatusCode::CREATED.into_response();
            }
            if let Some((_, digest)) = rest.split_once("/blobs/") {
                return match (seen.blobs.contains_key(digest), method) {
                    (false, _) => errors(StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
                    (true, Method::HEAD) => StatusCode::OK.into_response(),
                    (true, _) => {
                        let location = format!("http://{}/{digest}", fake.storage);
                        (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, location)]).into_response()
                    }
                };
            }
            let Some((_, reference)) = rest.split_once("/manifests/") else {
                return errors(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
            };
            if method == Method::PUT {
                let digest = digest_of(&body);
                seen.manifests.insert(reference.to_string(), body.to_vec());
                seen.manifests.insert(digest.clone(), body.to_vec());
                return (StatusCode::CREATED, [("docker-content-digest", digest)]).into_response();
            }
            match seen.manifests.get(reference) {
                Some(manifest) => manifest.clone().into_response(),
                None => errors(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            }
        }

        async fn token(
            State(fake): State<Fake>,
            headers: HeaderMap,
            Query(query): Query<HashMap<String, String>>,
        ) -> Response {
            let alice = format!("Basic {}", basic_token("alice", PASSWORD));
            if headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(alice.as_str()) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            let scope = query.get("scope").cloned().unwrap_or_default();
            let token = if scope.ends_with(":pull,push") {
                "tok-push"
            } else {
                "tok-pull"
            };
            fake.seen.lock().unwrap().scopes.push(scope);
            format!(r#"{{"token":"{token}"}}"#).into_response()
        }

        async fn storage(
            State(fake): State<Fake>,
            headers: HeaderMap,
            Path(digest): Path<String>,
        ) -> Response {
            let mut seen = fake.seen.lock().unwrap();
            let authorization = headers
                .get(AUTHORIZATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            seen.storage_authorizations.push(authorization);
            match seen.blobs.get(&digest) {
                Some(blob) => blob.clone().into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }

        /// Starts the registry and its storage.
        pub async fn start() -> Fake {
            let registry = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let store = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let fake = Fake {
                seen: Arc::default(),
                host: registry.local_addr().unwrap().to_string(),
                storage: format!("localhost:{}", store.local_addr().unwrap().port()),
            };
            let app = Router::new()
                .route("/v2/{*rest}", axum::routing::any(v2))
                .route("/token", axum::routing::get(token))
                .with_state(fake.clone());
            tokio::spawn(async move { axum::serve(registry, app).await });
            let app = Router::new()
                .route("/{digest}", axum::routing::get(storage))
                .with_state(fake.clone());
            tokio::spawn(async move { axum::serve(store, app).await });
            fake
        }
    }

    fn docker_config(host: &str, password: &str) -> DockerConfig {
        let json =
            serde_json::json!({"auths": {host: {"username": "alice", "password": password}}});
        DockerConfig::parse(json.to_string().as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn artifacts_round_trip_through_bearer_auth_and_a_blob_redirect() {
        let fake = fake::start().await;
        let config = docker_config(&fake.host, fake::PASSWORD);
        let limit = Duration::from_secs(5);
        let tag = OciUrl::parse(&format!("oci://{}/models/american:v1", fake.host)).unwrap();
        let model = b"model bytes".to_vec();
        let pushed = push(&tag, Some(&config), None, limit, model.clone(), "m.bin")
            .await
            .unwrap();
        let digest = digest_of(&artifact_manifest(&model, "m.bin"));
        assert_eq!(pushed, tag.pinned(&digest));
        // Pushed again: the registry has both blobs, nothing is uploaded.
        push(&tag, Some(&config), None, limit, model.clone(), "m.bin")
            .await
            .unwrap();
        let pinned = OciUrl::parse(&pushed).unwrap();
        for url in [&pinned, &tag] {
            let fetched = fetch(url, Some(&config), None, limit, 1 << 20).await;
            assert_eq!(fetched.as_deref(), Ok(&model[..]));
        }
        {
            let seen = fake.seen.lock().unwrap();
            assert_eq!(seen.uploads, 2);
            // One challenge per session, answered once: the token is reused after it.
            assert_eq!(seen.challenges, 4);
            let push_scope = "repository:models/american:pull,push".to_string();
            let pull_scope = "repository:models/american:pull".to_string();
            assert_eq!(
                seen.scopes,
                [
                    push_scope.clone(),
                    push_scope,
                    pull_scope.clone(),
                    pull_scope
                ]
            );
            // The storage got the layer twice, never with the registry's token.
            assert_eq!(seen.storage_authorizations, [None, None]);
        }

        let err = fetch(&pinned, Some(&config), None, limit, 5)
            .await
            .unwrap_err();
        assert!(
            err.contains("11 bytes is more than the 5-byte limit"),
            "{err}"
        );
        let wrong = docker_config(&fake.host, "not-the-password");
        for url in [&pinned, &tag] {
            let err = fetch(url, Some(&wrong), None, limit, 1 << 20)
                .await
                .unwrap_err();
            assert!(err.contains("refused the credentials"), "{err}");
            assert!(!err.contains("not-the-password"), "{err}");
        }
        let err = push(&tag, Some(&wrong), None, limit, model.clone(), "m.bin")
            .await
            .unwrap_err();
        assert!(err.contains("refused the credentials"), "{err}");
        let missing = OciUrl::parse(&format!("oci://{}/models/american:v2", fake.host)).unwrap();
        let err = fetch(&missing, Some(&config), None, limit, 1 << 20)
            .await
            .unwrap_err();
        assert!(
            err.starts_with("not found") && err.contains("no manifest v2 in models/american"),
            "{err}"
        );
        let other = OciUrl::parse(&pinned.pinned(&digest_of(b"another manifest"))).unwrap();
        let err = fetch(&other, Some(&config), None, limit, 1 << 20)
            .await
            .unwrap_err();
        assert!(err.starts_with("not found"), "{err}");

        // A registry whose storage returns other bytes than the layer's digest, or a manifest
        // other than the pinned one under the pinned digest.
        fake.seen
            .lock()
            .unwrap()
            .blobs
            .insert(digest_of(&model), b"MODEL BYTES".to_vec());
        let err = fetch(&tag, Some(&config), None, limit, 1 << 20)
            .await
            .unwrap_err();
        assert!(
            err.contains("the layer's bytes do not match its digest"),
            "{err}"
        );
        let manifest = fake.seen.lock().unwrap().manifests["v1"].clone();
        fake.seen
            .lock()
            .unwrap()
            .manifests
            .insert(other.digest.clone().unwrap(), manifest);
        let err = fetch(&other, Some(&config), None, limit, 1 << 20)
            .await
            .unwrap_err();
        assert!(err.contains("does not match the pinned digest"), "{err}");
    }
}
