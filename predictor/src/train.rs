//! The training pipeline: two streaming passes over the CSV, then the model file.
//!
//! Pass 1 counts n-gram document frequencies and hashes the data (a remote source is spooled to a temporary
//! file on the way, so it is downloaded once). Pass 2 turns each tweet into a TF-IDF row and streams it into
//! the classifier. Memory depends on the vocabulary, never on the number of rows.

use std::fs::File;
use std::io::{BufReader, Read, Seek};

use crate::classifier::NbTrainer;
use crate::data::TweetReader;
use crate::error::{Error, Result};
use crate::model::{ModelFile, TrainingInfo};
use crate::source::{self, DigestReader, TeeReader};
use crate::text::vectorizer::Scratch;
use crate::text::{DfCounter, Features, TextSettings};

/// Training choices; `Default` is the measured default pipeline (docs/pipeline.md).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSettings {
    pub text: TextSettings,
    /// Additive smoothing of the naive Bayes counts.
    pub alpha: f64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            text: TextSettings::default(),
            alpha: 0.1,
        }
    }
}

/// The two passes of training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    CountNgrams,
    Fit,
}

/// Progress callback: the pass and the bytes read so far in it.
pub type Progress<'a> = &'a mut dyn FnMut(Pass, u64);

/// Trains from a data location (path or URL). `model_date` is RFC 3339: callers pass "now", or a fixed
/// date to reproduce a file byte for byte.
pub fn train_from(
    location: &str,
    settings: &TrainSettings,
    model_date: &str,
    progress: Progress,
) -> Result<ModelFile> {
    let shown = source::redact(location);
    let mut spool: Option<File> = None;
    let mut open_pass = |pass: Pass| -> Result<Box<dyn Read>> {
        match (pass, spool.as_mut()) {
            (Pass::Fit, Some(file)) => {
                file.rewind()
                    .map_err(|e| Error::io("temporary spool file", e))?;
                Ok(Box::new(
                    file.try_clone()
                        .map_err(|e| Error::io("temporary spool file", e))?,
                ))
            }
            _ => {
                let opened = source::open(location)?;
                if opened.rereadable {
                    return Ok(opened.reader);
                }
                let file =
                    tempfile::tempfile().map_err(|e| Error::io("temporary spool file", e))?;
                let copy = file
                    .try_clone()
                    .map_err(|e| Error::io("temporary spool file", e))?;
                spool = Some(file);
                Ok(Box::new(TeeReader {
                    inner: opened.reader,
                    copy,
                }))
            }
        }
    };
    train_passes(&shown, &mut open_pass, settings, model_date, progress)
}

/// Trains from CSV bytes in memory (the built-in sample, tests, cross-validation).
pub fn train_from_bytes(
    csv: &[u8],
    name: &str,
    settings: &TrainSettings,
    model_date: &str,
) -> Result<ModelFile> {
    let mut open_pass = |_| -> Result<Box<dyn Read + '_>> { Ok(Box::new(csv)) };
    train_passes(name, &mut open_pass, settings, model_date, &mut |_, _| {})
}

fn train_passes<'d>(
    shown: &str,
    open_pass: &mut dyn FnMut(Pass) -> Result<Box<dyn Read + 'd>>,
    settings: &TrainSettings,
    model_date: &str,
    progress: Progress,
) -> Result<ModelFile> {
    // Pass 1: document frequencies and the data digest.
    let reader = DigestReader::new(
        BufReader::with_capacity(1 << 16, open_pass(Pass::CountNgrams)?),
        |n| progress(Pass::CountNgrams, n),
    );
    let mut tweets = TweetReader::new(reader, shown)?;
    let mut counter = DfCounter::new(settings.text.clone())?;
    while let Some(tweet) = tweets.next_tweet()? {
        counter.add(tweet.text, tweet.is_american);
    }
    let (rows, skipped) = (tweets.rows() - tweets.skipped(), tweets.skipped());
    let (data_sha256, _) = tweets.into_inner().finish();
    if rows == 0 {
        return Err(Error::Data(format!(
            "{shown}: no usable rows ({skipped} rows without text or country)"
        )));
    }
    let mut vectorizer = counter.finish()?;

    // Pass 2: TF-IDF rows into the classifier.
    let reader = DigestReader::new(
        BufReader::with_capacity(1 << 16, open_pass(Pass::Fit)?),
        |n| progress(Pass::Fit, n),
    );
    let mut tweets = TweetReader::new(reader, shown)?;
    let mut trainer = NbTrainer::new(vectorizer.len(), settings.alpha)?;
    let (mut scratch, mut row) = (Scratch::default(), Features::new());
    while let Some(tweet) = tweets.next_tweet()? {
        vectorizer.transform_recording(tweet.text, &mut scratch, &mut row);
        trainer.add(&row, tweet.is_american)?;
    }
    let (second_sha256, _) = tweets.into_inner().finish();
    if second_sha256 != data_sha256 || !vectorizer.vocabulary_complete() {
        return Err(Error::Data(format!(
            "{shown} changed while it was being read; train again"
        )));
    }
    Ok(ModelFile {
        model_date: model_date.to_string(),
        trained_by: concat!("predictor ", env!("CARGO_PKG_VERSION")).to_string(),
        training: TrainingInfo {
            data_sha256,
            rows,
            skipped_rows: skipped,
        },
        vectorizer: vectorizer.to_data(),
        classifier: trainer.finish()?,
    })
}
