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

/// Registers a file-backed data set config: `open(split)` serves the split, `image` fixes the
/// image shape contract and the inference preprocessing.
macro_rules! file_dataset {
    ($config:ty, $name:literal, $summary:literal) => {
        #[typetag::serde(name = $name)]
        impl cleft_core::registry::DatasetConfig for $config {
            fn build(
                &self,
                split: cleft_core::registry::Split,
            ) -> Result<Box<dyn cleft_core::data::ImageTextDataset>, cleft_core::CleftError> {
                Ok(Box::new(self.open(split)?))
            }

            fn image_shape(
                &self,
            ) -> Result<Option<cleft_core::contract::ImageShape>, cleft_core::CleftError> {
                Ok(Some(crate::chexpert::image_shape_of(&self.image)))
            }

            fn preprocessor(
                &self,
            ) -> Result<
                Option<Box<dyn cleft_core::preprocess::ImagePreprocessor>>,
                cleft_core::CleftError,
            > {
                Ok(Some(crate::chexpert::preprocessor_of(&self.image)?))
            }
        }

        cleft_core::register_component!(Dataset, $name, $summary, $config);
    };
}

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
    CHEXPERT_CSV_FINDINGS, CHEXPERT_FINDINGS, Chexpert5x200Config, ChexpertConfig, FIVE_CLASSES,
    FiveByTwoHundred, Uncertain, clean_caption, synthesise_caption,
};
pub use embed::{BIRADS_CLASSES, BIRADS_LETTERS, DENSITY_CLASSES, EmbedConfig, EmbedTask};
pub use pairs::ImageTextCsvConfig;
pub use records::{Record, RecordSet};
pub use rsna::{RSNA_CLASSES, RsnaConfig};
pub use split::SplitFractions;
