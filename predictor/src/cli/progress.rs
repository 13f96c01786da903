//! Progress display on stderr for the long-running subcommands (indicatif bars and spinners; hidden when
//! stderr is not a terminal, so scripts and tests see clean output).

use indicatif::{ProgressBar, ProgressStyle};

/// Inputs smaller than this finish too fast for a bar to help.
const WORTH_A_BAR: u64 = 8 << 20;

/// A byte-count bar for reading `location`: a bar when it is a local file worth watching, a spinner with a
/// byte count when its size is unknown (a URL), hidden for small files.
pub fn bytes(location: &str) -> ProgressBar {
    match std::fs::metadata(location.strip_prefix("file://").unwrap_or(location)) {
        Ok(meta) if meta.len() < WORTH_A_BAR => ProgressBar::hidden(),
        Ok(meta) => ProgressBar::new(meta.len()).with_style(
            ProgressStyle::with_template("{msg:>16} [{bar:30}] {bytes}/{total_bytes} ({eta})")
                .expect("valid template")
                .progress_chars("=> "),
        ),
        Err(_) => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg:>16} {spinner} {bytes}").expect("valid template"),
        ),
    }
}

/// A spinner counting answers from a live server, with their rate.
pub fn answers() -> ProgressBar {
    ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} answers {per_sec}").expect("valid template"),
    )
}

/// A spinner counting requests, with a message about the last answer.
pub fn requests() -> ProgressBar {
    ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} requests, {msg}").expect("valid template"),
    )
}
