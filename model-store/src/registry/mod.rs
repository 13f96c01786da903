//! A client of the registry HTTP API (OCI distribution, Docker Registry API v2) on reqwest: how
//! `oci://` model artifacts ([`crate::oci`]) and the operator's image pre-flight speak to registries.
//!
//! A [`Session`] sends requests for one repository and answers at most one 401: the
//! `WWW-Authenticate` challenge with the credentials (Basic), or with a token fetched from the
//! challenge's realm (Bearer) for the session's [`Access`]. The `Authorization` it found is reused
//! for the session's later requests, and only for those to the registry itself (an upload URL or a
//! redirect to another host never gets it: reqwest drops it on redirects to another host, scheme or
//! port). Loopback registries are spoken to over plain HTTP, all others over HTTPS, and credentials
//! never go over plain HTTP to a token realm that is not loopback. Bodies are read bounded. A
//! [`Failure`] says what went wrong in words that never hold a credential or a token.
//!
//! Credentials come from a docker config ([`auth`]); the registry's names (hosts, repositories, tags,
//! digests) are checked by [`name`].

pub mod auth;
pub mod name;

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use self::auth::{Credentials, basic_token};
use crate::transport::{certificates, describe_reqwest};

/// Largest manifest, token or error body read; real ones are a few KiB.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// The error codes of the distribution spec (and Docker's TOOMANYREQUESTS): the only ones a message
/// names. NB: a registry host may be any server a team names (a cluster-internal one too), so what
/// its body says beyond these is never shown.
pub const ERROR_CODES: [&str; 14] = [
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];
/// Redirects followed: registries send blobs to their storage with one.
const MAX_REDIRECTS: usize = 3;

/// Why a registry request did not give what was asked for, by cause (callers tell them apart: the
/// operator's status reasons). The reason never holds a credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The registry (or its token service) refused the credentials, or wants some and has none.
    #[error("{0}")]
    Unauthorized(String),
    /// The registry has no such repository, manifest or blob.
    #[error("{0}")]
    NotFound(String),
    /// The registry could not be reached, failed, or answered something unusable.
    #[error("{0}")]
    Unreachable(String),
}

impl Failure {
    pub fn reason(&self) -> &str {
        match self {
            Self::Unauthorized(reason) | Self::NotFound(reason) | Self::Unreachable(reason) => {
                reason
            }
        }
    }
}

/// What a session may do in its repository: the scope of the tokens it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

impl Access {
    /// `repository:<repository>:pull` or `…:pull,push`.
    pub fn scope(self, repository: &str) -> String {
        match self {
            Self::Pull => format!("repository:{repository}:pull"),
            Self::Push => format!("repository:{repository}:pull,push"),
        }
    }
}

/// An answered request: status, headers and (when read) the body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The status and headers of `response`, and at most `limit` bytes of its body (none when `None`).
    pub async fn read(mut response: Response, limit: Option<usize>) -> Result<Self, Failure> {
        let body = match limit {
            Some(limit) => read_at_most(&mut response, limit as u64)
                .await?
                .ok_or_else(|| {
                    Failure::Unreachable(format!(
                        "it sent more than {} MiB, more than any manifest",
                        limit >> 20
                    ))
                })?,
            None => Vec::new(),
        };
        Ok(Self {
            status: response.status(),
            headers: response.headers().clone(),
            body,
        })
    }

    /// A well-formed `Docker-Content-Digest` (`sha256:<64 hex>`), if the registry sent one.
    pub fn digest_header(&self) -> Option<String> {
        let digest = self.headers.get("docker-content-digest")?.to_str().ok()?;
        let hex = digest.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| digest.to_ascii_lowercase())
    }

    /// The `errors[].code`s of a registry error body (`{"errors":[{"code":"MANIFEST_UNKNOWN",…}]}`)
    /// that are [`ERROR_CODES`]; any other code is the server's own words and is dropped.
    pub fn error_codes(&self) -> Vec<&'static str> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        value
            .get("errors")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("code").and_then(|c| c.as_str()))
            .filter_map(|code| ERROR_CODES.iter().copied().find(|known| *known == code))
            .collect()
    }
}

/// What a failed answer to a request for `what` (`manifest 0.2`, `blob sha256:…`) in `repository`
/// means. `authenticated`: credentials or a token were sent.
pub fn classify(answer: &Answer, repository: &str, what: &str, authenticated: bool) -> Failure {
    let codes = answer.error_codes();
    let has = |code: &str| codes.contains(&code);
    let status = answer.status;
    if status == StatusCode::NOT_FOUND
        || has("MANIFEST_UNKNOWN")
        || has("NAME_UNKNOWN")
        || has("BLOB_UNKNOWN")
    {
        return Failure::NotFound(if has("NAME_UNKNOWN") {
            format!("it has no repository {repository}")
        } else {
            format!("it has no {what} in {repository}")
        });
    }
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        || has("UNAUTHORIZED")
        || has("DENIED")
    {
        return Failure::Unauthorized(if authenticated {
            format!("it answered HTTP {status} to the credentials")
        } else {
            format!("it answered HTTP {status}")
        });
    }
    Failure::Unreachable(format!("it answered HTTP {status}"))
}

/// Reads `response`'s body; `None` when it is longer than `limit` bytes (refused before reading
/// when the registry says so).
pub async fn read_at_most(response: &mut Response, limit: u64) -> Result<Option<Vec<u8>>, Failure> {
    if response.content_length().is_some_and(|len| len > limit) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Failure::Unreachable(describe_reqwest(&e)))?
    {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// A registry API client; cheap to clone (one connection pool).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    /// A client whose every request (connect within `connect`, send, read) finishes within
    /// `timeout`, trusting the PEM certificates `ca_pem` on top of the platform's roots.
    pub fn new(
        timeout: Duration,
        connect: Duration,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, String> {
        let mut builder = crate::tls::bounded_client(timeout, connect)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS));
        if let Some(pem) = ca_pem {
            // On top of the platform's roots (rustls-platform-verifier's extra roots).
            builder = builder.tls_certs_merge(certificates(pem)?);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {}", describe_reqwest(&e)))?;
        Ok(Self { http })
    }

    /// Requests to `repository` of the registry `host` (`name[:port]`), with `credentials` for a challenge.
    pub fn session<'a>(
        &'a self,
        host: &str,
        repository: &str,
        access: Access,
        credentials: Option<&'a Credentials>,
    ) -> Result<Session<'a>, Failure> {
        let base = Url::parse(&base_url(host))
            .map_err(|_| Failure::Unreachable(format!("{host:?} is not a host name or address")))?;
        Ok(Session {
            client: self,
            base,
            repository: repository.to_string(),
            access,
            credentials,
            authorization: None,
        })
    }

    async fn execute(&self, request: reqwest::Request) -> Result<Response, Failure> {
        self.http
            .execute(request)
            .await
            .map_err(|e| Failure::Unreachable(describe_reqwest(&e)))
    }

    /// A token for `scope` from a Bearer challenge's `realm` (basic-auth'd with `credentials` if
    /// any; public repositories get an anonymous token).
    pub async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String, Failure> {
        let mut url = Url::parse(realm)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| {
                // NB: the realm is the server's own words (a header): never quoted.
                Failure::Unreachable("its token realm is not an http(s) URL".into())
            })?;
        // A registry must not be able to send the password in the clear to a host of its choosing.
        if credentials.is_some()
            && url.scheme() == "http"
            && !url.host_str().is_some_and(is_loopback)
        {
            return Err(Failure::Unauthorized(
                "its token realm is plain HTTP, and credentials are only sent over HTTPS".into(),
            ));
        }
        url.query_pairs_mut().append_pair("scope", scope);
        if let Some(service) = service {
            url.query_pairs_mut().append_pair("service", service);
        }
        let mut request = self
            .http
            .get(url)
            .build()
            .map_err(|e| Failure::Unreachable(describe_reqwest(&e)))?;
        if let Some(credentials) = credentials {
            request
                .headers_mut()
                .insert(AUTHORIZATION, sensitive(basic(credentials))?);
        }
        let answer = Answer::read(self.execute(request).await?, Some(MAX_BODY_BYTES)).await?;
        if matches!(
            answer.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(Failure::Unauthorized(format!(
                "its token service answered HTTP {}",
                answer.status
            )));
        }
        if !answer.status.is_success() {
            return Err(Failure::Unreachable(format!(
                "its token service answered HTTP {}",
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
            .ok_or_else(|| Failure::Unreachable("its token service sent no token".into()))
    }
}

/// Requests to one repository of one registry, answering the first 401 with the credentials.
pub struct Session<'a> {
    client: &'a Client,
    /// `http(s)://host[:port]/`: what the `Authorization` is for.
    base: Url,
    repository: String,
    access: Access,
    credentials: Option<&'a Credentials>,
    /// Found by answering a challenge; sent with every later request to `base`.
    authorization: Option<HeaderValue>,
}

impl Session<'_> {
    /// `<base>/v2/<repository>/<tail>` (`manifests/0.2`, `blobs/sha256:…`, `blobs/uploads/`).
    pub fn url(&self, tail: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("/v2/{}/{tail}", self.repository));
        url
    }

    /// A `Location` the registry sent (an upload URL): absolute, or relative to the registry.
    pub fn location(&self, location: &str) -> Result<Url, Failure> {
        self.base.join(location).map_err(|_| {
            // NB: not quoted: the header is the server's own words.
            Failure::Unreachable("it sent an unusable Location header".into())
        })
    }

    /// The repository the session is for.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// Whether credentials or a token go with the requests (a challenge was answered).
    pub fn authenticated(&self) -> bool {
        self.authorization.is_some()
    }

    /// A request to send with [`send`](Self::send) or [`answer`](Self::answer).
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.client.http.request(method, url)
    }

    /// Sends `request`, with the session's `Authorization` when it goes to the registry. A 401
    /// from the registry, the first time, is answered (see [`Session`]) and the request sent again.
    pub async fn send(&mut self, request: RequestBuilder) -> Result<Response, Failure> {
        let mut request = request
            .build()
            .map_err(|e| Failure::Unreachable(describe_reqwest(&e)))?;
        let to_registry = request.url().origin() == self.base.origin();
        if !to_registry {
            return self.client.execute(request).await;
        }
        if let Some(authorization) = &self.authorization {
            request
                .headers_mut()
                .insert(AUTHORIZATION, authorization.clone());
            return self.client.execute(request).await;
        }
        // Bodies here are bytes, which clone cheaply.
        let again = request.try_clone();
        let response = self.client.execute(request).await?;
        let Some(mut again) = again.filter(|_| response.status() == StatusCode::UNAUTHORIZED)
        else {
            return Ok(response);
        };
        let authorization = sensitive(self.authorize(response.headers()).await?)?;
        again
            .headers_mut()
            .insert(AUTHORIZATION, authorization.clone());
        self.authorization = Some(authorization);
        self.client.execute(again).await
    }

    /// [`send`](Self::send)s `request` and reads at most `body_limit` bytes of the answer's body
    /// (none when `None`).
    pub async fn answer(
        &mut self,
        request: RequestBuilder,
        body_limit: Option<usize>,
    ) -> Result<Answer, Failure> {
        let response = self.send(request).await?;
        Answer::read(response, body_limit).await
    }

    /// The `Authorization` header value that answers the challenge of a 401.
    async fn authorize(&self, headers: &HeaderMap) -> Result<String, Failure> {
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .ok_or_else(|| {
                Failure::Unauthorized("it answered 401 without a Basic or Bearer challenge".into())
            })?;
        match challenge {
            Challenge::Basic => self.credentials.map(basic).ok_or_else(|| {
                Failure::Unauthorized(
                    "it wants credentials and the Predictor has none for it".into(),
                )
            }),
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                // The challenge names what the first request needed; a pushing session needs
                // its push scope for all the requests after it.
                let scope = match self.access {
                    Access::Pull => scope,
                    Access::Push => None,
                }
                .unwrap_or_else(|| self.access.scope(&self.repository));
                let token = self
                    .client
                    .token(&realm, service.as_deref(), &scope, self.credentials)
                    .await?;
                Ok(format!("Bearer {token}"))
            }
        }
    }
}

/// `authorization` as a header value that `Debug` output does not show.
fn sensitive(authorization: String) -> Result<HeaderValue, Failure> {
    let mut value = HeaderValue::from_str(&authorization)
        .map_err(|_| Failure::Unauthorized("its token is not a header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// `Basic <base64 of user:password>`.
fn basic(credentials: &Credentials) -> String {
    format!(
        "Basic {}",
        basic_token(&credentials.username, &credentials.password)
    )
}

/// Plain HTTP for loopback registries (as Docker and containerd allow by default), HTTPS elsewhere.
pub fn base_url(host: &str) -> String {
    let scheme = if is_loopback(host) { "http" } else { "https" };
    format!("{scheme}://{host}")
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
        assert_eq!(Access::Pull.scope("a/b"), "repository:a/b:pull");
        assert_eq!(Access::Push.scope("a/b"), "repository:a/b:pull,push");
    }

    fn client() -> Client {
        Client::new(Duration::from_secs(5), Duration::from_secs(5), None).unwrap()
    }

    #[tokio::test]
    async fn credentials_never_go_to_a_plain_http_realm_elsewhere() {
        let alice = Credentials {
            username: "alice".into(),
            password: "s3cret-pw".into(),
        };
        let failure = client()
            .token(
                "http://auth.example.org/token?secret=1",
                None,
                "repository:team/app:pull",
                Some(&alice),
            )
            .await
            .unwrap_err();
        assert!(matches!(failure, Failure::Unauthorized(_)), "{failure:?}");
        // The realm is the registry's own words (a header): never quoted.
        assert_eq!(
            failure.reason(),
            "its token realm is plain HTTP, and credentials are only sent over HTTPS"
        );
        let failure = client()
            .token("ftp://auth.example.org/t", None, "s", None)
            .await
            .unwrap_err();
        assert!(
            failure.reason().contains("not an http(s) URL"),
            "{failure:?}"
        );
    }

    #[test]
    fn sessions_address_their_repository_and_resolve_upload_locations() {
        let client = client();
        let session = client
            .session("127.0.0.1:5000", "team/app", Access::Push, None)
            .unwrap();
        assert_eq!(
            session.url("blobs/uploads/").as_str(),
            "http://127.0.0.1:5000/v2/team/app/blobs/uploads/"
        );
        assert_eq!(
            session
                .location("/v2/team/app/blobs/uploads/u1?state=x")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:5000/v2/team/app/blobs/uploads/u1?state=x"
        );
        assert_eq!(
            session
                .location("https://storage.example.org/u1")
                .unwrap()
                .as_str(),
            "https://storage.example.org/u1"
        );
        assert!(!session.authenticated());
        let failure = client
            .session("bad host", "team/app", Access::Pull, None)
            .err()
            .unwrap();
        assert!(matches!(failure, Failure::Unreachable(_)), "{failure:?}");
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        for pem in [&b"not a certificate"[..], b""] {
            let err =
                Client::new(Duration::from_secs(1), Duration::from_secs(1), Some(pem)).unwrap_err();
            assert!(err.contains("holds no PEM certificate"), "{err}");
        }
    }

    #[test]
    fn failed_answers_are_classified() {
        let answer = |status: u16, body: &str| Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        };
        let errors = |code: &str| format!(r#"{{"errors":[{{"code":"{code}","message":"x"}}]}}"#);
        let table = [
            (
                answer(404, ""),
                false,
                Failure::NotFound("it has no manifest 0.3 in team/app".into()),
            ),
            (
                answer(404, &errors("NAME_UNKNOWN")),
                false,
                Failure::NotFound("it has no repository team/app".into()),
            ),
            (
                answer(401, ""),
                true,
                Failure::Unauthorized(
                    "it answered HTTP 401 Unauthorized to the credentials".into(),
                ),
            ),
            (
                answer(400, &errors("DENIED")),
                false,
                Failure::Unauthorized("it answered HTTP 400 Bad Request".into()),
            ),
            (
                answer(503, ""),
                true,
                Failure::Unreachable("it answered HTTP 503 Service Unavailable".into()),
            ),
        ];
        for (answer, authenticated, expected) in table {
            assert_eq!(
                classify(&answer, "team/app", "manifest 0.3", authenticated),
                expected
            );
        }
    }
}
