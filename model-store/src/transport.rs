//! What every store client shares (HTTP, S3, OCI, HDFS, the registry, a live predictor): a
//! transport error said in words that never quote a URL or a certificate, the size limit's words,
//! and a private CA bundle's certificates.

/// The PEM certificates of a CA bundle, refused with a reason when there are none.
pub fn certificates(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    reqwest::Certificate::from_pem_bundle(pem)
        .ok()
        .filter(|certificates| !certificates.is_empty())
        .ok_or_else(|| {
            "the store's CA bundle (PREDICTOR_STORE_CA, or ca.crt) holds no PEM certificate".into()
        })
}

/// The refusal of a body past its limit: the same words whether the source said its size first
/// (`Some(len)`) or the body only ran past the limit while being read (`None`).
pub fn too_large(len: Option<u64>, max_bytes: u64) -> String {
    match len {
        Some(len) => format!("{len} bytes is more than the {max_bytes}-byte limit"),
        None => format!("more than the {max_bytes}-byte limit"),
    }
}

/// What went wrong, with the chain of causes (where reqwest keeps "connection refused"), never the URL
/// (it may carry credentials).
pub fn describe_reqwest(error: &reqwest::Error) -> String {
    let mut text = String::from(if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "the response body broke off"
    } else {
        "the request failed"
    });
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        // NB: a TLS error can quote the server's certificate (the names it is valid for): the
        // server's own words, so only its kind is said, and nothing it wraps.
        if let Some(tls) = tls_error(cause) {
            text.push_str(describe_tls(tls));
            break;
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The rustls error `cause` is, or that the I/O errors `cause` is wrap, at any depth (hyper-rustls
/// reports one inside an I/O error, which a connector may wrap in another).
fn tls_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(io) = cause.downcast_ref::<std::io::Error>() {
        let inner: &(dyn std::error::Error + 'static) = io.get_ref()?;
        return tls_error(inner);
    }
    None
}

/// A TLS failure in fixed words.
fn describe_tls(error: &rustls::Error) -> &'static str {
    use rustls::CertificateError as Certificate;
    match error {
        rustls::Error::InvalidCertificate(
            Certificate::NotValidForName | Certificate::NotValidForNameContext { .. },
        ) => "the server's TLS certificate is not valid for its name",
        rustls::Error::InvalidCertificate(Certificate::UnknownIssuer) => {
            "the server's TLS certificate is signed by an unknown CA (a private CA goes in \
             PREDICTOR_STORE_CA, or the credentials Secret's ca.crt)"
        }
        rustls::Error::InvalidCertificate(
            Certificate::Expired | Certificate::ExpiredContext { .. },
        ) => "the server's TLS certificate has expired",
        rustls::Error::InvalidCertificate(_) => "the server's TLS certificate was refused",
        _ => "the TLS handshake failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_failure_is_told_by_its_kind_never_by_the_certificates_names() {
        let presented =
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("store.example")
                    .unwrap()
                    .to_owned(),
                presented: vec!["AKIAEXAMPLEINTERNAL".into()],
            });
        // What rustls itself says quotes the server's certificate...
        assert!(presented.to_string().contains("AKIA"), "{presented}");
        // ...found where hyper-rustls puts it (inside an I/O error), it is said in fixed words.
        let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, presented);
        let tls = tls_error(&wrapped).expect("the rustls error inside the I/O error");
        assert_eq!(
            describe_tls(tls),
            "the server's TLS certificate is not valid for its name"
        );
        // A connector may wrap that I/O error in another (what reqwest's client reports).
        let twice = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert_eq!(
            tls_error(&twice).map(describe_tls),
            Some(
                "the server's TLS certificate is signed by an unknown CA (a private CA goes in \
                 PREDICTOR_STORE_CA, or the credentials Secret's ca.crt)"
            )
        );
        assert!(tls_error(&std::io::Error::other("plain")).is_none());
    }
}
