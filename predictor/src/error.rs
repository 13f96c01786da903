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
    /// A data or model location that could not be read.
    #[error("cannot read {location}: {reason}")]
    Source { location: String, reason: String },
    /// A file that is not a model file of this program.
    #[error("not a predictor model file: {0}")]
    Foreign(String),
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
    LoadModel { path: String, cause: Box<Error> },
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

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error that names the path it happened on.
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
