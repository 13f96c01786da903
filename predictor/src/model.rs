//! The model file: one self-describing binary file, and the loaded model that predicts.
//!
//! Layout: `MAGIC` (8 bytes) · format version (u32 LE) · payload (bincode 2 of [`ModelFile`]) ·
//! sha256 of the payload (32 bytes). The fixed header is read before any decoding, so a foreign or newer
//! file is named as such; the trailer catches truncation and corruption before bincode sees the bytes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::classifier::{NbParams, Scorer};
use crate::error::{Error, Quoted, Result};
use crate::text::vectorizer::Scratch;
use crate::text::{Features, Vectorizer, VectorizerData};

/// First bytes of every model file.
pub const MAGIC: &[u8; 8] = b"PRDCTNB\x01";
/// Format version this program writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = MAGIC.len() + 4;
const TRAILER_LEN: usize = 32;
/// Decoding refuses payloads that claim more than this (a guard against hostile length prefixes).
const MAX_PAYLOAD: usize = 1 << 30;

/// What the training data was. Where it was read from is deliberately not recorded: the same bytes give
/// the same model file whether they came from a path, HTTP or HDFS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// sha256 of the data bytes.
    pub data_sha256: String,
    /// Rows used for training.
    pub rows: u64,
    /// Rows skipped (missing text or country).
    pub skipped_rows: u64,
}

/// Everything the model file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// When the model was trained (RFC 3339, UTC).
    pub model_date: String,
    /// The program that wrote it, e.g. `predictor 0.1.0`.
    pub trained_by: String,
    pub training: TrainingInfo,
    pub vectorizer: VectorizerData,
    pub classifier: NbParams,
}

impl ModelFile {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let payload = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| Error::Corrupt(format!("cannot encode the model: {e}")))?;
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&Sha256::digest(&payload));
        Ok(bytes)
    }

    /// Parses and checks a model file: magic, version, checksum, then the payload's own consistency.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            // NB: what the file starts with is its own bytes: only quoted (see `Quoted`).
            let (what, start) = if bytes.is_empty() {
                ("the file is empty", None)
            } else {
                (
                    "it does not start with the model file's magic bytes",
                    Some(Quoted(describe_prefix(bytes))),
                )
            };
            return Err(Error::Foreign {
                reason: format!("{what} (expected a file written by `predictor train`)"),
                start,
            });
        }
        if bytes.len() < HEADER_LEN + TRAILER_LEN {
            return Err(Error::Corrupt(format!(
                "only {} bytes, shorter than the header and checksum",
                bytes.len()
            )));
        }
        let version =
            u32::from_le_bytes(bytes[MAGIC.len()..HEADER_LEN].try_into().expect("4 bytes"));
        if version > FORMAT_VERSION {
            return Err(Error::NewerFormat {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version == 0 {
            return Err(Error::Corrupt("format version 0 does not exist".into()));
        }
        let (payload, checksum) =
            bytes[HEADER_LEN..].split_at(bytes.len() - HEADER_LEN - TRAILER_LEN);
        if Sha256::digest(payload).as_slice() != checksum {
            return Err(Error::Corrupt(format!(
                "checksum does not match the {} payload bytes (cut short or damaged in transit?)",
                payload.len()
            )));
        }
        let config = bincode::config::standard().with_limit::<MAX_PAYLOAD>();
        let (file, used): (ModelFile, usize) =
            bincode::serde::decode_from_slice(payload, config)
                .map_err(|e| Error::Corrupt(format!("cannot decode the payload: {e}")))?;
        if used != payload.len() {
            return Err(Error::Corrupt(format!(
                "{} unexpected bytes after the payload",
                payload.len() - used
            )));
        }
        Ok(file)
    }
}

fn describe_prefix(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(16)];
    match std::str::from_utf8(head) {
        Ok(text) => format!("it starts with {text:?}"),
        Err(_) => format!("it starts with bytes {}", hex::encode(head)),
    }
}

/// sha256 of `bytes`, lowercase hex: what a Predictor pins.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// 1 when the author is predicted to be in the US.
    pub is_american: u8,
    /// Probability of the US class.
    pub probability: f64,
}

/// A loaded, checked model, ready to predict. Cheap to share between threads (`&self` only).
#[derive(Debug)]
pub struct Model {
    file: ModelFile,
    vectorizer: Vectorizer,
    scorer: Scorer,
}

impl Model {
    /// Builds the prediction structures from a model file, checking its internal consistency.
    pub fn new(file: ModelFile) -> Result<Self> {
        let vectorizer = Vectorizer::from_data(file.vectorizer.clone())?;
        file.classifier.validate(vectorizer.len())?;
        let scorer = Scorer::new(&file.classifier);
        Ok(Self {
            file,
            vectorizer,
            scorer,
        })
    }

    /// Parses, checks and loads model file bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::new(ModelFile::from_bytes(bytes)?)
    }

    /// Reads a model file from disk.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        Self::from_bytes(&bytes)
    }

    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    pub fn model_date(&self) -> &str {
        &self.file.model_date
    }

    pub fn vectorizer(&self) -> &Vectorizer {
        &self.vectorizer
    }

    /// Predicts one text, with this thread's reused buffers (batch loops allocate nothing per text).
    pub fn predict(&self, text: &str) -> Prediction {
        thread_local! {
            /// This thread's buffers for `predict`: once grown, a prediction allocates nothing (a serving
            /// thread answers each request with them).
            static BUFFERS: std::cell::RefCell<(Scratch, Features)> = Default::default();
        }
        BUFFERS.with_borrow_mut(|(scratch, row)| {
            self.vectorizer.transform(text, scratch, row);
            Prediction {
                is_american: self.scorer.predict(row),
                probability: self.scorer.probability(row),
            }
        })
    }
}
