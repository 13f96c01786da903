//! The `predictor` CLI end to end, on a temporary directory: train, eval, predict, demo and every bad input
//! the core issue lists. Runs the real binary.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{FileServer, predictor, stderr, stdout};
use model_store::testing::free_port as closed_port;

/// Asserts a clean failure: non-zero exit, the message on stderr, no panic.
fn assert_fails_with(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected failure, got success: {}",
        stdout(out)
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    }
}

const DATE: &str = "2026-11-24T12:00:00Z";

/// A small training CSV with extra columns, a quoted multi-line text and a row without a country.
fn write_sample(dir: &Path) -> String {
    let (train, _) = predictor::sample::split();
    let mut csv = String::from("id,text,lang,country_code\n");
    for (i, line) in train.lines().skip(1).enumerate() {
        let (text, country) = line.rsplit_once(',').unwrap();
        csv.push_str(&format!(
            "{i},\"{}\",en,{country}\n",
            text.replace('"', "\"\"")
        ));
    }
    csv.push_str("998,\"two\nlines in Texas\",en,US\n999,no country here,en,\n");
    let path = dir.join("train.csv");
    std::fs::write(&path, csv).unwrap();
    path.display().to_string()
}

fn sha_line(out: &Output) -> String {
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix("sha256 ").map(str::to_string))
        .expect("sha256 line")
}

#[test]
fn train_eval_predict_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_sample(dir.path());
    let model = dir.path().join("model.bin");
    let model = model.to_str().unwrap();

    let out = predictor(&[
        "train",
        "--data",
        &data,
        "--out",
        model,
        "--model-date",
        DATE,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("1 skipped for missing text or country"),
        "{text}"
    );
    let sha = sha_line(&out);
    assert_eq!(
        sha,
        predictor::model::sha256_hex(&std::fs::read(model).unwrap())
    );

    // Same data, settings and date → byte-identical file.
    let again = dir.path().join("again.bin");
    let out = predictor(&[
        "train",
        "--data",
        &data,
        "--out",
        again.to_str().unwrap(),
        "--model-date",
        DATE,
    ]);
    assert_eq!(sha_line(&out), sha);

    let out = predictor(&["eval", "--model", model, "--data", &data, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["rows"], 58);
    assert_eq!(json["skipped_rows"], 1);
    assert!(
        json["accuracy"].as_f64().unwrap() > 0.9,
        "training accuracy {json}"
    );
    for key in [
        "precision",
        "recall",
        "f1",
        "majority_baseline",
        "confusion",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    // The data's drift beside the model's reference: here the very rows it was trained on.
    let drift = &json["drift"];
    assert_eq!(
        (&drift["rows"], &drift["reference_rows"]),
        (&58.into(), &58.into())
    );
    let signals = drift["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 4, "{drift}");
    for signal in signals {
        assert_eq!(signal["data"], signal["reference"], "{signal}");
        assert_eq!(signal["psi"], 0.0, "{signal}");
    }
    let human = stdout(&predictor(&["eval", "--model", model, "--data", &data]));
    assert!(
        human.contains("confusion matrix") && human.contains("majority baseline"),
        "{human}"
    );
    assert!(
        human.contains("\ndrift              against the model's reference (58 training rows)"),
        "{human}"
    );

    let out = predictor(&[
        "predict",
        "--model",
        model,
        "Thanksgiving in Texas y'all",
        "Cheers mate, pint in London",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout(&out);
    let answers: Vec<&str> = lines
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(answers.len(), 2, "{lines}");
    assert_eq!((answers[0], answers[1]), ("1", "0"), "{lines}");

    // stdin, one tweet per line
    let mut child = Command::new(env!("CARGO_BIN_EXE_predictor"))
        .args(["predict", "--model", model])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Go Yankees in the Bronx\nfooty in Sydney this arvo\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let first: Vec<String> = stdout(&out)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(first, ["1", "0"]);
}

#[test]
fn trains_from_http_like_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_sample(dir.path());
    let server = FileServer::start();
    server.put("/datasets/training.csv", std::fs::read(&data).unwrap());
    let (local, remote) = (dir.path().join("local.bin"), dir.path().join("remote.bin"));
    let a = predictor(&[
        "train",
        "--data",
        &data,
        "--out",
        local.to_str().unwrap(),
        "--model-date",
        DATE,
    ]);
    let b = predictor(&[
        "train",
        "--data",
        &server.url("/datasets/training.csv"),
        "--out",
        remote.to_str().unwrap(),
        "--model-date",
        DATE,
    ]);
    assert!(b.status.success(), "{}", stderr(&b));
    assert_eq!(sha_line(&a), sha_line(&b));
    let missing = predictor(&[
        "train",
        "--data",
        &server.url("/nope.csv"),
        "--out",
        remote.to_str().unwrap(),
    ]);
    assert_fails_with(&missing, &["/nope.csv", "HTTP 404"]);
}

#[test]
fn bad_data_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out_model = dir.path().join("m.bin");
    let out_model = out_model.to_str().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };

    let missing = dir.path().join("missing.csv").display().to_string();
    assert_fails_with(
        &predictor(&["train", "--data", &missing, "--out", out_model]),
        &[&missing, "No such file"],
    );

    let url = format!("http://127.0.0.1:{}/train.csv", closed_port());
    assert_fails_with(
        &predictor(&["train", "--data", &url, "--out", out_model]),
        &[&url, "cannot connect"],
    );

    let no_text = write("no_text.csv", b"id,tweet,country_code\n1,hello,US\n");
    assert_fails_with(
        &predictor(&["train", "--data", &no_text, "--out", out_model]),
        &[
            &no_text,
            "no `text` column",
            "columns found: id, tweet, country_code",
        ],
    );

    let bad_utf8 = write("bad.csv", b"text,country_code\nfine,US\nbad \xff byte,GB\n");
    assert_fails_with(
        &predictor(&["train", "--data", &bad_utf8, "--out", out_model]),
        &[&bad_utf8, "row 2", "field `text`", "not valid UTF-8"],
    );

    let empty = write("empty.csv", b"");
    assert_fails_with(
        &predictor(&["train", "--data", &empty, "--out", out_model]),
        &[&empty, "empty"],
    );

    let header_only = write("header.csv", b"text,country_code\n");
    assert_fails_with(
        &predictor(&["train", "--data", &header_only, "--out", out_model]),
        &["no usable rows"],
    );

    let one_class = write(
        "one.csv",
        b"text,country_code\nhello world,US\nbye world,US\n",
    );
    assert_fails_with(
        &predictor(&["train", "--data", &one_class, "--out", out_model]),
        &["no non-US rows"],
    );

    assert_fails_with(
        &predictor(&["train", "--data", "ftp://host/x.csv", "--out", out_model]),
        &["unsupported scheme"],
    );
    assert_fails_with(
        &predictor(&[
            "train",
            "--data",
            &one_class,
            "--model-date",
            "yesterday",
            "--out",
            out_model,
        ]),
        &["not RFC 3339"],
    );
    assert_fails_with(
        &predictor(&["eval", "--model", out_model, "--data", &one_class]),
        &["cannot load model"],
    );
}

#[test]
fn bad_model_files_are_named_for_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_sample(dir.path());
    let model = dir.path().join("model.bin");
    assert!(
        predictor(&["train", "--data", &data, "--out", model.to_str().unwrap()])
            .status
            .success()
    );
    let bytes = std::fs::read(&model).unwrap();

    let check = |name: &str, content: &[u8], needles: &[&str]| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        assert_fails_with(
            &predictor(&["predict", "--model", path.to_str().unwrap(), "hello"]),
            needles,
        );
        assert_fails_with(
            &predictor(&["eval", "--model", path.to_str().unwrap(), "--data", &data]),
            needles,
        );
    };
    check(
        "truncated.bin",
        &bytes[..bytes.len() / 2],
        &["truncated or corrupt"],
    );
    check(
        "foreign.bin",
        b"\x89PNG\r\n\x1a\n not a model at all",
        &["not a predictor model file", "89504e47"],
    );
    check(
        "pickle.bin",
        b"<html>model</html>",
        &["not a predictor model file", "<html>"],
    );
    check("empty.bin", b"", &["not a predictor model file", "empty"]);
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    check("newer.bin", &newer, &["format version 99 is newer"]);
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    check(
        "flipped.bin",
        &flipped,
        &["truncated or corrupt", "checksum"],
    );
}

#[test]
fn demo_runs_on_the_built_in_sample() {
    let out = predictor(&["demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("evaluated on 19 held-out sample tweets"),
        "{text}"
    );
    assert!(
        text.contains("\"#covid19 new york\" -> is_american=1"),
        "{text}"
    );
    assert!(
        !stderr(&out).contains("ClassHistogram"),
        "linfa's dbg! output leaked"
    );
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["train", "eval", "predict", "demo"] {
        let out = predictor(&[sub, "--help"]);
        assert!(
            out.status.success() && stdout(&out).contains("Usage: predictor"),
            "{sub}"
        );
    }
}

/// A bare number of seconds (`probe` and `drain` took one before humantime) still works for one
/// release, with a line saying what to write now.
#[test]
fn a_duration_without_a_unit_still_counts_as_seconds_and_says_what_to_write_now() {
    let started = std::time::Instant::now();
    let out = predictor(&["drain", "--wait", "0.2"]);
    assert_fails_with(
        &out,
        &[
            "warning: --wait 0.2 is deprecated and will be removed in the next release: write \
             --wait 0.2s\n",
            "no drain socket",
            "waiting 200 ms anyway",
        ],
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
}

/// `delivery-report` from a run's marks file and its probe's files: the timeline, the probe's report, the
/// report and summary.json; a run that never saw the new version fails it, after the files are written.
#[cfg(feature = "plot")]
#[test]
fn delivery_report_writes_the_report_and_fails_an_undelivered_run() {
    use predictor::probe::{Load, Sample, render_markdown, summarize};
    let dir = tempfile::tempdir().unwrap();
    let answer = |sent_ms: f64, version: &str| Sample {
        sent_ms,
        latency_ms: 1.5,
        version: Some(version.into()),
        model: None,
        failure: None,
    };
    let samples: Vec<Sample> = (0..400)
        .map(|i| answer(i as f64 * 10.0, if i < 250 { "0.1" } else { "0.2" }))
        .collect();
    let report = summarize(&samples, "2026-11-26T13:44:13Z", &Load::steady(100.0));
    let json = serde_json::json!({ "report": report, "samples": samples });
    std::fs::write(dir.path().join("probe-1.json"), json.to_string()).unwrap();
    let probe_md = render_markdown(&report, "http://american.team-a.svc:5008");
    std::fs::write(dir.path().join("probe-1.md"), &probe_md).unwrap();
    let marks = |new: &str| {
        let work = dir.path().display();
        format!(
            "run 1\nold 0.1\nnew {new}\npage \nload 0.5\ngitops_commit abc\nprobe_started 100\n\
             committed 100.5\nsynced 101.5\nrolled 102.4\nready 102.6\nhealthy 102.7\n\
             probe_json {work}/probe-1.json\nprobe_report {work}/probe-1.md\nstage gitops 100.9\n"
        )
    };
    let marks_path = dir.path().join("run-1.marks");
    let out = dir.path().join("report");
    let run = |marks_text: String| {
        std::fs::write(&marks_path, marks_text).unwrap();
        predictor(&[
            "delivery-report",
            "--mode",
            "gitops",
            "--url",
            "http://american.team-a.svc:5008",
            "--out",
            out.to_str().unwrap(),
            marks_path.to_str().unwrap(),
        ])
    };
    let done = run(marks("0.2"));
    assert!(done.status.success(), "{}", stderr(&done));
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let report_md = read("report.md");
    assert!(
        report_md.contains("every 10ms to http://american.team-a.svc:5008")
            && report_md.contains("| first answer from the new version | 2.00 | 2.00 |")
            && report_md.ends_with(&format!("{probe_md}\n")),
        "{report_md}"
    );
    assert_eq!(read("probe-1.md"), probe_md);
    let summary: serde_json::Value = serde_json::from_str(&read("summary.json")).unwrap();
    assert_eq!(summary["mode"], "gitops");
    assert_eq!(summary["runs"][0]["stages"]["gitops"], 0.4);
    assert!(std::fs::metadata(out.join("timeline-1.png")).unwrap().len() > 1000);
    // 0.3 never answered.
    let undelivered = run(marks("0.3"));
    assert_fails_with(
        &undelivered,
        &["run(s) [1] failed requests or never served the new version"],
    );
    assert!(read("report.md").contains("| first answer from the new version | - | - |"));
}

/// A format-1 model file (no drift reference) evaluates as before, and says it has no reference.
#[test]
fn eval_of_a_format_1_model_says_it_has_no_reference() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_sample(dir.path());
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/model-v1.bin");
    let out = predictor(&["eval", "--model", model, "--data", &data]);
    assert!(out.status.success(), "{}", stderr(&out));
    let human = stdout(&out);
    assert!(
        human.contains("drift              the model file has no reference (format 1)"),
        "{human}"
    );
    assert!(!human.contains("PSI"), "{human}");
    let out = predictor(&["eval", "--model", model, "--data", &data, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["drift"]["reference_rows"], serde_json::Value::Null);
    assert_eq!(json["drift"]["rows"], json["rows"]);
    assert_eq!(json["drift"]["signals"][0]["psi"], serde_json::Value::Null);
}
