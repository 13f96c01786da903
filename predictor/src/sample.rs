//! A small hand-written sample, compiled into the binary, so `predictor demo` runs with no data at hand.
//!
//! Written for this project (not drawn from any data set): 76 short made-up tweets with a country code.
//! Every fourth row is held out for evaluation.

/// The whole sample as CSV (`text,country_code`).
pub const SAMPLE_CSV: &str = include_str!("sample.csv");

/// The sample split into (training CSV, evaluation CSV): every fourth data row goes to evaluation.
pub fn split() -> (String, String) {
    let mut lines = SAMPLE_CSV.lines();
    let header = lines.next().unwrap_or_default();
    let (mut train, mut eval) = (format!("{header}\n"), format!("{header}\n"));
    for (i, line) in lines.enumerate() {
        let target = if i % 4 == 3 { &mut eval } else { &mut train };
        target.push_str(line);
        target.push('\n');
    }
    (train, eval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_every_row_once() {
        let (train, eval) = split();
        let rows = SAMPLE_CSV.lines().count() - 1;
        assert_eq!(train.lines().count() - 1 + eval.lines().count() - 1, rows);
        assert_eq!(eval.lines().count() - 1, rows / 4);
    }
}
