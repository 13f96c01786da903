//! Asks a registry (Docker Registry HTTP API v2 / OCI distribution) which manifest digest an image
//! tag points at, so a Predictor can be checked — and pinned — before it rolls out.
//!
//! One `HEAD /v2/<repository>/manifests/<tag>` (its `Docker-Content-Digest` header; when a registry
//! leaves it out, a `GET` whose body is hashed), after at most one authentication round: on 401 the
//! `WWW-Authenticate` challenge is answered with the credentials (Basic), or with a token fetched
//! from the challenge's realm (Bearer). Bounded: timeouts, at most 4 MiB per body. Credentials are
//! sent only as `Authorization` headers and never appear in errors or logs. The registry API itself
//! is the model stores' client ([`model_store::registry`], also what `oci://` models are pulled with);
//! this module asks it about manifests and turns its failures into the operator's errors.

use std::time::Duration;

use model_store::registry::{Access, Answer, Client, Failure, Session, classify};
use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};

use crate::error::{Error, Result};
use crate::image::credentials::Credentials;
use crate::image::reference::ImageReference;
use crate::status::reason;

pub use model_store::registry::MAX_BODY_BYTES;

/// Manifest media types asked for: multi-platform indexes and single manifests, OCI and Docker, so
/// the digest is the one the runtime pulls by.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A registry API client for image manifests; cheap to share (one connection pool).
#[derive(Clone)]
pub struct Resolver {
    client: Client,
}

impl Resolver {
    /// A client whose every request (connect, send, read) finishes within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self> {
        let client = Client::new(timeout, CONNECT_TIMEOUT, None).map_err(|reason| {
            Error::RegistryUnreachable {
                registry: "-".into(),
                image: "-".into(),
                reason,
            }
        })?;
        Ok(Self { client })
    }

    /// The `sha256:…` digest of the manifest `image` names right now, using `credentials` if the
    /// registry asks for them.
    pub async fn resolve(
        &self,
        image: &ImageReference,
        credentials: Option<&Credentials>,
    ) -> Result<String> {
        let failed = |failure| refused(image, failure);
        let mut session = self
            .client
            .session(
                image.api_host(),
                &image.repository,
                Access::Pull,
                credentials,
            )
            .map_err(failed)?;
        let what = format!("manifest {}", image.manifest_reference());
        let mut answer = manifest(&mut session, Method::HEAD, image)
            .await
            .map_err(failed)?;
        if answer.status.is_success()
            && let Some(digest) = answer.digest_header()
        {
            return Ok(digest);
        }
        // No digest header, or a registry that does not answer HEAD: GET it (and see the error code).
        if answer.status.is_success() || !is_classified(answer.status) {
            answer = manifest(&mut session, Method::GET, image)
                .await
                .map_err(failed)?;
            if answer.status.is_success() {
                return Ok(answer.digest_header().unwrap_or_else(|| {
                    format!("sha256:{}", predictor::model::sha256_hex(&answer.body))
                }));
            }
        }
        Err(failed(classify(
            &answer,
            &image.repository,
            &what,
            session.authenticated(),
        )))
    }
}

/// `HEAD` or `GET` (its body read, at most [`MAX_BODY_BYTES`]) of `image`'s manifest.
async fn manifest(
    session: &mut Session<'_>,
    method: Method,
    image: &ImageReference,
) -> std::result::Result<Answer, Failure> {
    let body_limit = (method == Method::GET).then_some(MAX_BODY_BYTES);
    let url = session.url(&format!("manifests/{}", image.manifest_reference()));
    let request = session.request(method, url).header(ACCEPT, MANIFEST_ACCEPT);
    session.answer(request, body_limit).await
}

/// The operator's error for a registry's failure about `image`.
fn refused(image: &ImageReference, failure: Failure) -> Error {
    let (registry, image) = (image.registry.clone(), image.to_string());
    match failure {
        Failure::Unauthorized(reason) => Error::RegistryUnauthorized {
            registry,
            image,
            reason,
        },
        Failure::NotFound(reason) => Error::ImageNotFound { image, reason },
        Failure::Unreachable(reason) => Error::RegistryUnreachable {
            registry,
            image,
            reason,
        },
    }
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

/// Statuses whose meaning needs no body.
fn is_classified(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    ) || status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap as Headers, HeaderValue};
    use axum::response::{IntoResponse, Response};
    use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
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

    fn basic(credentials: &Credentials) -> String {
        let token =
            model_store::registry::auth::basic_token(&credentials.username, &credentials.password);
        format!("Basic {token}")
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
        (status, model_store::testing::registry_error(code)).into_response()
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

    #[tokio::test]
    async fn credentials_never_go_to_a_plain_http_realm_elsewhere() {
        let image = image("registry.local", "team/app:0.2");
        let failure = Client::new(Duration::from_secs(5), CONNECT_TIMEOUT, None)
            .unwrap()
            .token(
                "http://auth.example.org/token?secret=1",
                None,
                "repository:team/app:pull",
                Some(&alice(PASSWORD)),
            )
            .await
            .unwrap_err();
        let err = refused(&image, failure);
        assert_eq!(rejection_reason(&err), Some("RegistryUnauthorized"));
        // The realm is the registry's own words (a header): the reason says what, not where.
        assert!(
            err.to_string().contains(
                "its token realm is plain HTTP, and credentials are only sent over HTTPS"
            ) && !err.to_string().contains("auth.example.org"),
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
