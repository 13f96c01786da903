//! Parsing image references (`registry.local:5000/team/american-predictor:0.2`,
//! `…@sha256:<64 hex>`) the way the container runtime reads them. Pure: no I/O.

use std::fmt;

use model_store::registry::name::{
    check_registry, check_repository, check_tag, is_registry_host, parse_digest, split_tag,
};

use crate::error::{Error, Result};

/// The registry of references without a registry host (`nginx`, `team/app`).
pub use model_store::registry::auth::DEFAULT_REGISTRY;
/// Docker Hub serves its registry API on another host than its name.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The tag of references without tag and digest.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed image reference with the runtime's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReference {
    /// Registry host, with port if any: `registry.local:5000`, `docker.io`.
    pub registry: String,
    /// Repository path inside the registry: `team/american-predictor`, `library/nginx`.
    pub repository: String,
    /// The tag: as written, or `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:<64 hex>` when the reference pins a manifest.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses `image`, refusing what a container runtime would refuse, with the reason.
    pub fn parse(image: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidImage {
            image: image.to_string(),
            reason,
        };
        if image.is_empty() {
            return Err(invalid("the reference is empty".into()));
        }
        let (name_and_tag, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(parse_digest(digest).map_err(invalid)?)),
            None => (image, None),
        };
        let (name, tag) = split_tag(name_and_tag);
        if let Some(tag) = tag {
            check_tag(tag).map_err(invalid)?;
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if is_registry_host(first) => (first, rest),
            _ => (DEFAULT_REGISTRY, name),
        };
        check_registry(registry).map_err(invalid)?;
        check_repository(path).map_err(invalid)?;
        let registry = match registry {
            // Docker's own aliases of Docker Hub.
            "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY,
            other => other,
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// The host the registry API is served on (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// The same image pinned to `digest`: `registry.local:5000/team/app:0.2@sha256:…`, which no
    /// later push can change (runtimes pull by the digest; the tag stays for people reading it).
    pub fn pinned(&self, digest: &str) -> String {
        match &self.tag {
            Some(tag) => format!("{}/{}:{tag}@{digest}", self.registry, self.repository),
            None => format!("{}/{}@{digest}", self.registry, self.repository),
        }
    }
}

impl fmt::Display for ImageReference {
    /// The fully qualified reference: `docker.io/library/nginx:latest`, `r:5000/a/b:1@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Registry, repository, tag, digest.
    type Expected<'a> = (&'a str, &'a str, Option<String>, Option<String>);

    fn parsed(image: &str) -> (String, String, Option<String>, Option<String>) {
        let r = ImageReference::parse(image).unwrap_or_else(|e| panic!("{image}: {e}"));
        (r.registry, r.repository, r.tag, r.digest)
    }

    #[test]
    fn references_parse_with_the_runtimes_defaults() {
        let s = |v: &str| Some(v.to_string());
        let digest = || Some(DIGEST.to_string());
        let table: &[(&str, Expected)] = &[
            (
                "registry.local:5000/team/american-predictor:0.2",
                (
                    "registry.local:5000",
                    "team/american-predictor",
                    s("0.2"),
                    None,
                ),
            ),
            (
                &format!("registry.local:5000/team/american-predictor@{DIGEST}"),
                (
                    "registry.local:5000",
                    "team/american-predictor",
                    None,
                    digest(),
                ),
            ),
            (
                &format!("registry.local/p:0.2@{DIGEST}"),
                ("registry.local", "p", s("0.2"), digest()),
            ),
            ("nginx", ("docker.io", "library/nginx", s("latest"), None)),
            (
                "nginx:1.27",
                ("docker.io", "library/nginx", s("1.27"), None),
            ),
            ("team/app", ("docker.io", "team/app", s("latest"), None)),
            (
                "index.docker.io/nginx",
                ("docker.io", "library/nginx", s("latest"), None),
            ),
            ("localhost/p", ("localhost", "p", s("latest"), None)),
            (
                "localhost:5000/p:v1",
                ("localhost:5000", "p", s("v1"), None),
            ),
            (
                "127.0.0.1:5000/a/b/c:1",
                ("127.0.0.1:5000", "a/b/c", s("1"), None),
            ),
            ("[::1]:5000/p:x", ("[::1]:5000", "p", s("x"), None)),
            // No '.', ':' and not localhost: a repository component, on Docker Hub.
            ("registry/p", ("docker.io", "registry/p", s("latest"), None)),
            (
                "a/my_app__x.y--z:T_1",
                ("docker.io", "a/my_app__x.y--z", s("T_1"), None),
            ),
        ];
        for (image, (registry, repository, tag, digest)) in table {
            assert_eq!(
                parsed(image),
                (
                    registry.to_string(),
                    repository.to_string(),
                    tag.clone(),
                    digest.clone()
                ),
                "{image}"
            );
        }
    }

    #[test]
    fn bad_references_are_refused_with_the_reason() {
        let table = [
            ("", "empty"),
            ("registry.local/Team/app:1", "\"Team\" must be lowercase"),
            ("App", "\"App\" must be lowercase"),
            ("registry.local/app@sha256:abc", "64 lowercase hex"),
            (
                "registry.local/app@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
                "64 lowercase hex",
            ),
            ("registry.local/app@md5:0123", "not sha256:<64 hex digits>"),
            ("registry.local/app:", "the tag \"\""),
            ("registry.local/app:-x", "the tag \"-x\""),
            ("registry.local/app:a/b", "component \"app:a\""),
            ("registry.local/", "repository name is empty"),
            ("registry.local//app", "component \"\""),
            ("registry.local/app-/x", "component \"app-\""),
            ("registry.local/a..b", "component \"a..b\""),
            ("registry.local:0/app", "the registry \"registry.local:0\""),
            ("registry.local:x/app", "the registry \"registry.local:x\""),
            ("-bad.host/app", "the registry \"-bad.host\""),
        ];
        for (image, expected) in table {
            let err = ImageReference::parse(image).expect_err(image).to_string();
            assert!(
                err.contains(expected) && err.contains(&format!("{image:?}")),
                "{image}: {err}"
            );
        }
    }

    #[test]
    fn pinned_display_and_what_to_ask_for() {
        let r = ImageReference::parse("registry.local:5000/team/american-predictor:0.2").unwrap();
        assert_eq!(r.manifest_reference(), "0.2");
        assert_eq!(r.api_host(), "registry.local:5000");
        assert_eq!(
            r.pinned(DIGEST),
            format!("registry.local:5000/team/american-predictor:0.2@{DIGEST}")
        );
        assert_eq!(
            r.to_string(),
            "registry.local:5000/team/american-predictor:0.2"
        );
        let hub = ImageReference::parse(&format!("nginx:1@{DIGEST}")).unwrap();
        assert_eq!(hub.manifest_reference(), DIGEST);
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        assert_eq!(
            hub.to_string(),
            format!("docker.io/library/nginx:1@{DIGEST}")
        );
        assert!(is_registry_host("localhost") && is_registry_host("r:5000"));
        assert!(is_registry_host("r.local") && !is_registry_host("team"));
    }
}
