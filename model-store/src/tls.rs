//! The process-wide TLS crypto provider for https model and data URLs.
//!
//! reqwest is built with `rustls-no-provider` and rustls with `ring` only: the static binary then carries
//! one small provider (aws-lc, reqwest's default, adds about 1.5 MB and the predictor image must stay
//! under 10 MB). reqwest does not pick a provider by itself in that setup, so every place that builds an
//! HTTP client calls [`install_crypto_provider`] first: [`bounded_client`] does, and is how this workspace
//! builds its async HTTP clients.

use std::sync::Once;
use std::time::Duration;

/// Installs ring as the rustls default provider, once per process. Idempotent and cheap after the first call.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only means another provider was installed first (e.g. by an embedding program): keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The start of every async HTTP client here (model and data downloads, the registry resolver, the
/// client of a live predictor): the crypto provider installed, connecting within `connect` (at most
/// `timeout`), every request done within `timeout`. Callers add what is theirs (redirects, pool).
/// Under test, the limit of [`crate::egress`] is installed too.
pub fn bounded_client(timeout: Duration, connect: Duration) -> reqwest::ClientBuilder {
    install_crypto_provider();
    let builder = reqwest::Client::builder()
        .connect_timeout(connect.min(timeout))
        .timeout(timeout);
    match crate::egress::Policy::from_env() {
        Some(policy) => policy.apply(builder),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_is_installed_and_https_clients_build() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        reqwest::Client::builder()
            .build()
            .expect("an https-capable client builds with the installed provider");
    }
}
