//! Resumable training checkpoints (`checkpoints/step-N/`: model, optimizer state, loader
//! position), written to a temp directory and renamed: a crash never leaves a half-written
//! checkpoint under a final name.

pub use cleft_core::store::{load_safetensors, save_safetensors, write_atomic};

use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::{BurnpackStore, ModuleSnapshot};

use crate::state::TrainState;
use cleft_core::error::{CleftError, Result};

fn checkpoint_error(path: &Path, error: impl std::fmt::Display) -> CleftError {
    CleftError::checkpoint(path, error.to_string())
}

/// Directory holding the numbered training checkpoints of a run.
pub fn checkpoints_dir(run_dir: &Path) -> std::path::PathBuf {
    run_dir.join("checkpoints")
}

pub(crate) fn step_dir_name(step: usize) -> String {
    format!("step-{step:08}")
}

fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CleftError::io(dir, e))
}

/// Saves a resumable checkpoint: `checkpoints/step-NNNNNNNN/{model.bpk, optimizer.bpk,
/// state.json}`. The directory is written under a temporary name and renamed when complete, so
/// a crash (or a full disk) at any moment leaves the previous checkpoints intact and never a
/// partial one under a final name. Keeps the newest `keep` checkpoints.
///
/// The model is stored as burnpack, which records parameter ids: the optimizer state (keyed by
/// id) then matches the reloaded model exactly.
pub fn save_checkpoint<M: Module>(
    run_dir: &Path,
    state: &TrainState,
    model: &M,
    optimizer: &ModuleOptimizer,
    keep: usize,
) -> Result<std::path::PathBuf> {
    let root = checkpoints_dir(run_dir);
    std::fs::create_dir_all(&root).map_err(|e| CleftError::io(&root, e))?;
    let name = step_dir_name(state.step);
    let temp = root.join(format!(".{name}.tmp"));
    let final_dir = root.join(&name);
    if temp.exists() {
        std::fs::remove_dir_all(&temp).map_err(|e| CleftError::io(&temp, e))?;
    }
    let written = (|| -> Result<()> {
        std::fs::create_dir(&temp).map_err(|e| CleftError::io(&temp, e))?;
        let mut store = BurnpackStore::from_bytes(None);
        module_bytes(model, &mut store, &temp)?;
        let model_bytes = store.get_bytes().map_err(|e| checkpoint_error(&temp, e))?;
        write_synced(&temp.join("model.bpk"), &model_bytes)?;
        let optimizer_bytes = optimizer
            .into_bytes()
            .map_err(|e| checkpoint_error(&temp, e))?;
        write_synced(&temp.join("optimizer.bpk"), &optimizer_bytes)?;
        let state_json = serde_json::to_vec_pretty(state).expect("state serialises");
        write_synced(&temp.join("state.json"), &state_json)?;
        fsync_dir(&temp)
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(error);
    }
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| CleftError::io(&final_dir, e))?;
    }
    std::fs::rename(&temp, &final_dir).map_err(|e| CleftError::io(&final_dir, e))?;
    fsync_dir(&root)?;
    prune(&root, keep)?;
    Ok(final_dir)
}

fn module_bytes<M: Module>(model: &M, store: &mut BurnpackStore, dir: &Path) -> Result<()> {
    model.save_into(store).map_err(|e| checkpoint_error(dir, e))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|e| CleftError::io(path, e))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| CleftError::io(path, e))
}

/// Complete checkpoints of a run, oldest first (temporary directories are ignored).
pub fn list_checkpoints(run_dir: &Path) -> Result<Vec<(usize, std::path::PathBuf)>> {
    let root = checkpoints_dir(run_dir);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CleftError::io(&root, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CleftError::io(&root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<usize>().ok())
        {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

fn prune(root: &Path, keep: usize) -> Result<()> {
    let run_dir = root.parent().unwrap_or(root);
    let all = list_checkpoints(run_dir)?;
    for (_, dir) in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        std::fs::remove_dir_all(dir).map_err(|e| CleftError::io(dir, e))?;
    }
    Ok(())
}

/// Restores model weights (with their parameter ids), optimizer state and training state from a
/// checkpoint directory written by [`save_checkpoint`].
///
/// The optimizer is made by `make_optimizer` *after* the weights are loaded: loading restores the
/// saved parameter ids, and parameter groups built from ids (e.g. "no weight decay for 1-D
/// parameters") must refer to those.
pub fn load_checkpoint<M: Module>(
    dir: &Path,
    model: &mut M,
    make_optimizer: impl FnOnce(&M) -> ModuleOptimizer,
) -> Result<(ModuleOptimizer, TrainState)> {
    let model_path = dir.join("model.bpk");
    if !model_path.is_file() {
        return Err(CleftError::checkpoint(model_path, "missing"));
    }
    let mut store = BurnpackStore::from_file(&model_path);
    let result = model
        .load_from(&mut store)
        .map_err(|e| checkpoint_error(&model_path, e))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        let missing: Vec<_> = result.missing.iter().map(|(key, _)| key.as_str()).collect();
        return Err(CleftError::checkpoint(
            model_path,
            format!(
                "missing tensors: [{}]; errors: {:?}",
                missing.join(", "),
                result.errors
            ),
        ));
    }
    let optimizer_path = dir.join("optimizer.bpk");
    let optimizer = make_optimizer(model)
        .load(&optimizer_path)
        .map_err(|e| checkpoint_error(&optimizer_path, e))?;
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| CleftError::io(&state_path, e))?;
    let state = serde_json::from_str(&text).map_err(|e| CleftError::Checkpoint {
        message: e.to_string(),
        path: state_path,
        source: Some(e.into()),
    })?;
    Ok((optimizer, state))
}

/// The newest checkpoint of a run directory, if any.
pub fn latest_checkpoint(run_dir: &Path) -> Result<Option<std::path::PathBuf>> {
    Ok(list_checkpoints(run_dir)?.pop().map(|(_, dir)| dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed write (here: the temp name is taken by a directory, as a stand-in for a full
    /// disk) leaves the previous file untouched and no temp file behind.
    #[test]
    fn a_failed_atomic_write_keeps_the_previous_file() {
        let dir = std::env::temp_dir().join(format!("cleft-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("weights.bin");
        write_atomic(&target, b"first").unwrap();
        std::fs::create_dir_all(dir.join(".weights.bin.tmp/blocker")).unwrap();
        assert!(write_atomic(&target, b"second").is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"first");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
