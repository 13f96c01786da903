//! The tweet tokenizer on arbitrary text: never a panic; tokens are non-empty, hold no white space, and
//! are in order inside the lowercased text (or are the URL token).
#![no_main]

use libfuzzer_sys::fuzz_target;
use predictor::text::tokenize::{URL_TOKEN, for_each_token, lowercase_into};

fuzz_target!(|text: &str| {
    // What `tokenize` does, in its two steps, so the lowercased buffer can be inspected too.
    let mut buf = String::new();
    lowercase_into(text, &mut buf);
    let mut tokens = Vec::new();
    for_each_token(&buf, |token| tokens.push(token));
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let mut last = start;
    for token in tokens {
        assert!(!token.is_empty());
        let at = token.as_ptr() as usize;
        if token == URL_TOKEN && !(start..end).contains(&at) {
            continue;
        }
        assert!(!token.contains(char::is_whitespace), "{token:?}");
        assert!(
            at >= last && at + token.len() <= end,
            "token {token:?} is out of order or outside the text"
        );
        last = at + token.len();
    }
});
