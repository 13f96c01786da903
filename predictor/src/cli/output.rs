//! How the subcommands' results read on stdout: pure functions from results to text (human or JSON), so
//! the wording is tested without running a command.

use std::time::Duration;

use crate::Prediction;
use crate::client::LiveReport;
use crate::error::{Error, Result};
use crate::evaluate::{DriftReport, Summary};
use crate::model::ModelFile;

/// Pretty JSON of a report.
fn json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Data(format!("cannot write JSON: {e}")))
}

/// What `train` says once the model file is written.
pub fn trained(file: &ModelFile, out: &str, bytes: usize, sha256: &str, took: Duration) -> String {
    let t = &file.training;
    format!(
        "trained on {} rows ({} skipped for missing text or country) in {:.4}s; {} n-grams\n\
         wrote {out} ({bytes} bytes), model_date {}\n\
         sha256 {sha256}",
        t.rows,
        t.skipped_rows,
        took.as_secs_f64(),
        file.vectorizer.vocabulary.len(),
        file.model_date
    )
}

/// An offline evaluation: the summary, the rows skipped for missing fields, then the data's drift
/// against the model's reference (JSON: the summary's fields, `skipped_rows` and `drift`).
pub fn summary(
    summary: &Summary,
    skipped: u64,
    drift: &DriftReport,
    as_json: bool,
) -> Result<String> {
    if as_json {
        let mut value = serde_json::to_value(summary)
            .map_err(|e| Error::Data(format!("cannot write JSON: {e}")))?;
        value["skipped_rows"] = skipped.into();
        value["drift"] = serde_json::to_value(drift)
            .map_err(|e| Error::Data(format!("cannot write JSON: {e}")))?;
        return json(&value);
    }
    let mut out = summary.to_string();
    if skipped > 0 {
        out.push_str(&format!(
            "\nskipped rows       {skipped} (missing text or country)"
        ));
    }
    out.push_str(&format!("\n{drift}"));
    Ok(out)
}

/// An evaluation of a live server: figures, latency, versions seen and failed requests.
pub fn live_report(report: &LiveReport, concurrency: usize, as_json: bool) -> Result<String> {
    if as_json {
        return json(report);
    }
    let l = &report.latency_ms;
    let versions: Vec<String> = report
        .versions
        .iter()
        .map(|(v, n)| format!("{v} ({n})"))
        .collect();
    let errors: u64 = report.errors.values().sum();
    let mut out = format!(
        "{}\n\
         latency ms         p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  ({:.0} req/s over {:.1}s, concurrency {concurrency})\n\
         versions seen      {}\n\
         errors             {errors}",
        report.summary,
        l.p50,
        l.p90,
        l.p99,
        l.max,
        report.requests_per_second,
        report.seconds,
        versions.join(", "),
    );
    if errors > 0 {
        out.push_str(&format!(" {:?}", report.errors));
    }
    if report.skipped_rows > 0 {
        out.push_str(&format!(
            "\nskipped rows       {} (missing text or country)",
            report.skipped_rows
        ));
    }
    Ok(out)
}

/// One offline prediction: `is_american<TAB>probability<TAB>text`, the text on one line.
pub fn prediction(p: &Prediction, text: &str) -> String {
    format!(
        "{}\t{:.4}\t{}",
        p.is_american,
        p.probability,
        text.replace(['\n', '\t'], " ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prediction_stays_on_one_line() {
        let p = Prediction {
            is_american: 1,
            probability: 0.87654,
        };
        assert_eq!(
            prediction(&p, "go\tyankees\nnow"),
            "1\t0.8765\tgo yankees now"
        );
    }
}
