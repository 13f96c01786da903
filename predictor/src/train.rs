//! The training pipeline: three streaming passes over the CSV, then the model file.
//!
//! Pass 1 counts n-gram document frequencies and hashes the data (a remote source is spooled to a temporary
//! file on the way, so it is downloaded once). Pass 2 turns each tweet into a TF-IDF row and streams it into
//! the classifier. Pass 3 predicts every row with the fitted model and counts the answers into the drift
//! reference ([`crate::drift::Profile`]) the file keeps. Memory depends on the vocabulary, never on the
//! number of rows.
//!
//! Every pass runs on all cores: one thread reads the CSV and deals fixed-size batches to workers in a
//! fixed order, and results are combined in batch order, so the model file is the same byte for byte
//! whatever the number of cores (except past `MAX_CANDIDATES` distinct n-grams, where each worker forgets
//! its rarest n-grams on its own). The reference is made of integer counts: the same in any order.
//!
//! NB: pass 3 costs about what pass 2 does (a tokenization and a prediction per row). Measured with
//! the `pipeline` build on 2 cores busy with other work (2026-12-07): train.csv (2,999 rows), median
//! of 9 runs, 0.169 s without it and 0.172 s with it (start-up and noise dominate); train.csv 30 times
//! over (89,970 rows), two runs each, 0.86 and 1.02 s without, 1.45 and 1.65 s with: about 1.65×.

use std::fs::File;
use std::io::{BufReader, Read, Seek};

use std::sync::mpsc::{self, SyncSender};
use std::thread;

use crate::classifier::{ClassSums, NbTrainer, ROWS_PER_FIT};
use crate::data::TweetReader;
use crate::drift::Profile;
use crate::error::{Error, Result};
use crate::model::{Model, ModelFile, TrainingInfo};
use crate::text::vectorizer::Scratch;
use crate::text::{DfCounter, Features, TextSettings, Vectorizer};
use model_store::digest::{DigestReader, TeeReader};

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

/// The three passes of training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    CountNgrams,
    Fit,
    /// The drift reference: the rows predicted by the fitted model.
    Reference,
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
    let shown = model_store::redact(location);
    let mut spool: Option<File> = None;
    let mut open_pass = |pass: Pass| -> Result<Box<dyn Read>> {
        match (pass, spool.as_mut()) {
            (Pass::Fit | Pass::Reference, Some(file)) => {
                file.rewind()
                    .map_err(|e| Error::io("temporary spool file", e))?;
                Ok(Box::new(
                    file.try_clone()
                        .map_err(|e| Error::io("temporary spool file", e))?,
                ))
            }
            _ => {
                let opened = model_store::open(location)?;
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

/// Rows handed to a worker at a time.
const BATCH_ROWS: usize = 256;

/// Owned tweets in flight between the CSV reader and a worker.
type Batch = Vec<(String, bool)>;

/// Worker threads per pass: the cores there are, at most four.
fn worker_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
}

/// Reads every tweet and deals them out in batches, batch `i` to worker `i % n`: a fixed assignment, so
/// each worker sees the same rows on every run and the model file does not depend on thread timing.
fn deal_batches<R: Read>(tweets: &mut TweetReader<R>, workers: &[SyncSender<Batch>]) -> Result<()> {
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut dealt = 0;
    loop {
        let tweet = tweets.next_tweet()?;
        if let Some(tweet) = &tweet {
            batch.push((tweet.text.to_string(), tweet.is_american));
        }
        if batch.len() == BATCH_ROWS || (tweet.is_none() && !batch.is_empty()) {
            if workers[dealt % workers.len()]
                .send(std::mem::take(&mut batch))
                .is_err()
            {
                return Ok(()); // the worker stopped; its error is reported by the caller
            }
            dealt += 1;
        }
        if tweet.is_none() {
            return Ok(());
        }
    }
}

/// Deals the tweets to `workers` threads, each adding its batches' rows into its own `T` (made by
/// `start`); the workers' results, in worker order.
fn fold_batches<R: Read, T: Send>(
    tweets: &mut TweetReader<R>,
    workers: usize,
    start: impl Fn() -> Result<T> + Sync,
    add: impl Fn(&mut T, &str, bool) + Sync,
) -> Result<Vec<T>> {
    let (start, add) = (&start, &add);
    thread::scope(|scope| {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = mpsc::sync_channel::<Batch>(2);
            senders.push(tx);
            handles.push(scope.spawn(move || {
                let mut folded = start()?;
                for batch in rx {
                    batch
                        .iter()
                        .for_each(|(text, us)| add(&mut folded, text, *us));
                }
                Ok::<_, Error>(folded)
            }));
        }
        let dealt = deal_batches(tweets, &senders);
        drop(senders);
        let folded: Result<Vec<T>> = handles.into_iter().map(join).collect();
        dealt.and(folded)
    })
}

/// Pass 1 on `workers` threads: each counts its batches, then the counts are merged in worker order.
fn count_ngrams<R: Read>(
    tweets: &mut TweetReader<R>,
    settings: &TextSettings,
    workers: usize,
) -> Result<DfCounter> {
    let counters = fold_batches(
        tweets,
        workers,
        || DfCounter::new(settings.clone()),
        |counter, text, us| counter.add(text, us),
    )?;
    let mut counters = counters.into_iter();
    let mut merged = counters
        .next()
        .ok_or_else(|| Error::Training("no worker ran".into()))?;
    counters.for_each(|other| merged.merge(other));
    Ok(merged)
}

/// Pass 3 on `workers` threads: each predicts its rows with the fitted `model` and counts the answers
/// into a profile; the profiles are added up.
fn profile_rows<R: Read>(
    tweets: &mut TweetReader<R>,
    model: &Model,
    workers: usize,
) -> Result<Profile> {
    let profiles = fold_batches(
        tweets,
        workers,
        || Ok(Profile::empty()),
        |profile, text, _| profile.observe(&model.predict_observed(text).1),
    )?;
    let mut reference = Profile::empty();
    profiles.iter().for_each(|p| reference.merge(p));
    Ok(reference)
}

/// Pass 2 on `workers` threads: each turns a batch into TF-IDF rows summed per class; the fitter takes the
/// batch sums in batch order (batch `i` from worker `i % n`), so the floating-point sums, and the model
/// file, do not depend on the number of workers; it calls `fit_with` every `ROWS_PER_FIT` rows. Returns
/// the trainer and the vectorizer with its vocabulary texts recorded.
fn fit_rows<R: Read>(
    tweets: &mut TweetReader<R>,
    vectorizer: Vectorizer,
    alpha: f64,
    workers: usize,
) -> Result<(NbTrainer, Vectorizer)> {
    let columns = vectorizer.len();
    let mut trainer = NbTrainer::new(columns, alpha)?;
    let (trainer, copies) = thread::scope(|scope| {
        let mut senders = Vec::new();
        let mut results = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = mpsc::sync_channel::<Batch>(2);
            let (sums_tx, sums_rx) = mpsc::sync_channel::<ClassSums>(2);
            senders.push(tx);
            results.push(sums_rx);
            let mut vectorizer = vectorizer.clone();
            handles.push(scope.spawn(move || {
                let (mut scratch, mut row) = (Scratch::default(), Features::new());
                for batch in rx {
                    let mut sums = ClassSums::new(columns);
                    for (text, us) in &batch {
                        vectorizer.transform_recording(text, &mut scratch, &mut row);
                        sums.add(&row, *us);
                    }
                    if sums_tx.send(sums).is_err() {
                        break; // the fitter stopped; it reports why
                    }
                }
                Ok::<_, Error>(vectorizer)
            }));
        }
        let fitter = scope.spawn(move || -> Result<NbTrainer> {
            let mut pending = ClassSums::new(columns);
            // Batch i comes from worker i % n; the first missing batch means the data has ended.
            for i in 0.. {
                let Ok(sums) = results[i % results.len()].recv() else {
                    break;
                };
                pending.merge(&sums);
                if pending.rows() >= ROWS_PER_FIT {
                    trainer.fit(&pending)?;
                    pending = ClassSums::new(columns);
                }
            }
            trainer.fit(&pending)?;
            Ok(trainer)
        });
        let dealt = deal_batches(tweets, &senders);
        drop(senders);
        let copies: Result<Vec<Vectorizer>> = handles.into_iter().map(join).collect();
        let trainer = join(fitter);
        dealt
            .and(trainer)
            .and_then(|trainer| Ok((trainer, copies?)))
    })?;
    let mut vectorizer = vectorizer;
    copies
        .iter()
        .for_each(|copy| vectorizer.adopt_vocabulary(copy));
    Ok((trainer, vectorizer))
}

fn join<T>(handle: thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    handle
        .join()
        .unwrap_or_else(|_| Err(Error::Training("a training thread panicked".into())))
}

fn train_passes<'d>(
    shown: &str,
    open_pass: &mut dyn FnMut(Pass) -> Result<Box<dyn Read + 'd>>,
    settings: &TrainSettings,
    model_date: &str,
    progress: Progress,
) -> Result<ModelFile> {
    let workers = worker_count();
    // Pass 1: document frequencies and the data digest.
    let reader = DigestReader::new(
        BufReader::with_capacity(1 << 16, open_pass(Pass::CountNgrams)?),
        |n| progress(Pass::CountNgrams, n),
    );
    let mut tweets = TweetReader::new(reader, shown)?;
    let counter = count_ngrams(&mut tweets, &settings.text, workers)?;
    let (rows, skipped) = (tweets.rows() - tweets.skipped(), tweets.skipped());
    let (data_sha256, _) = tweets.into_inner().finish();
    if rows == 0 {
        return Err(Error::Data(format!(
            "{shown}: no usable rows ({skipped} rows without text or country)"
        )));
    }
    let vectorizer = counter.finish()?;

    // Pass 2: TF-IDF rows into the classifier.
    let reader = DigestReader::new(
        BufReader::with_capacity(1 << 16, open_pass(Pass::Fit)?),
        |n| progress(Pass::Fit, n),
    );
    let mut tweets = TweetReader::new(reader, shown)?;
    let (trainer, vectorizer) = fit_rows(&mut tweets, vectorizer, settings.alpha, workers)?;
    let (second_sha256, _) = tweets.into_inner().finish();
    let changed = || {
        Error::Data(format!(
            "{shown} changed while it was being read; train again"
        ))
    };
    if second_sha256 != data_sha256 || !vectorizer.vocabulary_complete() {
        return Err(changed());
    }
    let model = Model::new(ModelFile {
        model_date: model_date.to_string(),
        trained_by: concat!("predictor ", env!("CARGO_PKG_VERSION")).to_string(),
        training: TrainingInfo {
            data_sha256,
            rows,
            skipped_rows: skipped,
        },
        vectorizer: vectorizer.to_data(),
        classifier: trainer.finish()?,
        reference: None,
    })?;

    // Pass 3: the same rows, predicted by the fitted model, into the drift reference.
    let reader = DigestReader::new(
        BufReader::with_capacity(1 << 16, open_pass(Pass::Reference)?),
        |n| progress(Pass::Reference, n),
    );
    let mut tweets = TweetReader::new(reader, shown)?;
    let reference = profile_rows(&mut tweets, &model, workers)?;
    let (third_sha256, _) = tweets.into_inner().finish();
    if third_sha256 != model.file().training.data_sha256 || reference.rows != rows {
        return Err(changed());
    }
    let mut file = model.into_file();
    file.reference = Some(reference);
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_is_every_training_row_as_the_fitted_model_answers_it() {
        let csv = crate::sample::SAMPLE_CSV;
        let file = train_from_bytes(
            csv.as_bytes(),
            "sample",
            &TrainSettings::default(),
            "2026-11-24T00:00:00Z",
        )
        .unwrap();
        let reference = file.reference.clone().expect("a reference");
        assert_eq!(reference.rows, file.training.rows);
        // The same rows, one by one on this thread, with the model the file holds.
        let model = Model::new(file).unwrap();
        let rows = crate::data::read_all(csv.as_bytes(), "sample").unwrap();
        let mut expected = Profile::empty();
        for (text, _) in &rows {
            expected.observe(&model.predict_observed(text).1);
        }
        assert_eq!(reference, expected);
        // Both classes are predicted; the sample has fewer n-grams than the 3,000 kept, so the
        // vocabulary knows every n-gram of every training row.
        assert!(reference.positive.iter().all(|&n| n > 0), "{reference:?}");
        assert_eq!(reference.known[9], reference.rows, "{reference:?}");
    }
}
