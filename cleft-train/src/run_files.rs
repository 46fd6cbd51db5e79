//! The files data sets ask to keep in the run directory (drawn selections, skipped samples).

use std::path::Path;

use cleft_core::data::ImageTextDataset;
use cleft_core::error::{CleftError, Result};
use cleft_core::store::write_atomic;

/// Writes `dataset.run_files()` into `dir`, each atomically.
pub fn write_run_files(dataset: &dyn ImageTextDataset, dir: &Path) -> Result<()> {
    for file in dataset.run_files() {
        if file.name.contains(['/', '\\']) || file.name.starts_with('.') {
            return Err(CleftError::Data(format!(
                "data set asked to write `{}`, which is not a plain file name",
                file.name
            )));
        }
        write_atomic(&dir.join(&file.name), file.contents.as_bytes())?;
    }
    Ok(())
}
