//! Text → features: tokenizer, stop words, n-grams and the TF-IDF vectorizer.

pub mod stopwords;
pub mod tokenize;
pub mod vectorizer;

pub use tokenize::tokenize;
pub use vectorizer::{DfCounter, Features, TextSettings, Vectorizer, VectorizerData};
