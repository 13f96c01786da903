//! Registry tier: the image [`Resolver`] against a real registry, Debian's `docker-registry` (the
//! CNCF distribution registry), behind htpasswd (bcrypt) Basic auth on a loopback port.
//!
//! The test pushes a tiny OCI image itself with the plain registry API (two blob uploads, one
//! manifest PUT), then asks the resolver for its tag: the manifest's sha256, ImageNotFound for a
//! missing tag or repository, RegistryUnauthorized for a wrong or missing password, and
//! RegistryUnreachable once the registry is stopped (the registry is `support::registry`'s). Needs
//! `docker-registry` and `htpasswd` (`apt-get install docker-registry apache2-utils`); ignored by a
//! plain `cargo test`, `./dev/test` runs it, and when selected it fails at once if either program is
//! missing.

mod support;

use std::time::Duration;

use operator::image::{DockerConfig, ImageReference, Resolver};
use support::registry::{PASSWORD, Registry, USER};

const REPOSITORY: &str = "team/american-predictor";

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs docker-registry (apt-get install docker-registry apache2-utils): ./dev/test runs it"]
async fn tags_resolve_to_manifest_digests_on_a_real_registry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut registry = Registry::start(dir.path());
    let host = registry.host.clone();
    let digest = registry.push(REPOSITORY, "0.2", 0).await;

    // The credentials come the way the operator will get them: from a .dockerconfigjson.
    let config = DockerConfig::parse(registry.docker_config(PASSWORD).as_bytes()).unwrap();
    let image = ImageReference::parse(&format!("{host}/{REPOSITORY}:0.2")).unwrap();
    let credentials = config
        .credentials_for(&image.registry)
        .expect("credentials for the registry");
    let resolver = Resolver::new(Duration::from_secs(5)).unwrap();

    let resolved = resolver.resolve(&image, Some(credentials)).await;
    assert_eq!(
        resolved.as_deref().map_err(ToString::to_string),
        Ok(digest.as_str()),
        "registry log:\n{}",
        registry.tail(20)
    );
    let pinned = ImageReference::parse(&image.pinned(&digest)).unwrap();
    assert_eq!(
        resolver.resolve(&pinned, Some(credentials)).await.unwrap(),
        digest
    );

    for missing in ["0.3", "0.2-rc1"] {
        let image = ImageReference::parse(&format!("{host}/{REPOSITORY}:{missing}")).unwrap();
        let err = resolver
            .resolve(&image, Some(credentials))
            .await
            .unwrap_err();
        assert_eq!(err.metric_label(), "image_not_found", "{err}");
    }
    let other_repository = ImageReference::parse(&format!("{host}/team/nothing:0.2")).unwrap();
    let err = resolver
        .resolve(&other_repository, Some(credentials))
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "image_not_found", "{err}");

    let wrong = operator::image::Credentials {
        username: USER.into(),
        password: "not-the-password".into(),
    };
    let err = resolver.resolve(&image, Some(&wrong)).await.unwrap_err();
    assert_eq!(err.metric_label(), "registry_unauthorized", "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    let err = resolver.resolve(&image, None).await.unwrap_err();
    assert_eq!(err.metric_label(), "registry_unauthorized", "{err}");

    registry.stop();
    let err = resolver
        .resolve(&image, Some(credentials))
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "registry_unreachable", "{err}");
    assert!(err.to_string().contains(&host), "{err}");
}
