//! The model-file loader on arbitrary bytes: an error naming what is wrong, or a model that predicts a
//! probability in [0, 1]; never a panic. The first byte picks the mode: raw file bytes (magic, version,
//! length and checksum checks), or a payload wrapped in a valid header and checksum, so that the bincode
//! decoder and the consistency checks behind it see the fuzzer's bytes (random bytes never pass the
//! checksum otherwise): as format 1 (mode 1) or as the current format with its reference (mode 3).
#![no_main]

use libfuzzer_sys::fuzz_target;
use predictor::model::{FORMAT_VERSION, frame_as};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = match (mode & 1, mode & 2) {
        (0, _) => rest.to_vec(),
        (_, 0) => frame_as(1, rest),
        _ => frame_as(FORMAT_VERSION, rest),
    };
    let Ok(model) = predictor::Model::from_bytes(&file) else {
        return;
    };
    for text in [
        "",
        "#covid19 new york 🇺🇸 https://t.co/x y'all",
        "cheers mate",
    ] {
        let (p, observation) = model.predict_observed(text);
        assert_eq!(p, model.predict(text));
        assert!(observation.known <= observation.ngrams);
        assert!(p.is_american <= 1);
        assert!(
            (0.0..=1.0).contains(&p.probability),
            "probability {} for {text:?}",
            p.probability
        );
    }
});
