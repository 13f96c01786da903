//! The `Predictor` operator: runs trained models on Kubernetes as a Deployment and a Service per
//! `Predictor` object, checks a new model before it rolls out, and reports what is being served.
//!
//! Module map: [`crd`] (the API types), [`resources`] and [`status`] (pure builders),
//! [`model_check`] (pre-flight download and verification), [`store_env`] (the pods' environment for their model's store), [`store_url`] (which URLs the operator
//! reads), [`spool`] (the fetch-once store on disk the model check and the quality gate read) and
//! [`budget`] (the memory every read of a URL reserves), [`quality`] (the offline quality gate:
//! a new model scored on a labelled data set before it rolls out), [`canary`], [`scrape`] and
//! [`analysis`] (the online gate: a candidate measured on canary pods and shadow copies), [`image`] (image references and the
//! registry API), [`reconcile`] (the reconcile, a file per job), [`ownership`] (which objects are a Predictor's own),
//! [`leader`] (Lease-based leader election), [`metrics`] and [`server`] (`/metrics`, `/healthz`),
//! [`manager`] (the process: those parts started and stopped in order), [`watch`] (the namespaces it
//! works in, and their watches merged into one cache per kind), [`reference`] (`docs/reference.md`, the CRD
//! as a Markdown reference).

pub mod analysis;
pub mod budget;
pub mod canary;
pub mod crd;
pub mod drift;
pub mod error;
pub mod image;
pub mod leader;
pub mod manager;
pub mod metrics;
pub mod model_access;
pub mod model_check;
pub mod ownership;
pub mod quality;
pub mod reconcile;
pub mod reference;
pub mod resources;
pub mod scrape;
pub mod server;
pub mod spool;
pub mod status;
pub mod store_env;
pub mod store_url;
pub mod telemetry;
pub mod watch;

#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
#[cfg(test)]
mod hostile_urls;

pub use error::{Error, Result};
