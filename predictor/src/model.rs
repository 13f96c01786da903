//! The model file: one self-describing binary file, and the loaded model that predicts.
//!
//! Layout: `MAGIC` (8 bytes) · format version (u32 LE) · payload (bincode 2 of [`ModelFile`]) ·
//! sha256 of the payload (32 bytes). The fixed header is read before any decoding, so a foreign or newer
//! file is named as such; the trailer catches truncation and corruption before bincode sees the bytes.
//!
//! Format versions: 1, the model alone; 2 (written since issue 31) adds the training rows' drift
//! profile ([`ModelFile::reference`]). bincode is not self-describing, so each version's payload is
//! decoded with its own struct: a format-1 file still loads, with no reference.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::classifier::{NbParams, Scorer};
use crate::drift::{Observation, Profile, Signal};
use crate::error::{Error, Quoted, Result};
use crate::text::vectorizer::{NgramCounts, Scratch};
use crate::text::{Features, Vectorizer, VectorizerData};

/// First bytes of every model file.
pub const MAGIC: &[u8; 8] = b"PRDCTNB\x01";
/// Format version this program writes, and the newest it reads (it reads every one from 1 up).
pub const FORMAT_VERSION: u32 = 2;
const HEADER_LEN: usize = MAGIC.len() + 4;
const TRAILER_LEN: usize = 32;
/// bincode's own bound on what one decode claims. NB: bincode's limit is a constant, and its owned
/// `String` allocates the length a prefix claims before reading a byte (a 20-byte file could ask for
/// this much); what ties the decode to the file's size is below ([`text`], [`bounded_texts`]).
const MAX_PAYLOAD: usize = 1 << 30;
/// The vocabulary of a payload of n bytes may take at most this many times n bytes in memory. A real
/// vocabulary entry comes with three `f64` (idf, one log-probability per class: 24 bytes of the
/// file) besides its text, so it needs a fraction of this; a hostile file of short entries and
/// nothing else is refused as soon as its vocabulary passes it.
pub const VOCABULARY_FACTOR: usize = 4;
/// What one vocabulary entry costs in memory besides its text: its `String` twice over (the
/// vector grows by doubling) and the allocator's smallest block.
const ENTRY_OVERHEAD: usize = 2 * std::mem::size_of::<String>() + 16;
/// At most what decoding a payload of n bytes holds in memory: the payload itself, the vocabulary
/// (≤ [`VOCABULARY_FACTOR`] × n), the `f64` vectors (≤ 2 × their bytes: growth by doubling) and
/// serde's first reservation per sequence (≤ 1 MiB each, four sequences). The reference's four
/// sequences are refused past [`MAX_BINS`] entries, so they add at most 2 KiB. Measured against real
/// and hostile files in `tests/decode_bound.rs`.
pub fn decode_memory_bound(file_len: u64) -> u64 {
    (1 + VOCABULARY_FACTOR as u64 + 2) * file_len + (4 << 20)
}

std::thread_local! {
    /// Bytes the vocabulary being decoded on this thread may still take: set from the payload's
    /// size by [`ModelFile::from_bytes`] for its decode, unbounded otherwise.
    static ALLOWANCE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Sets [`ALLOWANCE`] for one decode and puts the previous value back when dropped.
struct Allowance(usize);

impl Allowance {
    fn set(bytes: usize) -> Self {
        Self(ALLOWANCE.replace(bytes))
    }
}

impl Drop for Allowance {
    fn drop(&mut self) {
        ALLOWANCE.set(self.0);
    }
}

/// A string field decoded from the text in the input: serde's `String` goes through bincode's owned
/// path, which allocates the length the prefix claims before it reads (checks) the bytes; a
/// borrowed `str` is checked against the input first and copied after.
pub(crate) fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_str(TextVisitor)
}

struct TextVisitor;

impl serde::de::Visitor<'_> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<String, E> {
        Ok(text.to_owned())
    }
}

/// A newtype so a sequence's elements go through [`text`].
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        text(deserializer).map(Self)
    }
}

/// A vocabulary: each entry through [`text`], and all of it within this thread's [`ALLOWANCE`]
/// (each entry charged its text and [`ENTRY_OVERHEAD`]); past it, an error instead of the memory.
pub(crate) fn bounded_texts<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    struct Entries;
    impl<'de> serde::de::Visitor<'de> for Entries {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a sequence of strings")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<String>, A::Error> {
            // serde's own rule: trust a stated length for at most 1 MiB.
            let first = seq
                .size_hint()
                .unwrap_or(0)
                .min((1 << 20) / std::mem::size_of::<String>());
            let mut entries = Vec::with_capacity(first);
            let mut spent = 0usize;
            let allowance = ALLOWANCE.get();
            while let Some(Text(entry)) = seq.next_element()? {
                spent = spent.saturating_add(entry.len() + ENTRY_OVERHEAD);
                if spent > allowance {
                    return Err(serde::de::Error::custom(format!(
                        "the vocabulary takes more than {VOCABULARY_FACTOR} times the file's size \
                         in memory ({} entries so far)",
                        entries.len()
                    )));
                }
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    deserializer.deserialize_seq(Entries)
}

/// Most bins one signal of a decoded reference may have: the reference's sequences are read up to
/// this many entries and refused past it, so a hostile file cannot make them claim memory.
pub const MAX_BINS: usize = 64;

/// The counts of one signal of a reference, at most [`MAX_BINS`] of them.
fn bounded_bins<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u64>, D::Error> {
    struct Bins;
    impl<'de> serde::de::Visitor<'de> for Bins {
        type Value = Vec<u64>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "at most {MAX_BINS} counts")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
            let mut bins = Vec::new();
            while let Some(count) = seq.next_element()? {
                if bins.len() == MAX_BINS {
                    return Err(serde::de::Error::custom(format!(
                        "a signal of the reference has more than {MAX_BINS} bins"
                    )));
                }
                bins.push(count);
            }
            Ok(bins)
        }
    }
    deserializer.deserialize_seq(Bins)
}

/// The file's reference: [`Profile`]'s fields in its order (the same bytes), each signal's counts
/// through [`bounded_bins`].
fn bounded_reference<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Profile>, D::Error> {
    #[derive(Deserialize)]
    struct Bounded {
        rows: u64,
        #[serde(deserialize_with = "bounded_bins")]
        probability: Vec<u64>,
        #[serde(deserialize_with = "bounded_bins")]
        known: Vec<u64>,
        #[serde(deserialize_with = "bounded_bins")]
        length: Vec<u64>,
        #[serde(deserialize_with = "bounded_bins")]
        positive: Vec<u64>,
    }
    let bounded = Option::<Bounded>::deserialize(deserializer)?;
    Ok(bounded.map(|b| Profile {
        rows: b.rows,
        probability: b.probability,
        known: b.known,
        length: b.length,
        positive: b.positive,
    }))
}

/// Why `reference` cannot be this program's reference, if it cannot: every signal must have its bins
/// ([`Signal::bounds`]) and count every row once.
fn reference_problem(reference: &Profile) -> Option<String> {
    if !reference.is_well_formed() {
        return Some(
            "the drift reference does not have this program's bins for every signal".to_string(),
        );
    }
    Signal::ALL.into_iter().find_map(|s| {
        let counted: u128 = reference.counts(s).iter().map(|&c| u128::from(c)).sum();
        (counted != u128::from(reference.rows)).then(|| {
            format!(
                "the drift reference's {} bins count {counted} rows, not its {}",
                s.name(),
                reference.rows
            )
        })
    })
}

/// What the training data was. Where it was read from is deliberately not recorded: the same bytes give
/// the same model file whether they came from a path, HTTP or HDFS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// sha256 of the data bytes.
    #[serde(deserialize_with = "text")]
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
    #[serde(deserialize_with = "text")]
    pub model_date: String,
    /// The program that wrote it, e.g. `predictor 0.1.0`.
    #[serde(deserialize_with = "text")]
    pub trained_by: String,
    pub training: TrainingInfo,
    pub vectorizer: VectorizerData,
    pub classifier: NbParams,
    /// The training rows as drift sees them, predicted by this model: what the server's live answers
    /// are compared with (`predictor eval` and `/metrics` show it). Every file `predictor train`
    /// writes has one; a format-1 file has none.
    #[serde(deserialize_with = "bounded_reference")]
    pub reference: Option<Profile>,
}

/// Format 1's payload: [`ModelFile`] without the reference. Frozen: format-1 files are decoded with it.
#[derive(Deserialize)]
struct ModelFileV1 {
    #[serde(deserialize_with = "text")]
    model_date: String,
    #[serde(deserialize_with = "text")]
    trained_by: String,
    training: TrainingInfo,
    vectorizer: VectorizerData,
    classifier: NbParams,
}

impl From<ModelFileV1> for ModelFile {
    fn from(v1: ModelFileV1) -> Self {
        Self {
            model_date: v1.model_date,
            trained_by: v1.trained_by,
            training: v1.training,
            vectorizer: v1.vectorizer,
            classifier: v1.classifier,
            reference: None,
        }
    }
}

/// The file around `payload`: header (magic, this format version) and checksum, whatever the payload
/// says. [`ModelFile::to_bytes`] frames its bincode so; the decoder's tests and fuzzer frame their
/// own payloads so that the decoder sees them.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    frame_as(FORMAT_VERSION, payload)
}

/// Like [`frame`], with another version in the header: how tests write a file of an older (or a
/// newer) format.
pub fn frame_as(version: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes.extend_from_slice(&Sha256::digest(payload));
    bytes
}

impl ModelFile {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let payload = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| Error::Corrupt(format!("cannot encode the model: {e}")))?;
        Ok(frame(&payload))
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
        let file = match version {
            1 => decode::<ModelFileV1>(payload)?.into(),
            _ => decode::<ModelFile>(payload)?,
        };
        if let Some(problem) = file.reference.as_ref().and_then(reference_problem) {
            return Err(Error::Corrupt(problem));
        }
        Ok(file)
    }
}

/// Decodes a whole payload as `T`, within this thread's [`ALLOWANCE`] for its size.
fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T> {
    let config = bincode::config::standard().with_limit::<MAX_PAYLOAD>();
    let decoded = {
        let _allowance = Allowance::set(payload.len().saturating_mul(VOCABULARY_FACTOR));
        bincode::serde::decode_from_slice::<T, _>(payload, config)
    };
    let (file, used) =
        decoded.map_err(|e| Error::Corrupt(format!("cannot decode the payload: {e}")))?;
    if used != payload.len() {
        return Err(Error::Corrupt(format!(
            "{} unexpected bytes after the payload",
            payload.len() - used
        )));
    }
    Ok(file)
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

    /// The model file back (training adds the reference it computed with the model).
    pub fn into_file(self) -> ModelFile {
        self.file
    }

    /// The training rows' profile, when the file has one (not a format-1 file).
    pub fn reference(&self) -> Option<&Profile> {
        self.file.reference.as_ref()
    }

    pub fn model_date(&self) -> &str {
        &self.file.model_date
    }

    pub fn vectorizer(&self) -> &Vectorizer {
        &self.vectorizer
    }

    /// Predicts one text, with this thread's reused buffers (batch loops allocate nothing per text).
    pub fn predict(&self, text: &str) -> Prediction {
        self.score(text).0
    }

    /// Predicts one text and says how drift sees the answer ([`crate::drift`]): the prediction, the
    /// text's n-grams and how many the vocabulary knows, its length in characters. Allocates nothing
    /// either; it costs [`predict`](Self::predict) and a count of the text's characters.
    pub fn predict_observed(&self, text: &str) -> (Prediction, Observation) {
        let (prediction, ngrams) = self.score(text);
        let observation = Observation {
            probability: prediction.probability,
            known: ngrams.known,
            ngrams: ngrams.total,
            length: text.chars().count(),
            is_american: prediction.is_american == 1,
        };
        (prediction, observation)
    }

    fn score(&self, text: &str) -> (Prediction, NgramCounts) {
        thread_local! {
            /// This thread's buffers for `predict`: once grown, a prediction allocates nothing (a serving
            /// thread answers each request with them).
            static BUFFERS: std::cell::RefCell<(Scratch, Features)> = Default::default();
        }
        BUFFERS.with_borrow_mut(|(scratch, row)| {
            let ngrams = self.vectorizer.transform(text, scratch, row);
            let prediction = Prediction {
                is_american: self.scorer.predict(row),
                probability: self.scorer.probability(row),
            };
            (prediction, ngrams)
        })
    }
}
