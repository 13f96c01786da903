//! Container images of Predictors: what an image reference means ([`reference`]), which registry
//! credentials a `kubernetes.io/dockerconfigjson` Secret holds ([`credentials`]), and which digest a
//! tag points at right now, asked of the registry itself ([`resolver`]); and the pre-flight that
//! pins a Predictor's pods to that digest before they roll out ([`check`]).

pub mod check;
pub mod credentials;
pub mod reference;
pub mod resolver;

pub use check::ImageChecker;
pub use credentials::{Credentials, DockerConfig};
pub use reference::ImageReference;
pub use resolver::{Resolver, rejection_reason};
