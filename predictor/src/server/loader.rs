//! Fetching, verifying and loading the model at start, retried until it is served.

use std::sync::Arc;

use super::{AppState, MAX_MODEL_BYTES, ServeConfig, ServedModel};
use crate::error::Error;
use crate::model::{Model, sha256_hex};

/// Fetches, verifies and loads the model, retrying with capped exponential backoff until it succeeds.
/// Nothing unverified is ever installed: a wrong digest or a corrupt file only updates the not-ready reason.
pub async fn load_model(state: Arc<AppState>, config: ServeConfig) {
    let shown = model_store::redact(&config.model_url);
    let expected = config.model_sha256.to_ascii_lowercase();
    let mut pause = config.retry_initial;
    for attempt in 1u64.. {
        let outcome = match model_store::fetch(&config.model_url, MAX_MODEL_BYTES).await {
            Err(e) => Err(e.to_string()),
            Ok(bytes) => {
                let actual = sha256_hex(&bytes);
                if actual != expected {
                    Err(Error::DigestMismatch {
                        location: shown.clone(),
                        expected: expected.clone(),
                        actual,
                    }
                    .to_string())
                } else {
                    Model::from_bytes(&bytes)
                        .map(|model| (model, actual))
                        .map_err(|e| format!("{shown}: {e}"))
                }
            }
        };
        match outcome {
            Ok((model, sha256)) => {
                tracing::info!(url = %shown, %sha256, model_date = model.model_date(), attempt, "model verified and loaded");
                state.set_model(ServedModel { model, sha256 });
                return;
            }
            Err(reason) => {
                tracing::warn!(url = %shown, attempt, retry_in_ms = pause.as_millis() as u64, %reason, "model not loaded");
                state.set_not_ready(format!("attempt {attempt}: {reason}"));
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(config.retry_max);
    }
}
