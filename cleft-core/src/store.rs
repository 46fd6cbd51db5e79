//! Whole-module weight files: atomic writes and safetensors by parameter path (the final
//! `model.safetensors` of a run, exported adapters, learned prompts).

use std::path::Path;

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use crate::error::{CleftError, Result};

/// Writes `bytes` to `path` atomically: to a sibling temp file, fsync, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let file_name = path
        .file_name()
        .ok_or_else(|| CleftError::Invalid(format!("{}: not a file path", path.display())))?;
    let temp = path.with_file_name(format!(".{}.tmp", file_name.to_string_lossy()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if let Err(error) = write() {
        if temp.is_file() {
            let _ = std::fs::remove_file(&temp);
        }
        return Err(CleftError::io(&temp, error));
    }
    std::fs::rename(&temp, path).map_err(|e| CleftError::io(path, e))
}

/// Saves every parameter of `module` as safetensors (keys = parameter paths), atomically.
pub fn save_safetensors<M: Module>(module: &M, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_bytes(None);
    module
        .save_into(&mut store)
        .map_err(|e| checkpoint_error(path, e))?;
    let bytes = store.get_bytes().map_err(|e| checkpoint_error(path, e))?;
    write_atomic(path, &bytes)
}

/// Loads parameters saved by [`save_safetensors`] into `module`; every parameter must be present
/// and every stored tensor used, otherwise the error names the offending keys.
pub fn load_safetensors<M: Module>(module: &mut M, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_file(path).allow_partial(true);
    let result = module
        .load_from(&mut store)
        .map_err(|e| checkpoint_error(path, e))?;
    let missing: Vec<_> = result.missing.iter().map(|(key, _)| key.as_str()).collect();
    if !missing.is_empty() || !result.unused.is_empty() || !result.errors.is_empty() {
        return Err(CleftError::checkpoint(
            path,
            format!(
                "missing tensors: [{}]; unexpected tensors: [{}]; errors: [{}]",
                missing.join(", "),
                result.unused.join(", "),
                result
                    .errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    Ok(())
}

fn checkpoint_error(path: &Path, error: impl std::fmt::Display) -> CleftError {
    CleftError::checkpoint(path, error.to_string())
}
