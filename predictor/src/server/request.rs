//! What a `POST /api/american` body asks for, read two ways with one meaning.
//!
//! The general reader is the contract: [`parse_body`] (any JSON value, or 400) then
//! [`PredictRequest::from_json`] (the shape, or 422 with the message saying what is wrong). It builds a
//! `serde_json::Value` first, a map and a string per key and text. [`PredictRequest::usual`] reads the
//! bodies clients send (an object whose `text` is a string, or without `text` and with `texts` an array of at
//! most [`MAX_BATCH`] strings) straight into texts borrowed from the body, and gives up on anything else:
//! the general reader then answers, so every error and every unusual body (duplicate keys, `"text": null`
//! beside `texts`, a batch over the limit) is the general reader's. Unit tests and the fuzz target `request`
//! check that both readers agree whenever the usual one answers.

use std::borrow::Cow;
use std::fmt;

use axum::http::StatusCode;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{ApiError, MAX_BATCH};

/// What a `POST /api/american` body asks for. A text is borrowed from the body, or unescaped into its own
/// string when it holds escapes.
#[derive(Debug, PartialEq)]
pub enum PredictRequest<'a> {
    /// `{"text": "…"}`: one answer object.
    One(Cow<'a, str>),
    /// `{"texts": ["…", …]}`: a list of answers, in order.
    Many(Vec<Cow<'a, str>>),
}

/// Parses a request body as JSON (any Content-Type). A body that is not JSON is the client's mistake: 400.
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body is not valid JSON: {e}"),
        )
    })
}

impl<'a> PredictRequest<'a> {
    /// The request of a usual body, read without building a `Value`; `None` for any other body (the
    /// general reader decides what it is, error included).
    pub fn usual(bytes: &'a [u8]) -> Option<Self> {
        serde_json::from_slice::<Usual>(bytes)
            .ok()
            .map(|usual| usual.0)
    }

    /// Reads the request out of a parsed body: pure, and the whole of the request's validation (422s).
    pub fn from_json(request: &'a Value) -> Result<Self, ApiError> {
        let unprocessable = |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
        let Value::Object(fields) = request else {
            return Err(unprocessable(
                "expected a JSON object like {\"text\": \"…\"}",
            ));
        };
        if let Some(text) = fields.get("text") {
            return text
                .as_str()
                .map(|text| Self::One(Cow::Borrowed(text)))
                .ok_or_else(|| unprocessable("`text` must be a string"));
        }
        if let Some(texts) = fields.get("texts") {
            let texts = texts
                .as_array()
                .ok_or_else(|| unprocessable("`texts` must be an array of strings"))?;
            if texts.len() > MAX_BATCH {
                return Err(unprocessable(&format!(
                    "`texts` holds {} texts; at most {MAX_BATCH} per request",
                    texts.len()
                )));
            }
            return texts
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(Cow::Borrowed)
                        .ok_or_else(|| unprocessable("every item of `texts` must be a string"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Many);
        }
        Err(unprocessable(
            "missing `text` (a string), or `texts` (an array of strings)",
        ))
    }
}

/// A usual body's request: deserializing fails for every other body.
struct Usual<'a>(PredictRequest<'a>);

impl<'de> Deserialize<'de> for Usual<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(UsualVisitor)
    }
}

struct UsualVisitor;

impl<'de> Visitor<'de> for UsualVisitor {
    type Value = Usual<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with `text` or `texts`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut text, mut texts) = (None, None);
        while let Some(key) = map.next_key::<Key>()? {
            // A key seen twice: the general reader keeps the last value; leave such a body to it.
            match key {
                Key::Text if text.is_some() => return Err(de::Error::duplicate_field("text")),
                Key::Texts if texts.is_some() => return Err(de::Error::duplicate_field("texts")),
                Key::Text => text = Some(map.next_value::<Text>()?.0),
                Key::Texts => texts = Some(map.next_value::<Texts>()?.0),
                Key::Other => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        match (text, texts) {
            (Some(text), _) => Ok(Usual(PredictRequest::One(text))),
            (None, Some(texts)) => Ok(Usual(PredictRequest::Many(texts))),
            (None, None) => Err(de::Error::missing_field("text")),
        }
    }
}

/// A key of the body's object (unescaped, as the general reader compares them).
enum Key {
    Text,
    Texts,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "text" => Key::Text,
                    "texts" => Key::Texts,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// A string: borrowed from the body, or unescaped into its own.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// An array of at most [`MAX_BATCH`] strings (reading stops at the first item over).
struct Texts<'a>(Vec<Cow<'a, str>>);

impl<'de> Deserialize<'de> for Texts<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextsVisitor;
        impl<'de> Visitor<'de> for TextsVisitor {
            type Value = Texts<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "an array of at most {MAX_BATCH} strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Texts<'de>, A::Error> {
                let mut texts = Vec::new();
                while let Some(Text(text)) = seq.next_element()? {
                    if texts.len() == MAX_BATCH {
                        return Err(de::Error::invalid_length(MAX_BATCH + 1, &self));
                    }
                    texts.push(text);
                }
                Ok(Texts(texts))
            }
        }
        deserializer.deserialize_seq(TextsVisitor)
    }
}

#[cfg(test)]
mod tests {
    //! The usual reader against the general one, body by body.

    use super::*;

    /// What the general reader makes of `body`: the request, or the error's status.
    fn general(body: &str) -> Result<PredictRequest<'static>, StatusCode> {
        let value = parse_body(body.as_bytes()).map_err(|e| e.status())?;
        let request = PredictRequest::from_json(&value).map_err(|e| e.status())?;
        // Owned, to outlive the parsed value.
        Ok(match request {
            PredictRequest::One(text) => PredictRequest::One(Cow::Owned(text.into_owned())),
            PredictRequest::Many(texts) => PredictRequest::Many(
                texts
                    .into_iter()
                    .map(|t| Cow::Owned(t.into_owned()))
                    .collect(),
            ),
        })
    }

    #[test]
    fn usual_bodies_are_read_as_the_general_reader_reads_them() {
        let batch = serde_json::json!({ "texts": vec!["go"; MAX_BATCH] }).to_string();
        let bodies = [
            r#"{"text": "go yankees"}"#,
            r#"  {"text":"go yankees"}  "#,
            r#"{"text": ""}"#,
            r#"{"text": "caf\u00e9 \"quoted\"\n"}"#,
            r#"{"te\u0078t": "an escaped key"}"#,
            r#"{"id": [1, {"a": null}], "text": "other keys ignored"}"#,
            r#"{"text": "text wins", "texts": ["a", "b"]}"#,
            r#"{"texts": []}"#,
            r#"{"texts": ["a", "b\tc", ""]}"#,
            r#"{"texts": ["a"], "lang": "en"}"#,
            &batch,
        ];
        for body in bodies {
            let usual = PredictRequest::usual(body.as_bytes());
            assert!(usual.is_some(), "{body}");
            assert_eq!(usual.ok_or(StatusCode::OK), general(body), "{body}");
        }
        // Unescaped only when it must be: a plain text is the body's own bytes.
        let body = r#"{"text": "go yankees"}"#;
        match PredictRequest::usual(body.as_bytes()) {
            Some(PredictRequest::One(Cow::Borrowed(text))) => assert_eq!(text, "go yankees"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_other_body_is_left_to_the_general_reader() {
        let over = serde_json::json!({ "texts": vec!["go"; MAX_BATCH + 1] }).to_string();
        let bodies = [
            ("", StatusCode::BAD_REQUEST),
            (r#"{"text": "a"} x"#, StatusCode::BAD_REQUEST),
            (r#"{"text": "a""#, StatusCode::BAD_REQUEST),
            (r#"{"text": "\ud800"}"#, StatusCode::BAD_REQUEST),
            (r#"["hi"]"#, StatusCode::UNPROCESSABLE_ENTITY),
            (r#""hi""#, StatusCode::UNPROCESSABLE_ENTITY),
            (r#"{}"#, StatusCode::UNPROCESSABLE_ENTITY),
            (r#"{"text": 42}"#, StatusCode::UNPROCESSABLE_ENTITY),
            (
                r#"{"text": null, "texts": ["a"]}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (r#"{"texts": ["a", 1]}"#, StatusCode::UNPROCESSABLE_ENTITY),
            (&over, StatusCode::UNPROCESSABLE_ENTITY),
        ];
        for (body, status) in bodies {
            assert_eq!(PredictRequest::usual(body.as_bytes()), None, "{body}");
            assert_eq!(general(body), Err(status), "{body}");
        }
        // `text` decides, whatever `texts` holds: the usual reader stops at a `texts` it cannot read.
        let body = r#"{"text": "a", "texts": 5}"#;
        assert_eq!(PredictRequest::usual(body.as_bytes()), None);
        assert_eq!(general(body), Ok(PredictRequest::One("a".into())));
        // Keys seen twice: the general reader keeps the last value.
        let body = r#"{"text": "first", "text": "last"}"#;
        assert_eq!(PredictRequest::usual(body.as_bytes()), None);
        assert_eq!(general(body), Ok(PredictRequest::One("last".into())));
        let body = r#"{"texts": ["a"], "texts": ["b"]}"#;
        assert_eq!(PredictRequest::usual(body.as_bytes()), None);
        assert_eq!(general(body), Ok(PredictRequest::Many(vec!["b".into()])));
    }
}
