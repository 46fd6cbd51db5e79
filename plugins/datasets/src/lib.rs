//! Real medical data sets for cleft, each registered as a `[data] type`:
//!
//! - `chexpert`: the CheXpert CSV as shipped, label-synthesised captions (or a report column),
//!   CheXpert-5x200 as its test split; `chexpert-5x200`: that split alone.
//! - `rsna`: RSNA pneumonia labels + DICOM images.
//! - `embed`: EMBED mammography, BI-RADS or density.
//! - `image-text-csv`: any `path, text[, labels]` CSV.
//!
//! Images are read and preprocessed by `cleft-imaging` on the loader's worker threads; CSV
//! errors name the file and line, and `on_bad_sample = "skip"` leaves bad samples out and lists
//! them in the run directory.

mod bad;
mod chexpert;
mod embed;
mod pairs;
mod records;
mod rsna;
mod split;
mod table;

pub use bad::{BadSamples, OnBadSample};
pub use chexpert::{
    CHEXPERT_FINDINGS, Chexpert5x200Config, ChexpertConfig, FIVE_CLASSES, FiveByTwoHundred,
    Uncertain, clean_caption, synthesise_caption,
};
pub use embed::{BIRADS_CLASSES, BIRADS_LETTERS, DENSITY_CLASSES, EmbedConfig, EmbedTask};
pub use pairs::ImageTextCsvConfig;
pub use records::{Record, RecordSet};
pub use rsna::{RSNA_CLASSES, RsnaConfig};
pub use split::SplitFractions;
