//! What decoding a model file may allocate is tied to the file's size: measured with a counting
//! allocator (this test binary's global allocator) on a real model scaled up, and on hostile files
//! (a length prefix claiming a GiB; a reference claiming a GiB of counts; a vocabulary of short
//! entries and nothing else). One test
//! function, so no other test of this binary allocates beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use predictor::model::{Model, ModelFile, decode_memory_bound, frame};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::SeqCst) + size;
    PEAK.fetch_max(live, Ordering::SeqCst);
    LARGEST.fetch_max(size, Ordering::SeqCst);
}

// SAFETY: every call is passed on to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        grew(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What `f` allocated at most beyond what was live before it (peak), and its largest single block.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    LARGEST.store(0, Ordering::SeqCst);
    let result = f();
    let peak = PEAK.load(Ordering::SeqCst) - base;
    (result, peak, LARGEST.load(Ordering::SeqCst))
}

#[test]
fn decoding_allocates_in_proportion_to_the_file_not_to_what_it_claims() {
    let (real, _) = predictor::testing::trained_model(
        predictor::sample::SAMPLE_CSV.as_bytes(),
        "2026-12-04T00:00:00Z",
    );
    let file = ModelFile::from_bytes(&real).unwrap();

    // A real model scaled to 200,000 n-grams (~6 MB): decoding it, and building the model the
    // quality gate scores with, stay within the bound the operator reserves.
    let mut scaled = file.clone();
    let n = 200_000;
    scaled.vectorizer.vocabulary = (0..n).map(|i| format!("gram {i}")).collect();
    scaled.vectorizer.idf = (0..n).map(|i| 1.0 + (i % 7) as f64).collect();
    for class in &mut scaled.classifier.feature_log_prob {
        *class = (0..n).map(|i| -1.0 - (i % 11) as f64).collect();
    }
    let bytes = scaled.to_bytes().unwrap();
    let len = bytes.len() as u64;
    let (decoded, peak, _) = measured(|| ModelFile::from_bytes(&bytes));
    decoded.unwrap();
    println!("a real model of {len} bytes: decoding took {peak} bytes at most");
    assert!((peak as u64) < decode_memory_bound(len), "{peak} for {len}");
    let (model, peak, _) = measured(|| Model::from_bytes(&bytes));
    model.unwrap();
    println!("a real model of {len} bytes: building the model took {peak} bytes at most");
    assert!(
        (peak as u64) < 2 * decode_memory_bound(len),
        "{peak} for {len}"
    );

    // 22 bytes whose first string claims (almost) bincode's whole 1 GiB limit: refused without
    // allocating it (bincode's own String decode would allocate the claim first).
    let claim = ((1u32 << 30) - 64).to_le_bytes();
    let hostile = frame(&[252, claim[0], claim[1], claim[2], claim[3], b'x']);
    let (decoded, peak, largest) = measured(|| ModelFile::from_bytes(&hostile));
    let err = decoded.unwrap_err().to_string();
    assert!(err.contains("cannot decode the payload"), "{err}");
    assert!(
        largest < 1 << 16 && peak < 1 << 16,
        "{largest} / {peak} bytes"
    );

    // A reference whose first signal claims a GiB of counts, 65 of them there: refused at the 65th
    // (the model file's bound on bins) without reserving what the length prefix claims.
    let mut bare = file.clone();
    bare.reference = None;
    let bytes = bare.to_bytes().unwrap();
    let mut payload = bytes[12..bytes.len() - 32].to_vec();
    assert_eq!(
        payload.pop(),
        Some(0),
        "the payload ends with its reference's None"
    );
    payload.extend([1, 0, 252]); // Some, rows 0, a u32 length follows
    payload.extend((1u32 << 30).to_le_bytes());
    payload.extend([0; 65]);
    let hostile = frame(&payload);
    let (decoded, peak, largest) = measured(|| ModelFile::from_bytes(&hostile));
    let err = decoded.unwrap_err().to_string();
    assert!(err.contains("more than 64 bins"), "{err}");
    assert!(
        (peak as u64) < decode_memory_bound(hostile.len() as u64) && largest < 1 << 16,
        "{largest} / {peak} bytes"
    );

    // A vocabulary of a million short entries and nothing behind them: refused once it takes more
    // than VOCABULARY_FACTOR times the file, within the decode bound.
    let mut hollow = file.clone();
    hollow.vectorizer.vocabulary = (0..1_000_000).map(|i| format!("{i:x}")).collect();
    hollow.vectorizer.idf.clear();
    for class in &mut hollow.classifier.feature_log_prob {
        class.clear();
    }
    let bytes = hollow.to_bytes().unwrap();
    let len = bytes.len() as u64;
    drop(hollow);
    let (decoded, peak, _) = measured(|| ModelFile::from_bytes(&bytes));
    let err = decoded.unwrap_err().to_string();
    assert!(
        err.contains("the vocabulary takes more than 4 times the file's size in memory"),
        "{err}"
    );
    println!(
        "a hollow vocabulary of {len} bytes: decoding took {peak} bytes before it was refused"
    );
    assert!((peak as u64) < decode_memory_bound(len), "{peak} for {len}");
}
