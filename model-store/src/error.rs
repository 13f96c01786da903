//! The crate's one error type: which location could not be read or written, and why, in words that
//! never hold a credential, a signed URL or what a server said beyond fixed codes.

/// Errors of the model stores. The location in each is [`redact`](crate::redact)ed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A location of no known scheme, or a URL its store would misread: wrong as written, so
    /// trying again cannot help.
    #[error("cannot read {location}: {reason}")]
    Location { location: String, reason: String },
    /// A store that did not give the object: unreachable, refused, missing, over the size limit,
    /// too slow, or bytes other than the pinned ones.
    #[error("cannot read {location}: {reason}")]
    Read { location: String, reason: String },
    /// A store that did not take the object, or a location no model can be written to.
    #[error("cannot upload to {location}: {reason}")]
    Upload { location: String, reason: String },
    /// This process's own store settings (its docker config) that cannot be used.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// No HTTP client could be built (the TLS setup failed).
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
