//! The predictor library: tweets in, "is the author in the US?" out.
//!
//! Pipeline: [`data`] reads labelled CSV → [`text`] tokenizes and builds TF-IDF rows → [`classifier`] fits
//! linfa-bayes multinomial naive Bayes → [`model`] writes and loads the self-describing model file.
//! [`train`] and [`evaluate`] drive those steps over a [`source`] (path, http(s) URL or [`hdfs`] URL);
//! [`server`] serves a model over HTTP and [`client`] measures a live server.

pub mod classifier;
pub mod client;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod hdfs;
pub mod metrics;
pub mod model;
pub mod sample;
pub mod server;
pub mod source;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod tls;
pub mod train;
pub mod watch;

pub use error::{Error, Result};
pub use model::{Model, ModelFile, Prediction};
