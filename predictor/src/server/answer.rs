//! The answer's JSON: the contract's fields, plus `probability` and `model` (the first 12 hex digits of the
//! model's sha256, as `kubectl get predictors` shows it: a model-only rollout is visible to clients).
//!
//! Of an answer's five fields, three are the same for every answer of a served model (`version`,
//! `model_date`, `model`): they are serialized once, by serde_json (escaping included), when the model is
//! set, and copied into each answer; per answer only `is_american` and `probability` are written.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// How every answer of one served model is written.
#[derive(Debug)]
pub struct AnswerShape {
    /// `,"version":…,"model_date":…,"model":…,"probability":`: between `is_american` and `probability`.
    middle: String,
}

impl AnswerShape {
    pub fn new(version: &str, model_date: &str, sha256: &str) -> Self {
        let string = |s: &str| serde_json::Value::from(s).to_string();
        let model = sha256.get(..12).unwrap_or(sha256);
        Self {
            middle: format!(
                ",\"version\":{},\"model_date\":{},\"model\":{},\"probability\":",
                string(version),
                string(model_date),
                string(model)
            ),
        }
    }

    /// Appends one answer to `out`; the probability to six decimals.
    pub fn write(&self, out: &mut Vec<u8>, is_american: u8, probability: f64) {
        out.extend_from_slice(b"{\"is_american\":");
        out.push(if is_american == 1 { b'1' } else { b'0' });
        out.extend_from_slice(self.middle.as_bytes());
        // serde_json's own number writing (a non-finite probability would be `null`; the model has none).
        let rounded = (probability * 1e6).round() / 1e6;
        let _ = serde_json::to_writer(&mut *out, &rounded);
        out.push(b'}');
    }

    /// Room for one answer.
    pub fn room(&self) -> usize {
        self.middle.len() + 48
    }
}

/// A 200 with `json` as its body.
pub fn json_response(json: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(json));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    //! Whole answers, byte for byte against serde_json's serialization of the same fields in the same order.

    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Answer<'a> {
        is_american: u8,
        version: &'a str,
        model_date: &'a str,
        model: &'a str,
        probability: f64,
    }

    #[test]
    fn answers_are_what_serde_json_writes() {
        let sha = "92d6b67f173f6ba0f4495f65dd152d0ec9900e0290b896583d0e0bdee7a83b5d";
        for (version, date) in [
            ("0.2.0", "2026-12-08T03:32:34Z"),
            ("v1 \"quoted\"\n\\ é", ""),
        ] {
            let shape = AnswerShape::new(version, date, sha);
            for (is_american, probability) in [(1, 0.876097), (0, 0.0), (1, 1.0), (0, 0.1234567)] {
                let mut written = Vec::new();
                shape.write(&mut written, is_american, probability);
                let expected = serde_json::to_vec(&Answer {
                    is_american,
                    version,
                    model_date: date,
                    model: "92d6b67f173f",
                    probability: (probability * 1e6).round() / 1e6,
                })
                .unwrap();
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(expected).unwrap()
                );
            }
        }
    }
}
