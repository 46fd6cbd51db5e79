//! Shared helpers for the integration tests that need the real SmolLM2 GGUF.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use cleft_gguf::GgufFile;
use serde_json::Value;

/// Path of the GGUF inside `$CLEFT_ASSETS`.
pub const REL_PATH: &str = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The SmolLM2 GGUF path; panics (fails the test) with instructions when it is missing.
pub fn gguf_path() -> PathBuf {
    cleft_testing::require_asset(REL_PATH)
}

/// The opened GGUF, shared by the tests of one binary.
pub fn gguf() -> &'static GgufFile {
    static FILE: OnceLock<GgufFile> = OnceLock::new();
    FILE.get_or_init(|| GgufFile::open(gguf_path()).expect("open GGUF"))
}

/// `fixtures/golden/gguf.json`, made by `tools/golden_gguf.py`.
pub fn golden() -> &'static Value {
    static GOLDEN: OnceLock<Value> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden/gguf.json");
        let path = if path.is_file() {
            path
        } else {
            // In the cleft-rs workspace the crate lives in plugins/gguf and fixtures at the root.
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/gguf.json")
        };
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text).expect("golden JSON")
    })
}

/// A JSON array of numbers as `f32` (exact: the golden values are f32 written as f64).
pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// Asserts that two float64 sums of the same `n` float32 values (of total magnitude `abs_sum`)
/// agree up to summation-order rounding: `FACTOR · √n · ε_f64 · abs_sum` (the random-walk model
/// of `n` roundings, with the suite's safety factor, `cleft_testing::tolerance`).
pub fn assert_same_sum(a: f64, b: f64, n: usize, abs_sum: f64, what: &str) {
    let bound = cleft_testing::tolerance::FACTOR * (n as f64).sqrt() * f64::EPSILON * abs_sum;
    assert!(
        (a - b).abs() <= bound,
        "{what}: got {a}, golden {b} (|Δ| {:e} > {bound:e})",
        (a - b).abs()
    );
}
