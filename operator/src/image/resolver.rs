//! Asks a registry (Docker Registry HTTP API v2 / OCI distribution) which manifest digest an image
//! tag points at, so a Predictor can be checked — and pinned — before it rolls out.
//!
//! One `HEAD /v2/<repository>/manifests/<tag>` (its `Docker-Content-Digest` header; when a registry
//! leaves it out, a `GET` whose body is hashed), after at most one authentication round: on 401 the
//! `WWW-Authenticate` challenge is answered with the credentials (Basic), or with a token fetched
//! from the challenge's realm (Bearer). Bounded: timeouts, at most 4 MiB per body. Credentials are
//! sent only as `Authorization` headers and never appear in errors or logs.

use std::time::Duration;

use predictor::oci::is_loopback;
use predictor::source::{describe_reqwest, redact};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use crate::error::{Error, Result};
use crate::image::credentials::Credentials;
use crate::image::reference::ImageReference;
use crate::status::reason;

/// Manifest media types asked for: multi-platform indexes and single manifests, OCI and Docker, so
/// the digest is the one the runtime pulls by.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";
/// Largest manifest or token response read; real ones are a few KiB.
pub const MAX_BODY_BYTES: usize = 4 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A registry API client; cheap to share (one connection pool).
#[derive(Clone)]
pub struct Resolver {
    http: reqwest::Client,
}

/// An answered request: status, headers and (for GET) the body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Resolver {
    /// A client whose every request (connect, send, read) finishes within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self> {
        let http = predictor::tls::bounded_client(timeout, CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| Error::RegistryUnreachable {
                registry: "-".into(),
                image: "-".into(),
                reason: format!("cannot build an HTTP client: {}", describe_reqwest(&e)),
            })?;
        Ok(Self { http })
    }

    /// The `sha256:…` digest of the manifest `image` names right now, using `credentials` if the
    /// registry asks for them.
    pub async fn resolve(
        &self,
        image: &ImageReference,
        credentials: Option<&Credentials>,
    ) -> Result<String> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            base_url(image.api_host()),
            image.repository,
            image.manifest_reference()
        );
        let mut authorization = None;
        let mut answer = self.request(image, Method::HEAD, &url, None).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            let header = self.authorize(image, &answer.headers, credentials).await?;
            answer = self
                .request(image, Method::HEAD, &url, Some(&header))
                .await?;
            authorization = Some(header);
        }
        if answer.status.is_success()
            && let Some(digest) = header_digest(&answer.headers)
        {
            return Ok(digest);
        }
        // No digest header, or a registry that does not answer HEAD: GET it (and see the error code).
        if answer.status.is_success() || !is_classified(answer.status) {
            answer = self
                .request(image, Method::GET, &url, authorization.as_deref())
                .await?;
            if answer.status.is_success() {
                return Ok(header_digest(&answer.headers).unwrap_or_else(|| {
                    format!("sha256:{}", predictor::model::sha256_hex(&answer.body))
                }));
            }
        }
        Err(classify(image, &answer, authorization.is_some()))
    }

    /// The `Authorization` header value that answers the challenge of a 401.
    async fn authorize(
        &self,
        image: &ImageReference,
        headers: &HeaderMap,
        credentials: Option<&Credentials>,
    ) -> Result<String> {
        let unauthorized = |reason: String| Error::RegistryUnauthorized {
            registry: image.registry.clone(),
            image: image.to_string(),
            reason,
        };
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .ok_or_else(|| {
                unauthorized("it answered 401 without a Basic or Bearer challenge".into())
            })?;
        match challenge {
            Challenge::Basic => credentials.map(basic).ok_or_else(|| {
                unauthorized("it wants credentials and the Predictor has none for it".into())
            }),
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope =
                    scope.unwrap_or_else(|| format!("repository:{}:pull", image.repository));
                let token = self
                    .token(image, &realm, service.as_deref(), &scope, credentials)
                    .await?;
                Ok(format!("Bearer {token}"))
            }
        }
    }

    /// A pull token from the Bearer challenge's `realm` (basic-auth'd with `credentials` if any;
    /// public images get an anonymous token).
    async fn token(
        &self,
        image: &ImageReference,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String> {
        let mut url = reqwest::Url::parse(realm)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| Error::RegistryUnreachable {
                registry: image.registry.clone(),
                image: image.to_string(),
                reason: format!("its token realm {} is not an http(s) URL", redact(realm)),
            })?;
        // A registry must not be able to send the password in the clear to a host of its choosing.
        if credentials.is_some()
            && url.scheme() == "http"
            && !url.host_str().is_some_and(is_loopback)
        {
            return Err(Error::RegistryUnauthorized {
                registry: image.registry.clone(),
                image: image.to_string(),
                reason: format!(
                    "its token realm {} is plain HTTP, and credentials are only sent over HTTPS",
                    redact(realm)
                ),
            });
        }
        url.query_pairs_mut().append_pair("scope", scope);
        if let Some(service) = service {
            url.query_pairs_mut().append_pair("service", service);
        }
        let mut request = self.http.get(url);
        if let Some(credentials) = credentials {
            request = request.header(AUTHORIZATION, basic(credentials));
        }
        let answer = send(image, request, true).await?;
        let realm = redact(realm);
        if matches!(
            answer.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(Error::RegistryUnauthorized {
                registry: image.registry.clone(),
                image: image.to_string(),
                reason: format!("its token service {realm} answered HTTP {}", answer.status),
            });
        }
        let unreachable = |reason: String| Error::RegistryUnreachable {
            registry: image.registry.clone(),
            image: image.to_string(),
            reason,
        };
        if !answer.status.is_success() {
            return Err(unreachable(format!(
                "its token service {realm} answered HTTP {}",
                answer.status
            )));
        }
        // Docker's token spec: `token`, or OAuth2's `access_token`.
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        ["token", "access_token"]
            .iter()
            .find_map(|key| body.get(key).and_then(|v| v.as_str()))
            .filter(|token| !token.is_empty())
            .map(str::to_string)
            .ok_or_else(|| unreachable(format!("its token service {realm} sent no token")))
    }

    async fn request(
        &self,
        image: &ImageReference,
        method: Method,
        url: &str,
        authorization: Option<&str>,
    ) -> Result<Answer> {
        let read_body = method == Method::GET;
        let mut request = self
            .http
            .request(method, url)
            .header(ACCEPT, MANIFEST_ACCEPT);
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        send(image, request, read_body).await
    }
}

/// Sends `request` and reads at most [`MAX_BODY_BYTES`] of its body (when `read_body`).
async fn send(
    image: &ImageReference,
    request: reqwest::RequestBuilder,
    read_body: bool,
) -> Result<Answer> {
    let unreachable = |reason: String| Error::RegistryUnreachable {
        registry: image.registry.clone(),
        image: image.to_string(),
        reason,
    };
    let mut response = request
        .send()
        .await
        .map_err(|e| unreachable(describe_reqwest(&e)))?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    if read_body {
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY_BYTES as u64)
        {
            return Err(unreachable(too_big()));
        }
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(describe_reqwest(&e)))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(unreachable(too_big()));
            }
            body.extend_from_slice(&chunk);
        }
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn too_big() -> String {
    format!(
        "it sent more than {} MiB, more than any manifest",
        MAX_BODY_BYTES >> 20
    )
}

/// Plain HTTP for loopback registries (as Docker and containerd allow by default), HTTPS elsewhere.
fn base_url(host: &str) -> String {
    let scheme = if is_loopback(host) { "http" } else { "https" };
    format!("{scheme}://{host}")
}

/// The condition reason of an image pre-flight failure (`None` for errors that are not one).
pub fn rejection_reason(error: &Error) -> Option<&'static str> {
    match error {
        Error::ImageNotFound { .. } => Some(reason::IMAGE_NOT_FOUND),
        // A Secret that holds no usable credentials is the same fix as a wrong password.
        Error::RegistryUnauthorized { .. } | Error::PullSecret { .. } => {
            Some(reason::REGISTRY_UNAUTHORIZED)
        }
        Error::RegistryUnreachable { .. } => Some(reason::REGISTRY_UNREACHABLE),
        Error::InvalidImage { .. } => Some(reason::INVALID_SPEC),
        _ => None,
    }
}

fn basic(credentials: &Credentials) -> String {
    let token = predictor::registry_auth::basic_token(&credentials.username, &credentials.password);
    format!("Basic {token}")
}

/// A well-formed `Docker-Content-Digest` (`sha256:<64 hex>`), if the registry sent one.
fn header_digest(headers: &HeaderMap) -> Option<String> {
    let digest = headers.get("docker-content-digest")?.to_str().ok()?;
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| digest.to_ascii_lowercase())
}

/// Statuses whose meaning needs no body.
fn is_classified(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    ) || status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// The error a failed manifest request means. `authenticated`: credentials or a token were sent.
fn classify(image: &ImageReference, answer: &Answer, authenticated: bool) -> Error {
    let codes = error_codes(&answer.body);
    let has = |code: &str| codes.iter().any(|c| c == code);
    let registry = image.registry.clone();
    let image_name = image.to_string();
    let status = answer.status;
    if status == StatusCode::NOT_FOUND || has("MANIFEST_UNKNOWN") || has("NAME_UNKNOWN") {
        let what = if has("NAME_UNKNOWN") {
            format!("it has no repository {}", image.repository)
        } else {
            format!(
                "it has no manifest {} in {}",
                image.manifest_reference(),
                image.repository
            )
        };
        return Error::ImageNotFound {
            image: image_name,
            reason: what,
        };
    }
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        || has("UNAUTHORIZED")
        || has("DENIED")
    {
        let reason = if authenticated {
            format!("it answered HTTP {status} to the credentials")
        } else {
            format!("it answered HTTP {status}")
        };
        return Error::RegistryUnauthorized {
            registry,
            image: image_name,
            reason,
        };
    }
    Error::RegistryUnreachable {
        registry,
        image: image_name,
        reason: format!("it answered HTTP {status}"),
    }
}

/// The `errors[].code` of a registry error body (`{"errors":[{"code":"MANIFEST_UNKNOWN",…}]}`).
fn error_codes(body: &[u8]) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    value
        .get("errors")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("code").and_then(|c| c.as_str()).map(str::to_string))
        .collect()
}

/// `Basic realm="x"` or `Bearer realm="…",service="…",scope="…"` (quoted values may hold commas).
fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(params);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `key="value", key2=token` pairs of an auth challenge.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text.trim();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            out.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    other => out.push(other),
                }
            }
            value = out;
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        pairs.push((key, value));
        rest = rest.trim_start().trim_start_matches(',').trim_start();
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap as Headers, HeaderValue};
    use axum::response::{IntoResponse, Response};
    use std::collections::HashMap;

    const MANIFEST: &[u8] =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    const PASSWORD: &str = "s3cret-pw";
    const TOKEN: &str = "tok-alice";

    #[derive(Clone, Copy, PartialEq)]
    enum Auth {
        Basic,
        Bearer,
    }

    #[derive(Clone)]
    struct Fake {
        auth: Auth,
        digest_header: bool,
        host: String,
    }

    fn alice(password: &str) -> Credentials {
        Credentials {
            username: "alice".into(),
            password: password.into(),
        }
    }

    fn manifest_digest() -> String {
        format!("sha256:{}", predictor::model::sha256_hex(MANIFEST))
    }

    fn errors(status: StatusCode, code: &str) -> Response {
        let body = format!(r#"{{"errors":[{{"code":"{code}","message":"x"}}]}}"#);
        (status, body).into_response()
    }

    /// `/v2/…` of a registry holding `team/app:0.2`, behind Basic or Bearer auth for alice.
    async fn manifests(
        State(fake): State<Fake>,
        headers: Headers,
        Path(rest): Path<String>,
    ) -> Response {
        let wanted = match fake.auth {
            Auth::Basic => basic(&alice(PASSWORD)),
            Auth::Bearer => format!("Bearer {TOKEN}"),
        };
        if headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(wanted.as_str()) {
            let challenge = match fake.auth {
                Auth::Basic => r#"Basic realm="fake registry""#.to_string(),
                Auth::Bearer => format!(
                    r#"Bearer realm="http://{}/token",service="fake",scope="repository:{}:pull""#,
                    fake.host,
                    rest.split("/manifests/").next().unwrap_or_default()
                ),
            };
            let mut response = errors(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_str(&challenge).unwrap());
            return response;
        }
        assert_eq!(headers.get(ACCEPT).unwrap(), MANIFEST_ACCEPT);
        let digest = manifest_digest();
        match rest.as_str() {
            r if r == "team/app/manifests/0.2" || r == format!("team/app/manifests/{digest}") => {
                let mut response = MANIFEST.into_response();
                if fake.digest_header {
                    response.headers_mut().insert(
                        "docker-content-digest",
                        HeaderValue::from_str(&digest).unwrap(),
                    );
                }
                response
            }
            "team/huge/manifests/1" => vec![b' '; MAX_BODY_BYTES + 1].into_response(),
            "team/flaky/manifests/1" => errors(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            r if r.starts_with("team/app/") => errors(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            _ => errors(StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
        }
    }

    /// The token service: a pull token for alice's password, for the scope the challenge named.
    async fn token(headers: Headers, Query(query): Query<HashMap<String, String>>) -> Response {
        let authorized = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
            == Some(basic(&alice(PASSWORD)).as_str());
        let scoped = query.get("service").map(String::as_str) == Some("fake")
            && query
                .get("scope")
                .is_some_and(|s| s.starts_with("repository:") && s.ends_with(":pull"));
        if !(authorized && scoped) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        format!(r#"{{"access_token":"{TOKEN}"}}"#).into_response()
    }

    /// A fake registry on loopback; its host (`127.0.0.1:<port>`).
    async fn fake_registry(auth: Auth, digest_header: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let fake = Fake {
            auth,
            digest_header,
            host: host.clone(),
        };
        let app = Router::new()
            .route("/v2/{*rest}", axum::routing::any(manifests))
            .route("/token", axum::routing::get(token))
            .with_state(fake);
        tokio::spawn(async move { axum::serve(listener, app).await });
        host
    }

    fn image(host: &str, rest: &str) -> ImageReference {
        ImageReference::parse(&format!("{host}/{rest}")).unwrap()
    }

    fn resolver() -> Resolver {
        Resolver::new(Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn a_tag_resolves_to_its_manifest_digest_through_basic_and_bearer_auth() {
        let alice = alice(PASSWORD);
        for auth in [Auth::Basic, Auth::Bearer] {
            // Without the header, the digest is the sha256 of the manifest a GET returns.
            for digest_header in [true, false] {
                let host = fake_registry(auth, digest_header).await;
                let digest = resolver()
                    .resolve(&image(&host, "team/app:0.2"), Some(&alice))
                    .await
                    .unwrap();
                assert_eq!(digest, manifest_digest());
                let pinned = image(&host, &format!("team/app@{digest}"));
                assert_eq!(
                    resolver().resolve(&pinned, Some(&alice)).await.unwrap(),
                    digest
                );
            }
        }
    }

    #[tokio::test]
    async fn missing_tags_and_repositories_are_image_not_found() {
        let alice = alice(PASSWORD);
        for auth in [Auth::Basic, Auth::Bearer] {
            let host = fake_registry(auth, true).await;
            let err = resolver()
                .resolve(&image(&host, "team/app:0.3"), Some(&alice))
                .await
                .unwrap_err();
            assert_eq!(err.metric_label(), "image_not_found", "{err}");
            assert!(
                err.to_string().contains("no manifest 0.3 in team/app"),
                "{err}"
            );
            let err = resolver()
                .resolve(&image(&host, "nothere/app:1"), Some(&alice))
                .await
                .unwrap_err();
            assert_eq!(err.metric_label(), "image_not_found", "{err}");
        }
    }

    #[tokio::test]
    async fn wrong_or_missing_credentials_are_unauthorized_and_never_shown() {
        for auth in [Auth::Basic, Auth::Bearer] {
            let host = fake_registry(auth, true).await;
            let wrong = alice("not-the-password");
            let err = resolver()
                .resolve(&image(&host, "team/app:0.2"), Some(&wrong))
                .await
                .unwrap_err();
            assert_eq!(err.metric_label(), "registry_unauthorized", "{err}");
            let text = format!("{err} {err:?}");
            assert!(
                !text.contains("not-the-password") && !text.contains("alice"),
                "{text}"
            );
            assert!(text.contains("spec.imagePullSecrets"), "{text}");
            let err = resolver()
                .resolve(&image(&host, "team/app:0.2"), None)
                .await
                .unwrap_err();
            assert_eq!(err.metric_label(), "registry_unauthorized", "{err}");
        }
    }

    #[tokio::test]
    async fn failing_unreachable_or_oversized_registries_are_unreachable() {
        let alice = alice(PASSWORD);
        let host = fake_registry(Auth::Basic, false).await;
        for (rest, expected) in [
            ("team/flaky:1", "HTTP 503"),
            ("team/huge:1", "more than 4 MiB"),
        ] {
            let err = resolver()
                .resolve(&image(&host, rest), Some(&alice))
                .await
                .unwrap_err();
            assert_eq!(err.metric_label(), "registry_unreachable", "{err}");
            assert!(err.to_string().contains(expected), "{err}");
        }
        // Port 9 (discard) on loopback refuses the connection.
        let err = resolver()
            .resolve(&image("127.0.0.1:9", "team/app:0.2"), Some(&alice))
            .await
            .unwrap_err();
        assert_eq!(err.metric_label(), "registry_unreachable", "{err}");
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }

    #[test]
    fn challenges_and_schemes() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer realm=https://t.example/token, service="s\"q""#),
            Some(Challenge::Bearer {
                realm: "https://t.example/token".into(),
                service: Some("s\"q".into()),
                scope: None,
            })
        );
        assert_eq!(parse_challenge(r#"Bearer service="no realm""#), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(base_url("localhost"), "http://localhost");
        assert_eq!(base_url("[::1]:5000"), "http://[::1]:5000");
        assert_eq!(
            base_url("registry.local:5000"),
            "https://registry.local:5000"
        );
        assert_eq!(
            base_url("registry-1.docker.io"),
            "https://registry-1.docker.io"
        );
        assert!(is_loopback("127.0.0.2") && !is_loopback("10.0.0.1:5000"));
    }

    #[tokio::test]
    async fn credentials_never_go_to_a_plain_http_realm_elsewhere() {
        let image = image("registry.local", "team/app:0.2");
        let err = resolver()
            .token(
                &image,
                "http://auth.example.org/token?secret=1",
                None,
                "repository:team/app:pull",
                Some(&alice(PASSWORD)),
            )
            .await
            .unwrap_err();
        assert_eq!(rejection_reason(&err), Some("RegistryUnauthorized"));
        assert!(
            err.to_string()
                .contains("http://auth.example.org/token?***"),
            "{err}"
        );
    }

    #[test]
    fn failures_map_to_condition_reasons() {
        let image = "r.local/a:1".to_string();
        let registry = "r.local".to_string();
        let reason = String::new();
        let table = [
            (
                Error::ImageNotFound {
                    image: image.clone(),
                    reason: reason.clone(),
                },
                Some("ImageNotFound"),
            ),
            (
                Error::RegistryUnauthorized {
                    registry: registry.clone(),
                    image: image.clone(),
                    reason: reason.clone(),
                },
                Some("RegistryUnauthorized"),
            ),
            (
                Error::PullSecret {
                    secret: "s".into(),
                    reason: reason.clone(),
                },
                Some("RegistryUnauthorized"),
            ),
            (
                Error::RegistryUnreachable {
                    registry,
                    image: image.clone(),
                    reason: reason.clone(),
                },
                Some("RegistryUnreachable"),
            ),
            (
                Error::InvalidImage {
                    image,
                    reason: reason.clone(),
                },
                Some("InvalidSpec"),
            ),
            (Error::MissingField("metadata.uid"), None),
        ];
        for (error, expected) in table {
            assert_eq!(rejection_reason(&error), expected, "{error}");
        }
    }
}
