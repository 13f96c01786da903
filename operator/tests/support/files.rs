//! Files and ports for tests: the workspace root, free loopback ports, relative paths for kustomize,
//! and model files on a loopback model store (`predictor::testing`'s file server).

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use model_store::testing::FileServer;

/// The workspace root (operator/..).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

pub use model_store::testing::free_port;

/// `target` as a path relative to the directory `from` (kustomize refuses absolute resource paths).
pub fn relative_to(from: &Path, target: &Path) -> PathBuf {
    let from = from.canonicalize().expect("canonicalize from");
    let target = target.canonicalize().expect("canonicalize target");
    let mut up = PathBuf::new();
    for _ in from.components().skip(1) {
        up.push("..");
    }
    up.join(target.strip_prefix("/").expect("absolute path"))
}

/// A model file on a [`FileServer`]: where, and its digest.
#[derive(Clone, Debug)]
pub struct ServedModel {
    pub url: String,
    pub sha: String,
}

impl ServedModel {
    /// Serves a fresh [`model_file`] (trained with `model_date`) at `path` on `files`.
    pub fn put(files: &FileServer, path: &str, model_date: &str) -> ServedModel {
        let (bytes, sha) = model_file(model_date);
        ServedModel {
            url: files.put(path, bytes),
            sha,
        }
    }
}

/// A valid model file trained on the built-in sample: (bytes, sha256). Different `model_date`s give
/// different digests.
pub fn model_file(model_date: &str) -> (Vec<u8>, String) {
    predictor::testing::trained_model(predictor::sample::SAMPLE_CSV.as_bytes(), model_date)
}
