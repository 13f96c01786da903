//! `predict` on one tweet and on a batch of 1,000 (issue 16): the model trained on
//! ../shared/data/tweets/train.csv, the tweets of test.csv. The figure per tweet is the batch's time
//! over 1,000 (criterion prints it as throughput, elements/s).
//!
//! `cargo bench -p predictor --bench predict`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use predictor::Model;
use predictor::train::{TrainSettings, train_from_bytes};

fn tweets_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/tweets"
    ))
}

/// The default pipeline trained on train.csv, and test.csv's texts.
fn model_and_texts() -> (Model, Vec<String>) {
    let train =
        std::fs::read(tweets_dir().join("train.csv")).expect("../shared/data/tweets/train.csv");
    let file = train_from_bytes(
        &train,
        "train.csv",
        &TrainSettings::default(),
        "2026-03-01T00:00:00Z",
    )
    .expect("train");
    let model = Model::from_bytes(&file.to_bytes().expect("encode")).expect("decode");
    let test =
        std::fs::read(tweets_dir().join("test.csv")).expect("../shared/data/tweets/test.csv");
    let texts = predictor::data::read_all(&test[..], "test.csv")
        .expect("read test.csv")
        .into_iter()
        .map(|(text, _)| text)
        .collect();
    (model, texts)
}

fn predict(c: &mut Criterion) {
    let (model, texts) = model_and_texts();
    let one = "#covid19 new york";
    c.bench_function("predict one tweet", |b| {
        b.iter(|| model.predict(black_box(one)))
    });

    let batch = &texts[..1000.min(texts.len())];
    let mut group = c.benchmark_group("predict a batch");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function(format!("{} tweets of test.csv", batch.len()), |b| {
        b.iter(|| {
            batch
                .iter()
                .map(|t| model.predict(black_box(t)).is_american as u32)
                .sum::<u32>()
        })
    });
    group.finish();
}

criterion_group!(benches, predict);
criterion_main!(benches);
