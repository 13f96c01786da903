//! The predictor library: tweets in, "is the author in the US?" out.
//!
//! Pipeline: [`data`] reads labelled CSV → [`text`] tokenizes and builds TF-IDF rows → [`classifier`] fits
//! linfa-bayes multinomial naive Bayes → [`model`] writes and loads the self-describing model file.
//! [`train`] and [`evaluate`] drive those steps over a location of the `model_store` crate (a path,
//! http(s), hdfs, s3 or oci URL).
//!
//! With the `serve` feature (default): [`server`] serves a model over HTTP (copying a sample of requests
//! to a candidate with [`shadow`]), [`client`] measures a live server, [`probe`] follows one through a
//! rollout and [`publish`] puts a model in a store. [`cli`] is what the `predictor` command does with
//! its arguments. The operator builds without it: the model and its scoring, no server (with feature
//! `durations`: [`cli::durations`], the one way both binaries read a duration).

pub mod classifier;
#[cfg(feature = "durations")]
pub mod cli;
#[cfg(feature = "serve")]
pub mod client;
pub mod data;
pub mod drift;
pub mod error;
pub mod evaluate;
pub mod metrics;
pub mod model;
#[cfg(feature = "serve")]
pub mod probe;
#[cfg(feature = "serve")]
pub mod publish;
pub mod sample;
#[cfg(feature = "serve")]
pub mod server;
#[cfg(feature = "serve")]
pub mod shadow;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod train;

pub use error::{Error, Result};
pub use model::{Model, ModelFile, Prediction};
