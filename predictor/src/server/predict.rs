//! `POST /api/american`: the request (one text or a batch), the answer, and its copy to a shadow.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::answer::json_response;
use super::body::{BodyRead, read_body};
use super::request::{PredictRequest, parse_body};
use super::{ApiError, MAX_BODY_BYTES, Shared};

/// `POST /api/american`. The body must be JSON whatever the Content-Type (form-typed clients welcome).
/// Order of checks: size (413), JSON (400), readiness (503), then the request's shape (422).
pub(super) async fn american(
    State(state): State<Shared>,
    body: Body,
    limit: Duration,
) -> Result<Response, ApiError> {
    let bytes = match read_body(body, limit).await {
        BodyRead::Whole(bytes) => bytes,
        BodyRead::TooLarge => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        BodyRead::TooSlow => return Err(ApiError::too_slow(limit)),
    };
    // A usual body is read at once; any other is parsed whole first (400 when it is not JSON).
    let usual = PredictRequest::usual(&bytes);
    let parsed = match usual {
        Some(_) => serde_json::Value::Null,
        None => parse_body(&bytes)?,
    };
    let (served, shape) = state.answering().map_err(|reason| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        )
    })?;
    let drift = state.metrics.drift_signals();
    // Writes the answer for `text` to `json`; returns is_american.
    let answer = |json: &mut Vec<u8>, text: &str| {
        // With drift signals on, each answer also goes into their histograms (no allocation).
        let p = if drift {
            let (p, observation) = served.model.predict_observed(text);
            state.metrics.observe_answer(&observation);
            p
        } else {
            served.model.predict(text)
        };
        shape.write(json, p.is_american, p.probability);
        p.is_american
    };
    let request = match usual {
        Some(request) => request,
        None => PredictRequest::from_json(&parsed)?,
    };
    match request {
        PredictRequest::One(text) => {
            state.metrics.add_predictions(1);
            let mut json = Vec::with_capacity(shape.room());
            let is_american = answer(&mut json, &text);
            // After the live answer is computed; `offer` returns at once (the copy runs apart).
            if let Some(shadow) = state.shadow.get() {
                shadow.offer(&text, is_american);
            }
            Ok(json_response(json))
        }
        PredictRequest::Many(texts) => {
            state.metrics.add_predictions(texts.len() as u64);
            let mut json = Vec::with_capacity(2 + texts.len() * (shape.room() + 1));
            json.push(b'[');
            for (i, text) in texts.iter().enumerate() {
                if i > 0 {
                    json.push(b',');
                }
                answer(&mut json, text);
            }
            json.push(b']');
            Ok(json_response(json))
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every client mistake the handler answers, straight through `app()` with `oneshot` (no socket); its shadow copies.

    use std::net::SocketAddr;
    use std::time::Instant;

    use axum::Router;
    use axum::http::Method;
    use tokio::net::TcpListener;

    use super::*;
    use crate::server::MAX_BATCH;
    use crate::server::fixtures::{config, error, not_ready, post, ready, ready_state, send};
    use crate::server::{AppState, app};
    use crate::shadow::ShadowConfig;

    #[tokio::test]
    async fn bad_json_is_400() {
        for body in ["{\"text\": ", "text=hello", ""] {
            let (status, json) = post(ready(), body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
            assert!(
                error(&json).starts_with("body is not valid JSON: "),
                "{json}"
            );
        }
        // JSON is checked before readiness: a broken body is the client's mistake even now.
        let (status, json) = post(not_ready(), "{").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error(&json).starts_with("body is not valid JSON"));
    }

    /// Posts each body to a router serving the sample model: a 422 with its message.
    async fn assert_unprocessable(cases: impl IntoIterator<Item = (&'static str, &'static str)>) {
        for (body, message) in cases {
            let (status, json) = post(ready(), body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(error(&json), message, "{body}");
        }
    }

    #[tokio::test]
    async fn missing_or_non_string_text_is_422() {
        let cases = [
            (
                r#"{"tweet": "hi"}"#,
                "missing `text` (a string), or `texts` (an array of strings)",
            ),
            (r#"{"text": 42}"#, "`text` must be a string"),
            (r#"{"text": null}"#, "`text` must be a string"),
            (r#"{"text": ["a"]}"#, "`text` must be a string"),
            (r#"["hi"]"#, "expected a JSON object like {\"text\": \"…\"}"),
        ];
        assert_unprocessable(cases).await;
    }

    #[tokio::test]
    async fn wrong_typed_texts_is_422() {
        let cases = [
            (r#"{"texts": "hi"}"#, "`texts` must be an array of strings"),
            (
                r#"{"texts": {"a": "b"}}"#,
                "`texts` must be an array of strings",
            ),
            (
                r#"{"texts": ["ok", 1]}"#,
                "every item of `texts` must be a string",
            ),
        ];
        assert_unprocessable(cases).await;
    }

    #[tokio::test]
    async fn a_batch_over_the_limit_is_422_and_at_the_limit_is_answered() {
        let texts = |n: usize| serde_json::json!({ "texts": vec!["go yankees"; n] }).to_string();
        let (status, json) = post(ready(), texts(MAX_BATCH + 1)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            error(&json),
            format!(
                "`texts` holds {} texts; at most {MAX_BATCH} per request",
                MAX_BATCH + 1
            )
        );
        let (status, json) = post(ready(), texts(MAX_BATCH)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json.as_array().map(Vec::len), Some(MAX_BATCH));
    }

    /// A candidate on a loopback port answering every prediction with `is_american` after `delay`.
    async fn candidate(is_american: u8, delay: Duration) -> SocketAddr {
        let router = Router::new().route(
            "/api/american",
            axum::routing::post(move || async move {
                tokio::time::sleep(delay).await;
                axum::Json(serde_json::json!({
                    "is_american": is_american, "version": "0.3", "model": "c4dd1da7e000"
                }))
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        address
    }

    /// `predictor_shadow_requests_total{<labels>}` as `state` exposes it (0 when absent).
    fn shadow_count(state: &AppState, labels: &str) -> u64 {
        let prefix = format!("predictor_shadow_requests_total{{{labels}}} ");
        state
            .metrics
            .render(true)
            .lines()
            .find_map(|line| line.strip_prefix(&prefix).map(|v| v.parse().unwrap()))
            .unwrap_or(0)
    }

    /// Waits (at most 5 s) until `state` counts `want` copies with `labels`.
    async fn until_counted(state: &AppState, labels: &str, want: u64) {
        for _ in 0..100 {
            if shadow_count(state, labels) >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            shadow_count(state, labels),
            want,
            "{labels}\n{}",
            state.metrics.render(true)
        );
    }

    const TWEET: &str = r##"{"text": "#covid19 new york"}"##;
    const DISAGREE: &str = r#"result="disagree",version="0.3",model="c4dd1da7e000""#;
    const AGREE: &str = r#"result="agree",version="0.3",model="c4dd1da7e000""#;
    const DROPPED: &str = r#"result="dropped",version="",model="""#;
    const ERROR: &str = r#"result="error",version="",model="""#;

    /// What `state`'s own model answers for [`TWEET`]'s text.
    fn live_answer(state: &AppState) -> u8 {
        state
            .served()
            .unwrap()
            .model
            .predict("#covid19 new york")
            .is_american
    }

    #[tokio::test]
    async fn a_slow_candidate_never_delays_or_changes_the_live_answer() {
        let state = ready_state();
        let live = live_answer(&state);
        let (_, _, unshadowed) = send(ready(), Method::POST, "/api/american", TWEET).await;
        // The candidate answers the other class, two seconds late; one copy in flight at most.
        let slow = candidate(1 - live, Duration::from_secs(2)).await;
        let mut shadow = ShadowConfig::new(format!("http://{slow}"), 100);
        shadow.max_in_flight = 1;
        shadow.timeout = Duration::from_secs(5);
        state.set_shadow(&shadow).unwrap();
        let router = app(state.clone(), &config());

        for _ in 0..2 {
            let started = Instant::now();
            let (status, _, answer) =
                send(router.clone(), Method::POST, "/api/american", TWEET).await;
            let took = started.elapsed();
            assert_eq!(status, StatusCode::OK);
            assert_eq!(answer, unshadowed, "the copy changes nothing in the answer");
            assert!(
                took < Duration::from_millis(500),
                "live answer took {took:?}"
            );
        }
        // The second copy found the only permit taken: dropped, not queued.
        assert_eq!(shadow_count(&state, DROPPED), 1);
        // The first copy comes back after the candidate's delay: a disagreement, named for it.
        until_counted(&state, DISAGREE, 1).await;
        assert_eq!(shadow_count(&state, AGREE), 0);
        let text = state.metrics.render(true);
        assert!(
            text.lines()
                .any(|l| l == "predictor_shadow_duration_seconds_count 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn agreements_and_unreachable_candidates_are_counted() {
        let state = ready_state();
        let live = live_answer(&state);
        let same = candidate(live, Duration::ZERO).await;
        state
            .set_shadow(&ShadowConfig::new(format!("http://{same}"), 100))
            .unwrap();
        for _ in 0..3 {
            post(app(state.clone(), &config()), TWEET).await;
        }
        until_counted(&state, AGREE, 3).await;
        // Batches are not copied.
        post(app(state.clone(), &config()), r#"{"texts": ["a", "b"]}"#).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(shadow_count(&state, AGREE), 3);

        // A candidate nobody listens for: errors, attributed to nobody; the answer is still 200.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let state = ready_state();
        state
            .set_shadow(&ShadowConfig::new(format!("http://127.0.0.1:{port}"), 100))
            .unwrap();
        let (status, _) = post(app(state.clone(), &config()), TWEET).await;
        assert_eq!(status, StatusCode::OK);
        until_counted(&state, ERROR, 1).await;
    }
}
