//! Command-line values that are more than a number: request rates (`3000`), character n-gram ranges
//! (`3-5`, `none`), feature limits (`3000`, `all`) and switches (`on`, `off`). Each parser returns a message clap shows as is.
//! Durations are humantime's ([`super::durations`]).

use std::fmt;

/// Requests per second: `50`, `2.5`, `3000` (above 0, at most [`crate::probe::MAX_RATE`]).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of requests per second like 50 or 3000"))?;
    crate::probe::check_rate(rate)
}

/// `--char-ngrams`: a length range or `none`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CharRange(pub Option<(u8, u8)>);

/// `3-5`, `3` (= `3-3`) or `none`.
pub fn parse_range(text: &str) -> Result<CharRange, String> {
    if text == "none" {
        return Ok(CharRange(None));
    }
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let parse = |n: &str| {
        n.trim()
            .parse::<u8>()
            .map_err(|_| format!("{text:?} is not a range like 3-5, nor `none`"))
    };
    Ok(CharRange(Some((parse(lo)?, parse(hi)?))))
}

impl fmt::Display for CharRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((lo, hi)) => write!(f, "{lo}-{hi}"),
            None => f.write_str("none"),
        }
    }
}

/// `--max-features`: a count or `all`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit(pub Option<u32>);

/// A count or `all`.
pub fn parse_limit(text: &str) -> Result<Limit, String> {
    match text {
        "all" => Ok(Limit(None)),
        n => n
            .parse()
            .map(|n| Limit(Some(n)))
            .map_err(|_| format!("{text:?} is not a number nor `all`")),
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("all"),
        }
    }
}

/// A switch: `on` or `off` (also `true`/`false`, as a variable may be written).
pub fn parse_switch(text: &str) -> Result<bool, String> {
    match text {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("{text:?} is neither `on` nor `off`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_positive_numbers_up_to_the_probes_ceiling() {
        assert_eq!(parse_rate("50"), Ok(50.0));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert_eq!(parse_rate("100000"), Ok(100_000.0));
        for text in ["0", "-3", "100001", "NaN", "inf"] {
            let error = parse_rate(text).unwrap_err();
            assert!(
                error.contains("above 0 and at most 100000"),
                "{text}: {error}"
            );
        }
        assert!(parse_rate("fast").unwrap_err().contains("not a number"));
    }

    #[test]
    fn ranges_and_limits_read_back_as_written() {
        for text in ["3-5", "none"] {
            assert_eq!(parse_range(text).unwrap().to_string(), text);
        }
        assert_eq!(parse_range("4"), Ok(CharRange(Some((4, 4)))));
        assert!(parse_range("a-b").is_err());
        for text in ["3000", "all"] {
            assert_eq!(parse_limit(text).unwrap().to_string(), text);
        }
        assert!(parse_limit("many").is_err());
    }

    #[test]
    fn switches_are_on_or_off() {
        assert_eq!(parse_switch("on"), Ok(true));
        assert_eq!(parse_switch("true"), Ok(true));
        assert_eq!(parse_switch("off"), Ok(false));
        assert_eq!(parse_switch("false"), Ok(false));
        assert_eq!(
            parse_switch("0"),
            Err("\"0\" is neither `on` nor `off`".into())
        );
    }
}
