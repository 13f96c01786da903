//! The crate's one error type. Every variant says what was wrong and, where it helps, what to do.

/// Errors of the predictor library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Pipeline or classifier settings out of range.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// Training or evaluation data that cannot be used (names file, row and field where it can).
    #[error("{0}")]
    Data(String),
    /// A data or model location that could not be read (a CSV stream that broke off, a live server).
    #[error("cannot read {location}: {reason}")]
    Source { location: String, reason: String },
    /// A model store that could not be read or written, said as the store says it.
    #[error(transparent)]
    Store(#[from] model_store::Error),
    /// A file that is not a model file of this program; what it starts with is only [`Quoted`].
    #[error("not a predictor model file: {reason}")]
    Foreign {
        reason: String,
        #[source]
        start: Option<Quoted>,
    },
    /// A CSV header without a column the data needs; the columns it has are only [`Quoted`].
    #[error("{location}: no `{wanted}` column in the header")]
    MissingColumn {
        location: String,
        wanted: &'static str,
        #[source]
        found: Quoted,
    },
    /// A model file written by a newer version of this program.
    #[error(
        "model file format version {found} is newer than this program reads (up to {supported}); upgrade the predictor"
    )]
    NewerFormat { found: u32, supported: u32 },
    /// A model file that is cut short or damaged.
    #[error("model file is truncated or corrupt: {0}")]
    Corrupt(String),
    /// Downloaded bytes whose sha256 is not the pinned one.
    #[error("sha256 mismatch for {location}: expected {expected}, got {actual}")]
    DigestMismatch {
        location: String,
        expected: String,
        actual: String,
    },
    /// A model file that could not be loaded, named.
    #[error("cannot load model {path}: {cause}")]
    LoadModel {
        path: String,
        #[source]
        cause: Box<Error>,
    },
    /// A delivery run's marks file or probe JSON (`predictor delivery-report`) that cannot be used.
    #[error("cannot use {path} for the delivery report: {reason}")]
    DeliveryInput { path: String, reason: String },
    /// A live check that ran but found failures (failed requests, a release that never answered).
    #[error("{0}")]
    Failed(String),
    /// The classifier library refused to fit.
    #[error("training failed: {0}")]
    Training(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What the input itself says (the columns a CSV header names, a file's first bytes): helpful to
/// the person whose file it is, so the CLI prints it ([`Error::quoted`]), but never part of an
/// error's own message. NB: a service that reads URLs for others (the operator reads URLs a team
/// names, which may be cluster-internal ones) shows errors' messages only, and so never echoes
/// what a URL answered.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Quoted(pub String);

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error that names the path it happened on.
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// The error's message and, after it, what the input said ([`Quoted`]) if it says anything:
    /// for the person running the CLI on their own data, never for a status or a log line.
    pub fn quoted(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            if let Some(quoted) = cause.downcast_ref::<Quoted>() {
                text.push_str(" (");
                text.push_str(&quoted.0);
                text.push(')');
            }
            source = cause.source();
        }
        text
    }
}
