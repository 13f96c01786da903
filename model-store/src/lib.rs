//! The model stores: where model files and data sets are read from and written to, with no notion
//! of what is in them. A [`Location`] (a path, `file://`, `http(s)://`, [`hdfs`]`://`, [`s3`]`://`
//! or [`oci`]`://`) is read with [`open`] (a blocking stream) or a [`Fetcher`] (bounded downloads),
//! and a model written with [`upload`]; who may read a store that is not anonymous is a
//! [`StoreAccess`]. Below them: the [`registry`] client (with docker-config [`registry::auth`] and
//! the registry's [`registry::name`]s), shared by `oci://` and the operator's image pre-flight;
//! what every client shares ([`transport`], [`tls`], [`digest`]); and the [`egress`] limit of tests.
//! Every location shown in a log or message is [`redact`]ed.

pub mod access;
pub mod digest;
pub mod egress;
pub mod error;
pub mod fetch;
pub mod hdfs;
pub mod location;
pub mod oci;
pub mod registry;
pub mod s3;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod transport;
pub mod upload;

pub use access::StoreAccess;
pub use error::{Error, Result};
pub use fetch::{Fetcher, Opened, fetch, open};
pub use location::{Location, redact};
pub use upload::upload;
