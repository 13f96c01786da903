//! Where a model or data set is: a local path, `file://`, `http://`, `https://`, `hdfs://`, `s3://` or
//! `oci://`, parsed into a [`Location`], and [`redact`], the one way a location is shown in logs and
//! messages.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::hdfs::HdfsUrl;
use crate::oci::OciUrl;
use crate::s3::S3Url;

/// A parsed location.
#[derive(Clone, Debug, PartialEq)]
pub enum Location {
    File(PathBuf),
    Http(String),
    Hdfs(HdfsUrl),
    S3(S3Url),
    Oci(OciUrl),
}

/// The schemes [`Location::parse`] knows, for messages.
pub const KNOWN_SCHEMES: &str =
    "a local path, file://, http://, https://, hdfs://, s3:// or oci://";

impl Location {
    /// Parses a path or URL. Unknown schemes are refused with the list of known ones.
    pub fn parse(location: &str) -> Result<Self> {
        let lower = location.to_ascii_lowercase();
        let named = |parsed: Result<Self, String>| {
            parsed.map_err(|reason| Error::Location {
                location: redact(location),
                reason,
            })
        };
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Ok(Self::Http(location.to_string()))
        } else if lower.starts_with("hdfs://") {
            named(HdfsUrl::parse(location).map(Self::Hdfs))
        } else if lower.starts_with("s3://") {
            named(S3Url::parse(location).map(Self::S3))
        } else if lower.starts_with("oci://") {
            named(OciUrl::parse(location).map(Self::Oci))
        } else if let Some(path) = location.strip_prefix("file://") {
            Ok(Self::File(PathBuf::from(path)))
        } else if let Some((scheme, _)) = location.split_once("://") {
            Err(Error::Location {
                location: redact(location),
                reason: format!("unsupported scheme {scheme:?}: use {KNOWN_SCHEMES}"),
            })
        } else {
            Ok(Self::File(PathBuf::from(location)))
        }
    }
}

/// `location` for logs and messages: any `user:password@` and any query or fragment (where tokens such
/// as presigned-URL signatures live) replaced by `***`. A local path is shown as it is.
pub fn redact(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let host = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let path = match tail.find(['?', '#']) {
        Some(query) => format!("{}?***", &tail[..query]),
        None => tail.to_string(),
    };
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes() {
        assert_eq!(
            Location::parse("data/train.csv").unwrap(),
            Location::File("data/train.csv".into())
        );
        assert_eq!(
            Location::parse("file:///tmp/x").unwrap(),
            Location::File("/tmp/x".into())
        );
        assert!(matches!(
            Location::parse("HTTPS://h/x").unwrap(),
            Location::Http(_)
        ));
        assert_eq!(
            Location::parse("hdfs://127.0.0.1:9000/datasets/training.csv").unwrap(),
            Location::Hdfs(HdfsUrl {
                namenode: "hdfs://127.0.0.1:9000".into(),
                path: "/datasets/training.csv".into(),
            })
        );
        let err = Location::parse("hdfs://nn:9000/").unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read hdfs://nn:9000/: ") && err.contains("names no file"),
            "{err}"
        );
        let err = Location::parse("ftp://user:pw@h/x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unsupported scheme \"ftp\"") && !err.contains("pw"),
            "{err}"
        );
    }

    #[test]
    fn redacts_userinfo_and_query_only() {
        assert_eq!(
            redact("https://u:secret@host:1/p@x"),
            "https://***@host:1/p@x"
        );
        assert_eq!(redact("http://host/p@x"), "http://host/p@x");
        assert_eq!(
            redact("http://u:pw@h/m.bin?token=t0k&x=1#frag"),
            "http://***@h/m.bin?***"
        );
        assert_eq!(redact("https://h?sig=abc@def"), "https://h?***");
        assert_eq!(
            redact("hdfs://nn:9000/models/m.bin"),
            "hdfs://nn:9000/models/m.bin"
        );
        assert_eq!(redact("local/path?x"), "local/path?x");
    }
}
