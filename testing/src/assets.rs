//! The offline asset cache filled by `tools/fetch-assets.sh`.

use std::path::PathBuf;

/// `$CLEFT_ASSETS`, default `$HOME/.cache/cleft-assets`.
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("CLEFT_ASSETS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache").join("cleft-assets")
        }
    }
}

/// `assets_dir()/relative`.
///
/// # Panics
/// When it does not exist, telling to run `tools/fetch-assets.sh` (the README's test command
/// does): a parity test never passes by skipping its asset.
pub fn require_asset(relative: &str) -> PathBuf {
    let path = assets_dir().join(relative);
    assert!(
        path.exists(),
        "test asset {} is missing: run tools/fetch-assets.sh (or set CLEFT_ASSETS to the \
         directory it fills)",
        path.display()
    );
    path
}
