//! The predictor library: tweets in, "is the author in the US?" out.
//!
//! Pipeline: [`data`] reads labelled CSV → [`text`] tokenizes and builds TF-IDF rows → [`classifier`] fits
//! linfa-bayes multinomial naive Bayes → [`model`] writes and loads the self-describing model file.
//! [`train`] and [`evaluate`] drive those steps over a [`source`] (path, http(s), [`hdfs`], [`s3`] or
//! [`oci`] URL; what their clients share: [`transport`] and [`digest`]);
//! [`server`] serves a model over HTTP (copying a sample of requests to a candidate with [`shadow`]), [`client`] measures a live server and [`probe`] follows one through a
//! rollout. [`cli`] is what the `predictor` command does with its arguments.

pub mod classifier;
pub mod cli;
pub mod client;
pub mod data;
pub mod digest;
pub mod egress;
pub mod error;
pub mod evaluate;
pub mod hdfs;
pub mod metrics;
pub mod model;
pub mod oci;
pub mod probe;
pub mod publish;
pub mod registry;
pub mod registry_auth;
pub mod registry_name;
pub mod s3;
pub mod sample;
pub mod server;
pub mod shadow;
pub mod source;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod tls;
pub mod train;
pub mod transport;

pub use error::{Error, Result};
pub use model::{Model, ModelFile, Prediction};
