//! Model files for the workspace's tests (feature `testing`); the loopback stores and servers they are
//! served from are `model_store::testing`'s. [`settings`]: the check that the docs list every setting.

use crate::train::{TrainSettings, train_from_bytes};

pub mod settings;

/// A model file trained with the default settings on `csv` (labelled CSV), dated `model_date`:
/// (file bytes, sha256). Another date gives another file and another digest.
pub fn trained_model(csv: &[u8], model_date: &str) -> (Vec<u8>, String) {
    let bytes = train_from_bytes(csv, "test data", &TrainSettings::default(), model_date)
        .expect("train on the test data")
        .to_bytes()
        .expect("encode the model");
    let sha = crate::model::sha256_hex(&bytes);
    (bytes, sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trained_models_differ_by_date_and_carry_their_digest() {
        let sample = crate::sample::SAMPLE_CSV.as_bytes();
        let (a, sha_a) = trained_model(sample, "2026-11-24T00:00:00Z");
        let (b, sha_b) = trained_model(sample, "2026-11-25T00:00:00Z");
        assert_eq!(sha_a, crate::model::sha256_hex(&a));
        assert_ne!(sha_a, sha_b);
        assert!(crate::ModelFile::from_bytes(&b).is_ok());
    }
}
