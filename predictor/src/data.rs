//! Labelled tweets from CSV: a `text` and a `country_code` column (any others are ignored).
//!
//! The label is `country_code == "US"`. Rows with an empty or missing text or country are counted and
//! skipped; bytes that are not UTF-8 in a column we use are an error naming the row and the field.

use std::io::Read;

use csv::ByteRecord;

use crate::error::{Error, Quoted, Result};

pub const TEXT_COLUMN: &str = "text";
pub const COUNTRY_COLUMN: &str = "country_code";

/// One usable row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tweet<'a> {
    pub text: &'a str,
    pub is_american: bool,
}

/// Streams tweets from a CSV reader, one record buffer reused throughout.
pub struct TweetReader<R: Read> {
    csv: csv::Reader<R>,
    location: String,
    text_col: usize,
    country_col: usize,
    record: ByteRecord,
    rows: u64,
    skipped: u64,
}

impl<R: Read> TweetReader<R> {
    /// Reads the header and finds the two columns. `location` names the source in messages.
    pub fn new(reader: R, location: &str) -> Result<Self> {
        let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
        let headers = csv
            .byte_headers()
            .map_err(|e| csv_error(location, &e))?
            .clone();
        if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
            return Err(Error::Data(format!(
                "{location}: the file is empty; expected a CSV header with `{TEXT_COLUMN}` and `{COUNTRY_COLUMN}` columns"
            )));
        }
        let names: Vec<String> = headers
            .iter()
            .map(|h| {
                String::from_utf8_lossy(h)
                    .trim_start_matches('\u{feff}')
                    .trim()
                    .to_string()
            })
            .collect();
        // NB: the columns found are the file's own words: only quoted (see `Quoted`).
        let find = |wanted: &'static str| {
            names
                .iter()
                .position(|n| n == wanted)
                .ok_or_else(|| Error::MissingColumn {
                    location: location.to_string(),
                    wanted,
                    found: Quoted(format!("columns found: {}", names.join(", "))),
                })
        };
        let (text_col, country_col) = (find(TEXT_COLUMN)?, find(COUNTRY_COLUMN)?);
        Ok(Self {
            csv,
            location: location.to_string(),
            text_col,
            country_col,
            record: ByteRecord::new(),
            rows: 0,
            skipped: 0,
        })
    }

    /// The next usable tweet, or `None` at the end of the data.
    pub fn next_tweet(&mut self) -> Result<Option<Tweet<'_>>> {
        loop {
            let more = self
                .csv
                .read_byte_record(&mut self.record)
                .map_err(|e| csv_error(&self.location, &e))?;
            if !more {
                return Ok(None);
            }
            self.rows += 1;
            let text = self.record.get(self.text_col).unwrap_or_default();
            let country = self.record.get(self.country_col).unwrap_or_default();
            if text.iter().all(u8::is_ascii_whitespace)
                || country.iter().all(u8::is_ascii_whitespace)
            {
                self.skipped += 1;
                continue;
            }
            break;
        }
        let row = self.rows;
        let line = self.record.position().map_or(0, |p| p.line());
        let field = |col: usize, name: &str| {
            let bytes = self.record.get(col).unwrap_or_default();
            std::str::from_utf8(bytes).map_err(|e| {
                Error::Data(format!(
                    "{}: row {row} (line {line}), field `{name}`: not valid UTF-8 at byte {} of the field",
                    self.location,
                    e.valid_up_to()
                ))
            })
        };
        let text = field(self.text_col, TEXT_COLUMN)?;
        let country = field(self.country_col, COUNTRY_COLUMN)?;
        Ok(Some(Tweet {
            text,
            is_american: country.trim().eq_ignore_ascii_case("US"),
        }))
    }

    /// Data rows read so far (usable and skipped).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows skipped for a missing or empty text or country.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Gives back the underlying reader (to finish a digest).
    pub fn into_inner(self) -> R {
        self.csv.into_inner()
    }
}

fn csv_error(location: &str, error: &csv::Error) -> Error {
    let at = error
        .position()
        .map(|p| format!(" at line {}", p.line()))
        .unwrap_or_default();
    match error.kind() {
        csv::ErrorKind::Io(io) => Error::Source {
            location: location.to_string(),
            reason: format!("{io}{at}"),
        },
        _ => Error::Data(format!("{location}{at}: {error}")),
    }
}

/// Reads every usable tweet into memory (small inputs: the built-in sample and tests).
pub fn read_all(reader: impl Read, location: &str) -> Result<Vec<(String, bool)>> {
    let mut tweets = TweetReader::new(reader, location)?;
    let mut out = Vec::new();
    while let Some(t) = tweets.next_tweet()? {
        out.push((t.text.to_string(), t.is_american));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tweets, rows read, rows skipped.
    type Read = (Vec<(String, bool)>, u64, u64);

    fn read(csv: &[u8]) -> Result<Read> {
        let mut reader = TweetReader::new(csv, "mem.csv")?;
        let mut out = Vec::new();
        while let Some(t) = reader.next_tweet()? {
            out.push((t.text.to_string(), t.is_american));
        }
        Ok((out, reader.rows(), reader.skipped()))
    }

    #[test]
    fn reads_labels_quotes_and_extra_columns() {
        let csv = b"id,country_code,lang,text\n1,US,en,\"hi, \"\"y'all\"\"\nsecond line\"\n2,GB,en,cheers\n3,us,en,lower\n";
        let (rows, n, skipped) = read(csv).unwrap();
        assert_eq!(
            rows,
            [
                ("hi, \"y'all\"\nsecond line".to_string(), true),
                ("cheers".to_string(), false),
                ("lower".to_string(), true)
            ]
        );
        assert_eq!((n, skipped), (3, 0));
    }

    #[test]
    fn skips_and_counts_rows_without_text_or_country() {
        let csv = b"text,country_code\nhello,US\n,US\nworld,\n   ,GB\nshort\nok,GB\n";
        let (rows, n, skipped) = read(csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((n, skipped), (6, 4));
    }

    #[test]
    fn missing_column_quotes_what_was_found_only_for_the_cli() {
        let err = read(b"id,tweet,country_code\n1,x,US\n").unwrap_err();
        // The message never holds the file's own words (a service may show it to others)...
        assert_eq!(err.to_string(), "mem.csv: no `text` column in the header");
        // ...the CLI's fuller text, for the person whose file it is, does.
        assert_eq!(
            err.quoted(),
            "mem.csv: no `text` column in the header (columns found: id, tweet, country_code)"
        );
    }

    #[test]
    fn empty_file_is_an_error() {
        assert!(
            read(b"")
                .unwrap_err()
                .to_string()
                .contains("the file is empty")
        );
    }

    #[test]
    fn non_utf8_names_row_and_field() {
        let err = read(b"text,country_code\nfine,US\nbad \xff\xfe here,US\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "mem.csv: row 2 (line 3), field `text`: not valid UTF-8 at byte 4 of the field"
        );
        // Non-UTF-8 in a column we do not use is fine.
        assert_eq!(
            read(b"junk,text,country_code\n\xff,ok,US\n")
                .unwrap()
                .0
                .len(),
            1
        );
    }
}
