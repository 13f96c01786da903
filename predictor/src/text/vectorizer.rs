//! Word n-grams, counts and TF-IDF: the vectorizer and the document-frequency pass that fits it.
//!
//! N-grams are keyed by a 64-bit FNV-1a hash of their text (`"new york"`), computed from the token
//! slices without building the string, so neither fitting nor the prediction hot path allocates per n-gram.
//! The vocabulary keeps the n-gram texts (plain serde data, stored in the model file); the hash index is
//! rebuilt from them at load.
//!
//! Weights follow scikit-learn's `TfidfTransformer` (smooth idf, optional sublinear tf, L2 row norm).
//! Every weight is finite and non-negative: counts ≥ 1, `1 + ln(count)` ≥ 1, idf ≥ 1, and a row whose norm
//! is zero (no known n-gram) stays empty instead of being divided by zero. Multinomial NB needs exactly that
//! (linfa-bayes 0.8.1 panics on NaN scores, and negative counts are meaningless to it).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::stopwords::is_stop_word;
use super::tokenize::{for_each_token, lowercase_into};
use crate::error::{Error, Result};

/// How text becomes features. Stored in the model file so serving uses exactly the training pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextSettings {
    /// Longest n-gram: 1 = unigrams, 2 = unigrams + bigrams, 3 adds trigrams.
    pub ngram_max: u8,
    /// Drop English stop words before building n-grams.
    pub stop_words: bool,
    /// Use `1 + ln(count)` instead of the raw count.
    pub sublinear_tf: bool,
    /// Keep only n-grams seen in at least this many training documents.
    pub min_df: u32,
    /// Keep at most this many n-grams, the ones most associated with either class (χ² of document
    /// occurrence against the label, as scikit-learn's `SelectKBest(chi2)`); `None` keeps all.
    pub max_features: Option<u32>,
    /// Also use character n-grams of these lengths (inclusive) inside each space-padded word, like
    /// scikit-learn's `char_wb`: they catch spellings (`colour`/`color`) and place-name endings.
    pub char_ngrams: Option<(u8, u8)>,
}

impl Default for TextSettings {
    /// The default pipeline, chosen by cross-validation on train.csv (docs/pipeline.md): words and word
    /// pairs plus character trigrams inside words, the 3,000 n-grams with the best χ².
    fn default() -> Self {
        Self {
            ngram_max: 2,
            stop_words: false,
            sublinear_tf: true,
            min_df: 1,
            max_features: Some(3_000),
            char_ngrams: Some((3, 3)),
        }
    }
}

impl TextSettings {
    /// Checks the settings once, before any data is read.
    pub fn validate(&self) -> Result<()> {
        if !(1..=3).contains(&self.ngram_max) {
            return Err(Error::Settings(format!(
                "ngram_max must be 1, 2 or 3, not {}",
                self.ngram_max
            )));
        }
        if self.min_df == 0 {
            return Err(Error::Settings("min_df must be at least 1".into()));
        }
        if let Some((lo, hi)) = self.char_ngrams
            && !(1 <= lo && lo <= hi && hi <= 8)
        {
            return Err(Error::Settings(format!(
                "character n-gram lengths must satisfy 1 ≤ {lo} ≤ {hi} ≤ 8"
            )));
        }
        if self.max_features == Some(0) {
            return Err(Error::Settings("max_features must be at least 1".into()));
        }
        Ok(())
    }
}

/// Sparse feature row: `(column, weight)` sorted by column, each column once.
pub type Features = Vec<(u32, f64)>;

/// A hasher for keys that already are hashes.
#[derive(Default)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used with this hasher; fold anything else in for safety.
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashIndex<V> = HashMap<u64, V, BuildHasherDefault<PassThroughHasher>>;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

const fn fnv_extend(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

/// First byte of a character n-gram's vocabulary text; tokens never contain it, so character and word
/// n-grams cannot be confused.
const CHAR_GRAM_MARK: char = '\u{1}';
/// Hash state after the mark: where every character n-gram's hash starts.
const CHAR_GRAM_HASH: u64 = fnv_extend(FNV_OFFSET, &[CHAR_GRAM_MARK as u8]);

/// Hash of a vocabulary entry's text: the key both fitting and serving use.
fn text_hash(text: &str) -> u64 {
    fnv_extend(FNV_OFFSET, text.as_bytes())
}

/// One feature occurrence, borrowed from the tokens.
enum Gram<'a> {
    /// A word n-gram: its tokens.
    Words(&'a [&'a str]),
    /// A character n-gram of a space-padded word.
    Chars(&'a str),
}

impl Gram<'_> {
    /// The vocabulary text (built only when a new column is recorded).
    fn text(&self) -> String {
        match self {
            Gram::Words(tokens) => tokens.join(" "),
            Gram::Chars(chars) => format!("{CHAR_GRAM_MARK}{chars}"),
        }
    }
}

/// Hash of the n-gram text `tokens.join(" ")`, without building it.
pub fn ngram_hash(tokens: &[&str]) -> u64 {
    let mut hash = FNV_OFFSET;
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 {
            hash = fnv_extend(hash, b" ");
        }
        hash = fnv_extend(hash, token.as_bytes());
    }
    hash
}

/// The tokens of `text` (lowercased into `lower`), stop words removed if the settings say so.
fn settings_tokens<'a>(settings: &TextSettings, text: &str, lower: &'a mut String) -> Vec<&'a str> {
    lowercase_into(text, lower);
    let mut tokens = Vec::with_capacity(32);
    for_each_token(lower, |t| {
        if !(settings.stop_words && is_stop_word(t)) {
            tokens.push(t)
        }
    });
    tokens
}

/// Calls `emit` with the hash of every feature of `tokens`: word n-grams for n = 1..=ngram_max, then the
/// character n-grams if enabled. `padded` is a reused buffer.
fn for_each_gram(
    settings: &TextSettings,
    tokens: &[&str],
    padded: &mut String,
    mut emit: impl FnMut(u64, &Gram<'_>),
) {
    for n in 1..=usize::from(settings.ngram_max) {
        for gram in tokens.windows(n) {
            emit(ngram_hash(gram), &Gram::Words(gram));
        }
    }
    let Some((lo, hi)) = settings.char_ngrams else {
        return;
    };
    let (lo, hi) = (usize::from(lo), usize::from(hi));
    for token in tokens {
        padded.clear();
        padded.push(' ');
        padded.push_str(token);
        padded.push(' ');
        let bytes = padded.as_bytes();
        // Each start position extends one hash a character at a time, emitting lengths lo..=hi.
        if bytes.is_ascii() {
            for start in 0..bytes.len() {
                let mut hash = CHAR_GRAM_HASH;
                for end in start..bytes.len().min(start + hi) {
                    hash = fnv_extend(hash, &bytes[end..=end]);
                    if end - start + 1 >= lo {
                        emit(hash, &Gram::Chars(&padded[start..=end]));
                    }
                }
            }
        } else {
            let bounds: Vec<usize> = padded
                .char_indices()
                .map(|(i, _)| i)
                .chain([padded.len()])
                .collect();
            let chars = bounds.len() - 1;
            for start in 0..chars {
                let mut hash = CHAR_GRAM_HASH;
                for n in 1..=hi.min(chars - start) {
                    hash = fnv_extend(hash, &bytes[bounds[start + n - 1]..bounds[start + n]]);
                    if n >= lo {
                        emit(
                            hash,
                            &Gram::Chars(&padded[bounds[start]..bounds[start + n]]),
                        );
                    }
                }
            }
        }
    }
}

/// Most distinct n-grams the first pass tracks at once (about 100 MB). Past it, the rarest are forgotten
/// (see [`DfCounter::add`]).
pub const MAX_CANDIDATES: usize = 4 << 20;

/// First pass of fitting: counts in how many documents of each class every n-gram occurs. Memory grows
/// with the number of distinct n-grams up to [`MAX_CANDIDATES`], never with the number of documents.
pub struct DfCounter {
    settings: TextSettings,
    /// Documents per class (index 1 = US).
    documents: [u64; 2],
    /// Per n-gram: documents per class containing it.
    df: HashIndex<DocCount>,
    lower: String,
    padded: String,
}

/// Document counts of one n-gram.
#[derive(Clone, Copy, Default)]
struct DocCount {
    /// Documents per class.
    per_class: [u32; 2],
    /// Number (1-based) of the last document counted, so repeats within a document count once.
    last_document: u64,
}

impl DocCount {
    fn total(&self) -> u32 {
        self.per_class[0] + self.per_class[1]
    }
}

impl DfCounter {
    /// A counter for validated `settings`.
    pub fn new(settings: TextSettings) -> Result<Self> {
        settings.validate()?;
        Ok(Self {
            settings,
            documents: [0; 2],
            df: HashIndex::default(),
            lower: String::new(),
            padded: String::new(),
        })
    }

    /// Counts one document of class `is_american`.
    pub fn add(&mut self, text: &str, is_american: bool) {
        let class = usize::from(is_american);
        self.documents[class] += 1;
        let document = self.documents[0] + self.documents[1];
        let tokens = settings_tokens(&self.settings, text, &mut self.lower);
        let df = &mut self.df;
        for_each_gram(&self.settings, &tokens, &mut self.padded, |hash, _| {
            let count = df.entry(hash).or_default();
            if count.last_document != document {
                count.last_document = document;
                count.per_class[class] += 1;
            }
        });
        if self.df.len() > MAX_CANDIDATES {
            self.forget_rarest();
        }
    }

    /// Adds another counter's documents (same settings; a parallel worker's share of the data).
    pub fn merge(&mut self, other: DfCounter) {
        for class in 0..2 {
            self.documents[class] += other.documents[class];
        }
        for (hash, count) in other.df {
            let mine = self.df.entry(hash).or_default();
            mine.per_class[0] += count.per_class[0];
            mine.per_class[1] += count.per_class[1];
        }
        if self.df.len() > MAX_CANDIDATES {
            self.forget_rarest();
        }
    }

    /// Bounds memory on huge inputs: drops the n-grams seen in the fewest documents until at most half of
    /// [`MAX_CANDIDATES`] remain. Only n-grams that are rare *so far* are lost; they could not have made the
    /// χ² or min_df cut unless they became frequent later. Inputs below the cap (train.csv has ~150,000
    /// candidates) are never pruned, so their models are exact.
    fn forget_rarest(&mut self) {
        let mut floor = 1;
        while self.df.len() > MAX_CANDIDATES / 2 {
            self.df.retain(|_, count| count.total() > floor);
            floor += 1;
        }
        self.df.shrink_to(MAX_CANDIDATES);
    }

    /// Chooses the vocabulary (min_df, then the max_features best by χ²) and computes its idf.
    /// The result knows each column's hash; its n-gram texts are filled in by [`Vectorizer::transform_recording`].
    pub fn finish(self) -> Result<Vectorizer> {
        let documents = self.documents;
        let mut kept: Vec<(u64, [u32; 2])> = self
            .df
            .into_iter()
            .filter(|(_, count)| count.total() >= self.settings.min_df)
            .map(|(hash, count)| (hash, count.per_class))
            .collect();
        if let Some(max) = self.settings.max_features {
            // Best χ² first; ties by hash, so the same data always gives the same model file.
            let mut scored: Vec<(f64, u64, [u32; 2])> = kept
                .iter()
                .map(|&(hash, df)| (chi2(df, documents), hash, df))
                .collect();
            let order = |a: &(f64, u64, [u32; 2]), b: &(f64, u64, [u32; 2])| {
                b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
            };
            if scored.len() > max as usize {
                scored.select_nth_unstable_by(max as usize, order);
                scored.truncate(max as usize);
            }
            kept = scored.into_iter().map(|(_, hash, df)| (hash, df)).collect();
        }
        // Column order: by hash (deterministic, independent of the selection's order).
        kept.sort_unstable_by_key(|&(hash, _)| hash);
        if kept.is_empty() {
            return Err(Error::Data(format!(
                "no n-gram occurs in at least {} of the {} training texts: nothing to learn from",
                self.settings.min_df,
                documents[0] + documents[1]
            )));
        }
        let n = (documents[0] + documents[1]) as f64;
        let idf = kept
            .iter()
            .map(|&(_, df)| ((1.0 + n) / (1.0 + f64::from(df[0] + df[1]))).ln() + 1.0)
            .collect();
        let index = kept
            .iter()
            .enumerate()
            .map(|(col, &(hash, _))| (hash, col as u32))
            .collect();
        Ok(Vectorizer {
            settings: self.settings,
            vocabulary: vec![String::new(); kept.len()],
            unnamed: kept.len(),
            idf,
            index,
        })
    }
}

/// χ² statistic of the 2×2 table (n-gram present/absent × class), from document counts.
fn chi2(df: [u32; 2], documents: [u64; 2]) -> f64 {
    let n = (documents[0] + documents[1]) as f64;
    let (a, b) = (f64::from(df[1]), f64::from(df[0])); // present: US, other
    let (c, d) = (documents[1] as f64 - a, documents[0] as f64 - b); // absent: US, other
    let denominator = (a + b) * (c + d) * (a + c) * (b + d);
    if denominator == 0.0 {
        0.0
    } else {
        n * (a * d - b * c).powi(2) / denominator
    }
}

/// The serialized form of a fitted vectorizer: plain data, stored in the model file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorizerData {
    pub settings: TextSettings,
    /// Column → n-gram text (tokens joined by one space). Decoded within the model file's
    /// allowance ([`crate::model::bounded_texts`]).
    #[serde(deserialize_with = "crate::model::bounded_texts")]
    pub vocabulary: Vec<String>,
    /// Column → inverse document frequency.
    pub idf: Vec<f64>,
}

/// A fitted vectorizer: text in, L2-normalized TF-IDF sparse row out.
#[derive(Clone, Debug)]
pub struct Vectorizer {
    settings: TextSettings,
    vocabulary: Vec<String>,
    idf: Vec<f64>,
    index: HashIndex<u32>,
    /// Columns whose text is not known yet (only between the two fitting passes).
    unnamed: usize,
}

/// How many n-grams (word and character ones, each occurrence) a text had, and how many of them the
/// vocabulary knows: what drift's "known" signal is made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NgramCounts {
    pub known: u32,
    pub total: u32,
}

/// Buffers reused between calls to [`Vectorizer::transform`].
#[derive(Default)]
pub struct Scratch {
    lower: String,
    padded: String,
}

impl Vectorizer {
    /// Rebuilds a vectorizer from its stored data, checking it is consistent.
    pub fn from_data(data: VectorizerData) -> Result<Self> {
        data.settings.validate()?;
        if data.vocabulary.len() != data.idf.len() {
            return Err(Error::Corrupt(format!(
                "vocabulary has {} n-grams but idf has {} weights",
                data.vocabulary.len(),
                data.idf.len()
            )));
        }
        if let Some(bad) = data.idf.iter().find(|w| !w.is_finite() || **w < 1.0) {
            return Err(Error::Corrupt(format!(
                "idf weight {bad} is not a finite number ≥ 1"
            )));
        }
        let mut index = HashIndex::default();
        index.reserve(data.vocabulary.len());
        for (col, gram) in data.vocabulary.iter().enumerate() {
            if gram.is_empty() {
                return Err(Error::Corrupt(format!("vocabulary entry {col} is empty")));
            }
            if index.insert(text_hash(gram), col as u32).is_some() {
                return Err(Error::Corrupt(format!(
                    "n-gram {gram:?} appears twice in the vocabulary"
                )));
            }
        }
        Ok(Self {
            settings: data.settings,
            vocabulary: data.vocabulary,
            idf: data.idf,
            index,
            unnamed: 0,
        })
    }

    /// The stored form.
    pub fn to_data(&self) -> VectorizerData {
        VectorizerData {
            settings: self.settings.clone(),
            vocabulary: self.vocabulary.clone(),
            idf: self.idf.clone(),
        }
    }

    pub fn settings(&self) -> &TextSettings {
        &self.settings
    }

    /// Number of feature columns.
    pub fn len(&self) -> usize {
        self.idf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.idf.is_empty()
    }

    /// The TF-IDF row of `text` into `out` (cleared first), and how many of its n-grams it knew.
    pub fn transform(&self, text: &str, scratch: &mut Scratch, out: &mut Features) -> NgramCounts {
        self.transform_with(text, scratch, out, |_, _| {})
    }

    /// Like [`transform`](Self::transform), and records the text of each column seen whose text is not yet
    /// known (second pass of fitting).
    pub fn transform_recording(&mut self, text: &str, scratch: &mut Scratch, out: &mut Features) {
        if self.unnamed == 0 {
            self.transform(text, scratch, out);
            return;
        }
        let mut found: Vec<(u32, String)> = Vec::new();
        self.transform_with(text, scratch, out, |col, gram| {
            if self.vocabulary[col as usize].is_empty() {
                found.push((col, gram.text()));
            }
        });
        for (col, gram) in found {
            if self.vocabulary[col as usize].is_empty() {
                self.vocabulary[col as usize] = gram;
                self.unnamed -= 1;
            }
        }
    }

    /// Takes the n-gram texts another copy recorded for columns this one has not seen.
    pub fn adopt_vocabulary(&mut self, other: &Vectorizer) {
        for (mine, theirs) in self.vocabulary.iter_mut().zip(&other.vocabulary) {
            if mine.is_empty() && !theirs.is_empty() {
                mine.clone_from(theirs);
                self.unnamed -= 1;
            }
        }
    }

    /// Whether every column has its n-gram text (after the second fitting pass).
    pub fn vocabulary_complete(&self) -> bool {
        self.unnamed == 0
    }

    fn transform_with(
        &self,
        text: &str,
        scratch: &mut Scratch,
        out: &mut Features,
        mut on_hit: impl FnMut(u32, &Gram<'_>),
    ) -> NgramCounts {
        out.clear();
        let tokens = settings_tokens(&self.settings, text, &mut scratch.lower);
        let mut total = 0usize;
        for_each_gram(
            &self.settings,
            &tokens,
            &mut scratch.padded,
            |hash, gram| {
                total += 1;
                if let Some(&col) = self.index.get(&hash) {
                    on_hit(col, gram);
                    out.push((col, 1.0));
                }
            },
        );
        // Every hit is one entry until repeats are merged below: the known count costs nothing.
        let counts = NgramCounts {
            known: u32::try_from(out.len()).unwrap_or(u32::MAX),
            total: u32::try_from(total).unwrap_or(u32::MAX),
        };
        // Counts: sort by column and merge repeats.
        out.sort_unstable_by_key(|&(col, _)| col);
        out.dedup_by(|next, kept| {
            let same = next.0 == kept.0;
            if same {
                kept.1 += 1.0;
            }
            same
        });
        let mut norm = 0.0;
        for (col, weight) in out.iter_mut() {
            let tf = if self.settings.sublinear_tf {
                1.0 + weight.ln()
            } else {
                *weight
            };
            *weight = tf * self.idf[*col as usize];
            norm += *weight * *weight;
        }
        if norm > 0.0 {
            let inv = 1.0 / norm.sqrt();
            out.iter_mut().for_each(|(_, w)| *w *= inv);
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(settings: TextSettings, docs: &[&str]) -> Vectorizer {
        let mut counter = DfCounter::new(settings).unwrap();
        docs.iter()
            .enumerate()
            .for_each(|(i, d)| counter.add(d, i % 2 == 0));
        let mut vectorizer = counter.finish().unwrap();
        let (mut scratch, mut out) = (Scratch::default(), Features::new());
        docs.iter()
            .for_each(|d| vectorizer.transform_recording(d, &mut scratch, &mut out));
        assert!(vectorizer.vocabulary_complete());
        vectorizer
    }

    fn weights(v: &Vectorizer, text: &str) -> Vec<(String, f64)> {
        let mut out = Features::new();
        v.transform(text, &mut Scratch::default(), &mut out);
        out.iter()
            .map(|&(c, w)| (v.vocabulary[c as usize].clone(), w))
            .collect()
    }

    /// Words and pairs only, every n-gram kept.
    fn plain() -> TextSettings {
        TextSettings {
            ngram_max: 2,
            stop_words: false,
            sublinear_tf: true,
            min_df: 1,
            max_features: None,
            char_ngrams: None,
        }
    }

    fn unigrams() -> TextSettings {
        TextSettings {
            ngram_max: 1,
            sublinear_tf: false,
            ..plain()
        }
    }

    #[test]
    fn hash_of_tokens_equals_hash_of_joined_text() {
        assert_eq!(ngram_hash(&["new", "york"]), text_hash("new york"));
        assert_ne!(ngram_hash(&["new", "york"]), ngram_hash(&["newyork"]));
    }

    #[test]
    fn idf_and_l2_weights_match_scikit_learn() {
        // Reference: scikit-learn 1.9.1 TfidfVectorizer(token_pattern=r"\S+") fitted on the same three texts
        // gives, for "nyc nyc rain": nyc 0.959056, rain 0.283217.
        let v = fit(
            unigrams(),
            &["nyc nyc rain", "rain london", "london tea rain"],
        );
        let got = weights(&v, "nyc nyc rain");
        let idf_nyc = (4.0f64 / 2.0).ln() + 1.0;
        let idf_rain = (4.0f64 / 4.0).ln() + 1.0;
        let norm = ((2.0 * idf_nyc).powi(2) + idf_rain.powi(2)).sqrt();
        let expect = [("nyc", 2.0 * idf_nyc / norm), ("rain", idf_rain / norm)];
        let mut got_sorted = got.clone();
        got_sorted.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got_sorted.len(), 2);
        for ((name, w), (want_name, want_w)) in got_sorted.iter().zip(expect) {
            assert_eq!(name, want_name);
            assert!((w - want_w).abs() < 1e-12, "{name}: {w} vs {want_w}");
        }
        assert!(
            (got_sorted[0].1 - 0.959056).abs() < 1e-6 && (got_sorted[1].1 - 0.283217).abs() < 1e-6
        );
    }

    #[test]
    fn bigrams_and_sublinear_tf() {
        let settings = TextSettings {
            ngram_max: 2,
            sublinear_tf: true,
            ..plain()
        };
        let v = fit(settings, &["new york new york", "york"]);
        let mut got = weights(&v, "new york new york");
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["new", "new york", "york", "york new"]);
        // scikit-learn 1.9.1 TfidfVectorizer(token_pattern=r"\S+", ngram_range=(1, 2), sublinear_tf=True):
        // new 0.591823, new york 0.591823, york 0.421087, york new 0.349540.
        // tf: new 2, new york 2, york 2, york new 1 → 1+ln2, 1+ln2, 1+ln2, 1; idf: york ln(3/3)+1, others ln(3/2)+1
        let (a, b) = (((3.0f64 / 2.0).ln() + 1.0), 1.0);
        let t = 1.0 + 2f64.ln();
        let raw = [t * a, t * a, t * b, a];
        let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
        for (((_, w), r), sklearn) in got
            .iter()
            .zip(raw)
            .zip([0.591823, 0.591823, 0.421087, 0.349540])
        {
            assert!((w - r / norm).abs() < 1e-12);
            assert!((w - sklearn).abs() < 1e-6);
        }
    }

    #[test]
    fn min_df_max_features_and_stop_words() {
        let docs = ["the cat sat", "the cat ran", "a dog ran"];
        let v = fit(
            TextSettings {
                min_df: 2,
                ..unigrams()
            },
            &docs,
        );
        let mut vocab = v.to_data().vocabulary;
        vocab.sort();
        assert_eq!(vocab, ["cat", "ran", "the"]);
        let v = fit(
            TextSettings {
                max_features: Some(1),
                ..unigrams()
            },
            &docs,
        );
        assert_eq!(v.len(), 1);
        let v = fit(
            TextSettings {
                stop_words: true,
                ..unigrams()
            },
            &docs,
        );
        let mut vocab = v.to_data().vocabulary;
        vocab.sort();
        assert_eq!(vocab, ["cat", "dog", "ran", "sat"]);
    }

    #[test]
    fn character_ngrams_of_padded_words() {
        let settings = TextSettings {
            char_ngrams: Some((3, 4)),
            ..unigrams()
        };
        let v = fit(settings, &["colour ok"]);
        let mut vocab: Vec<String> = v
            .to_data()
            .vocabulary
            .iter()
            .map(|g| g.replace(CHAR_GRAM_MARK, "|"))
            .collect();
        vocab.sort();
        let mut expect = [
            "colour", "ok", "| co", "|col", "|olo", "|lou", "|our", "|ur ", "| col", "|colo",
            "|olou", "|lour", "|our ", "| ok", "|ok ", "| ok ",
        ];
        expect.sort();
        assert_eq!(vocab, expect);
        let again = Vectorizer::from_data(v.to_data()).unwrap();
        assert_eq!(weights(&v, "colour"), weights(&again, "colour"));
        assert!(
            TextSettings {
                char_ngrams: Some((4, 2)),
                ..unigrams()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn transform_counts_every_ngram_occurrence_and_the_known_ones() {
        // Words and pairs of "nyc nyc rain": nyc, nyc, rain, "nyc nyc", "nyc rain" (5); fitted on
        // "nyc rain" alone, the vocabulary knows nyc (twice), rain and "nyc rain": 4.
        let v = fit(plain(), &["nyc rain"]);
        let (mut scratch, mut out) = (Scratch::default(), Features::new());
        let counts = v.transform("nyc nyc rain", &mut scratch, &mut out);
        assert_eq!(counts, NgramCounts { known: 4, total: 5 });
        assert_eq!(out.len(), 3, "a column per distinct known n-gram");
        let none = v.transform("", &mut scratch, &mut out);
        assert_eq!(none, NgramCounts { known: 0, total: 0 });
        // Character trigrams of the padded word " ab " (" ab", "ab ") add to the words' count.
        let v = fit(
            TextSettings {
                char_ngrams: Some((3, 3)),
                ..unigrams()
            },
            &["ab"],
        );
        let counts = v.transform("ab cd", &mut scratch, &mut out);
        assert_eq!(counts, NgramCounts { known: 3, total: 6 });
    }

    #[test]
    fn unknown_text_gives_an_empty_row_not_nan() {
        let v = fit(unigrams(), &["alpha beta"]);
        assert!(weights(&v, "gamma 🔥").is_empty());
        assert!(weights(&v, "").is_empty());
    }

    #[test]
    fn round_trips_through_data() {
        let v = fit(
            TextSettings::default(),
            &["I love NYC #nyc", "London calling @bbc"],
        );
        let again = Vectorizer::from_data(v.to_data()).unwrap();
        assert_eq!(
            weights(&v, "love london nyc"),
            weights(&again, "love london nyc")
        );
    }

    #[test]
    fn inconsistent_data_is_refused() {
        let v = fit(unigrams(), &["a b"]);
        let mut data = v.to_data();
        data.idf.pop();
        assert!(matches!(
            Vectorizer::from_data(data),
            Err(Error::Corrupt(_))
        ));
        let mut data = v.to_data();
        data.idf[0] = f64::NAN;
        assert!(matches!(
            Vectorizer::from_data(data),
            Err(Error::Corrupt(_))
        ));
        assert!(
            DfCounter::new(TextSettings {
                ngram_max: 4,
                ..unigrams()
            })
            .is_err()
        );
    }
}
