//! One process per run directory: an advisory lock on `RUN_DIR/.lock`.
//!
//! The lock is the operating system's (`flock` on Unix, `LockFileEx` on Windows through
//! `std::fs::File::try_lock`), so it disappears with the process that held it, even after
//! SIGKILL: `--resume` after a crash never meets a stale lock, while a second `cleft train` on a
//! directory that a live process is writing is refused.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cleft_core::error::{CleftError, Result};

/// Exclusive use of a run directory, held until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Locks `run_dir` (created if missing); an error names the directory and the process
    /// holding it.
    pub fn acquire(run_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(run_dir).map_err(|e| CleftError::io(run_dir, e))?;
        let path = run_dir.join(".lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| CleftError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(CleftError::Training(format!(
                    "run directory {} is in use by another cleft process ({}); wait for it to \
                     finish or choose another output directory",
                    run_dir.display(),
                    holder.trim().trim_end_matches('.')
                )));
            }
            Err(TryLockError::Error(e)) => return Err(CleftError::io(&path, e)),
        }
        let stamp = format!("pid {}", std::process::id());
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(stamp.as_bytes()))
            .map_err(|e| CleftError::io(&path, e))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("cleft-lock-{}", std::process::id()));
        let first = RunLock::acquire(&dir).unwrap();
        let error = RunLock::acquire(&dir).unwrap_err().to_string();
        assert!(
            error.contains("is in use by another cleft process"),
            "{error}"
        );
        assert!(
            error.contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        drop(first);
        RunLock::acquire(&dir).expect("free again once dropped");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
