//! Hostile files that declare more than they hold: each gives a named error at once, without
//! allocating what it declares. Heap use is measured by a counting allocator around the call.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counts live heap bytes and their peak (delegates every call to the system allocator).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The tests of this file measure one at a time (the counter is process-wide).
static MEASURE: Mutex<()> = Mutex::new(());

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counters
// are plain atomics.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        pointer
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, size) };
        if !moved.is_null() {
            if size >= layout.size() {
                let live = LIVE.fetch_add(size - layout.size(), Ordering::Relaxed)
                    + (size - layout.size());
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - size, Ordering::Relaxed);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Most heap a refusal may take on top of what was live before it.
const HEAP_LIMIT: usize = 50 << 20;
/// "Well under a second": these refusals read a few kilobytes.
const TIME_LIMIT: Duration = Duration::from_millis(500);

/// Runs `refuse` (which must fail), returning its error, the extra peak heap and the time taken.
fn measured<E: std::fmt::Display>(
    refuse: impl FnOnce() -> Result<(), E>,
) -> (String, usize, Duration) {
    let _one_at_a_time = MEASURE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let started = Instant::now();
    let outcome = refuse();
    let elapsed = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    let Err(error) = outcome else {
        panic!("the hostile input was accepted");
    };
    (error.to_string(), peak, elapsed)
}

fn check_bounds(what: &str, peak: usize, elapsed: Duration) {
    eprintln!("{what}: {peak} bytes of heap, {elapsed:?}");
    assert!(peak < HEAP_LIMIT, "{what} took {peak} bytes of heap");
    assert!(elapsed < TIME_LIMIT, "{what} took {elapsed:?}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cleft-limits-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn corpus(target: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn put_str(buffer: &mut Vec<u8>, text: &str) {
    buffer.extend((text.len() as u64).to_le_bytes());
    buffer.extend(text.as_bytes());
}

/// A GGUF v3 whose one tensor declares 2^28 float32 values (1 GiB) at data offset 0, while the
/// file ends 64 bytes after its header.
fn gguf_with_tensor_past_the_end() -> Vec<u8> {
    let mut file = b"GGUF".to_vec();
    file.extend(3u32.to_le_bytes());
    file.extend(1u64.to_le_bytes()); // tensors
    file.extend(1u64.to_le_bytes()); // metadata entries
    put_str(&mut file, "general.architecture");
    file.extend(8u32.to_le_bytes()); // string
    put_str(&mut file, "llama");
    put_str(&mut file, "token_embd.weight");
    file.extend(2u32.to_le_bytes());
    file.extend((1u64 << 14).to_le_bytes());
    file.extend((1u64 << 14).to_le_bytes());
    file.extend(0u32.to_le_bytes()); // F32
    file.extend(0u64.to_le_bytes()); // offset in the data section
    while !file.len().is_multiple_of(32) {
        file.push(0);
    }
    file.extend([0u8; 64]);
    file
}

#[test]
fn a_gguf_whose_tensor_data_lies_past_the_end_is_refused_by_name() {
    let dir = scratch("gguf");
    let path = dir.join("past-the-end.gguf");
    std::fs::write(&path, gguf_with_tensor_past_the_end()).unwrap();
    let (error, peak, elapsed) = measured(|| {
        let file = cleft_gguf::GgufFile::open(&path)?;
        file.read_f32("token_embd.weight").map(|_| ())
    });
    check_bounds("GGUF", peak, elapsed);
    assert!(error.contains("token_embd.weight"), "{error}");
    assert!(
        error.contains("past the end")
            || error.contains("end of the file")
            || error.contains("beyond"),
        "the error should say the data lies past the end: {error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_chexpert_csv_missing_a_column_is_refused_naming_file_and_column() {
    let dir = scratch("csv");
    let csv = String::from_utf8(corpus("csv", "chexpert-train.csv")).unwrap();
    // Drop the `AP/PA` column (the fifth) from every line.
    let cut: String = csv
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(',').collect();
            fields.remove(4);
            fields.join(",") + "\n"
        })
        .collect();
    let path = dir.join("train.csv");
    std::fs::write(&path, cut).unwrap();
    let config = cleft_datasets::ChexpertConfig {
        csv: path.clone(),
        image_root: dir.clone(),
        ..Default::default()
    };
    let (error, peak, elapsed) =
        measured(|| config.open(cleft_core::registry::Split::Train).map(|_| ()));
    check_bounds("CSV", peak, elapsed);
    assert!(error.contains("train.csv"), "{error}");
    assert!(error.contains("AP/PA"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_truncated_dicom_is_refused_naming_the_file() {
    let dir = scratch("dicom");
    let whole = corpus("image", "mono1-16bit-window.dcm");
    // Cut inside the pixel data: the header still declares all of it.
    let path = dir.join("truncated.dcm");
    std::fs::write(&path, &whole[..whole.len() - 40]).unwrap();
    let (error, peak, elapsed) = measured(|| {
        cleft_imaging::read_grey(&path, &cleft_imaging::DicomOptions::default()).map(|_| ())
    });
    check_bounds("DICOM", peak, elapsed);
    assert!(error.contains("truncated.dcm"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}
