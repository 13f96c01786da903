//! Container images of Predictors: what an image reference means ([`reference`]).

pub mod reference;

pub use reference::ImageReference;
