//! Registry credentials from a docker config (`.dockerconfigjson` of a Kubernetes Secret, `auth.json`,
//! `~/.docker/config.json`): `{"auths": {"<host>": {"auth": base64("user:password")}}}`, or
//! `username`/`password`, looked up by registry host. Used for `oci://` model sources here and for
//! the operator's image pre-flight. Pure: no I/O. Nothing here ever puts a password into an error or
//! a `Debug`.

use std::fmt;

use base64::Engine;

/// Docker Hub's canonical name: what `docker.io/x`, `index.docker.io` and a bare `x` all mean.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    /// The user name only: `Debug` output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// The `auths` of one `.dockerconfigjson`, keyed by normalised registry host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DockerConfig {
    auths: Vec<(String, Credentials)>,
}

impl DockerConfig {
    /// Reads a docker config. The reason it is refused never quotes the file: it is all credentials.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        // NB: serde_json's messages may quote the offending value, a password; say where only.
        let value: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| format!("not JSON (line {}, column {})", e.line(), e.column()))?;
        let Some(auths) = value.get("auths").and_then(|a| a.as_object()) else {
            return Err("it has no \"auths\" object".into());
        };
        let mut config = Self::default();
        for (key, entry) in auths {
            let host = normalise_host(key);
            let credentials = entry_credentials(entry)
                .map_err(|reason| format!("the entry for {host}: {reason}"))?;
            config.auths.push((host, credentials));
        }
        Ok(config)
    }

    /// The credentials for `registry` (a host, `host:port`, or `docker.io`), if any.
    pub fn credentials_for(&self, registry: &str) -> Option<&Credentials> {
        let registry = normalise_host(registry);
        self.auths
            .iter()
            .find(|(host, _)| *host == registry)
            .map(|(_, credentials)| credentials)
    }
}

/// base64 of `user:password`: what an `Authorization: Basic` header and a docker config's `auth` carry.
pub fn basic_token(username: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
}

/// `https://index.docker.io/v1/` → `docker.io`, `http://r.local:5000/x` → `r.local:5000`: docker
/// login writes keys in all these shapes.
fn normalise_host(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
        other => other.to_ascii_lowercase(),
    }
}

/// One `auths` entry: `auth` (base64 of `user:password`) wins over `username`/`password`.
fn entry_credentials(entry: &serde_json::Value) -> Result<Credentials, String> {
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    if let Some(auth) = field("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| "\"auth\" is not base64".to_string())?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| "\"auth\" is not UTF-8 text".to_string())?;
        let Some((username, password)) = decoded.split_once(':') else {
            return Err("\"auth\" is not base64 of user:password".into());
        };
        return Ok(Credentials {
            username: username.into(),
            password: password.into(),
        });
    }
    match (field("username"), field("password")) {
        (Some(username), Some(password)) => Ok(Credentials {
            username: username.into(),
            password: password.into(),
        }),
        _ => Err("it has neither \"auth\" nor \"username\" and \"password\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Credentials {
        Credentials {
            username: "alice".into(),
            password: "hunter2:with-colon".into(),
        }
    }

    #[test]
    fn credentials_are_found_by_host_in_every_key_shape() {
        // base64("alice:hunter2:with-colon"): the password may itself hold ':'.
        let json = br#"{"auths": {
            "registry.local:5000": {"auth": "YWxpY2U6aHVudGVyMjp3aXRoLWNvbG9u"},
            "https://index.docker.io/v1/": {"username": "bob", "password": "pw"},
            "http://Mirror.Example.org/v2/": {"auth": "YWxpY2U6aHVudGVyMjp3aXRoLWNvbG9u", "username": "ignored"}
        }}"#;
        let config = DockerConfig::parse(json).unwrap();
        assert_eq!(
            config.credentials_for("registry.local:5000"),
            Some(&alice())
        );
        assert_eq!(config.credentials_for("mirror.example.org"), Some(&alice()));
        let hub = config.credentials_for("docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("bob", "pw")
        );
        assert_eq!(config.credentials_for("registry.local"), None);
        assert_eq!(config.credentials_for("other.example.org"), None);
    }

    #[test]
    fn bad_files_are_refused_without_quoting_them() {
        let table: [(&[u8], &str); 5] = [
            (
                br#"{"auths": {"r.local": {"auth": "hunter2!!"}}}"#,
                "\"auth\" is not base64",
            ),
            // base64("hunter2"): no ':'.
            (
                br#"{"auths": {"r.local": {"auth": "aHVudGVyMg=="}}}"#,
                "not base64 of user:password",
            ),
            (
                br#"{"auths": {"r.local": {"password": "hunter2"}}}"#,
                "neither",
            ),
            (br#"{"credsStore": "hunter2"}"#, "no \"auths\""),
            (
                br#"{"auths": {"r.local": {"auth": hunter2}}}"#,
                "not JSON (line 1",
            ),
        ];
        for (json, expected) in table {
            let err = DockerConfig::parse(json).unwrap_err();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert!(!format!("{:?}", alice()).contains("hunter2"));
    }
}
