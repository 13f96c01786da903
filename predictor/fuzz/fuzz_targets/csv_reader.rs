//! The training-data CSV reader on arbitrary bytes: an error or tweets, never a panic; every tweet it
//! yields has a text that is not blank, and the row counts add up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use predictor::data::TweetReader;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = TweetReader::new(data, "fuzz.csv") else {
        return;
    };
    let mut usable = 0u64;
    // Each row consumes at least one byte, so this bound is never what ends a well-behaved loop.
    for _ in 0..=data.len() {
        match reader.next_tweet() {
            Ok(Some(tweet)) => {
                assert!(
                    !tweet.text.bytes().all(|b| b.is_ascii_whitespace()),
                    "blank text yielded: {:?}",
                    tweet.text
                );
                usable += 1;
            }
            Ok(None) => {
                assert_eq!(reader.rows(), usable + reader.skipped());
                return;
            }
            Err(_) => return,
        }
    }
    panic!("more rows than bytes: the reader is not making progress");
});
