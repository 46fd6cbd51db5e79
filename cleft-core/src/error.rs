//! The error type of cleft-core.

use std::path::PathBuf;

/// Errors raised by cleft-core and the plugins built on it.
#[derive(Debug, thiserror::Error)]
pub enum CleftError {
    /// A configuration file could not be read or is invalid.
    #[error("{0}")]
    Config(String),
    /// A component was requested by a name nobody registered.
    #[error("unknown {kind} `{name}`; registered {kind} names: {}", known.join(", "))]
    UnknownComponent {
        /// Component kind (`vision`, `text`, …).
        kind: String,
        /// The requested name.
        name: String,
        /// Names registered for that kind.
        known: Vec<String>,
    },
    /// A PEFT target pattern matched no module.
    #[error("PEFT target `{pattern}` matches no module; closest module paths: {}", closest.join(", "))]
    TargetNotFound {
        /// The target pattern as configured.
        pattern: String,
        /// Module paths most similar to the pattern.
        closest: Vec<String>,
    },
    /// The requested device is not compiled in or not available.
    #[error("{0}")]
    Device(String),
    /// Bad input data (file, row, field named in the message).
    #[error("{0}")]
    Data(String),
    /// Invalid argument to a component (shapes, sizes).
    #[error("{0}")]
    Invalid(String),
    /// Training diverged or could not continue.
    #[error("{0}")]
    Training(String),
    /// A shared-library plugin was refused (the library and the reason named).
    #[error("{0}")]
    Plugin(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// One image of those given to inference could not be used (unreadable, undecodable, or of
    /// the wrong size); `index` is its position in the batch.
    #[error("image {index}: {source}")]
    Image {
        /// Position of the image in the batch given.
        index: usize,
        /// Why it failed (naming its file when it has one).
        source: Box<CleftError>,
    },
    /// Saving or loading a checkpoint failed.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl CleftError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for cleft-core.
pub type Result<T, E = CleftError> = std::result::Result<T, E>;
