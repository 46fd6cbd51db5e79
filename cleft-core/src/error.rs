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
        /// What went wrong (including the underlying error's text, if any).
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A PEFT adapter file (`adapter_config.json`, adapter weights) is missing or unusable.
    #[error("{path}: {message}")]
    Adapter {
        /// The adapter file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A pretrained weights file (safetensors, `pytorch_model.bin`, GGUF) or its
    /// `config.json` is missing or unusable.
    #[error("{path}: {message}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What went wrong (the key, shape or dtype involved).
        message: String,
    },
    /// Drawing or writing a plot (PNG) failed.
    #[error("{path}: cannot draw the plot: {source}")]
    Plot {
        /// The image file.
        path: PathBuf,
        /// The plotting library's error.
        source: BoxError,
    },
    /// An underlying library failed while cleft was doing `message`; `kind` says what failed.
    #[error("{message}: {source}")]
    Caused {
        /// What failed.
        kind: ErrorKind,
        /// What cleft was doing (naming the file, key or text involved).
        message: String,
        /// The underlying error.
        source: BoxError,
    },
}

/// A boxed error of another library, kept as the [`source`](std::error::Error::source) of a
/// [`CleftError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What failed, for an application that matches on errors without their details
/// ([`CleftError::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A config file or value.
    Config,
    /// A component name or PEFT target.
    Component,
    /// A device or backend.
    Device,
    /// Input data (a data set's file, row or field; a text to tokenise).
    Data,
    /// An argument to a component (shapes, sizes).
    Invalid,
    /// Training could not continue.
    Training,
    /// A shared-library plugin.
    Plugin,
    /// Reading or writing a file.
    Io,
    /// An image given for inference.
    Image,
    /// A training checkpoint.
    Checkpoint,
    /// A PEFT adapter file.
    Adapter,
    /// A pretrained weights file.
    Weights,
    /// A plot.
    Plot,
}

impl CleftError {
    /// What failed.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(_) => ErrorKind::Config,
            Self::UnknownComponent { .. } | Self::TargetNotFound { .. } => ErrorKind::Component,
            Self::Device(_) => ErrorKind::Device,
            Self::Data(_) => ErrorKind::Data,
            Self::Invalid(_) => ErrorKind::Invalid,
            Self::Training(_) => ErrorKind::Training,
            Self::Plugin(_) => ErrorKind::Plugin,
            Self::Io { .. } => ErrorKind::Io,
            Self::Image { .. } => ErrorKind::Image,
            Self::Checkpoint { .. } => ErrorKind::Checkpoint,
            Self::Adapter { .. } => ErrorKind::Adapter,
            Self::Weights { .. } => ErrorKind::Weights,
            Self::Plot { .. } => ErrorKind::Plot,
            Self::Caused { kind, .. } => *kind,
        }
    }

    /// `source` (another library's error) while doing `message`, as a `kind` failure; the
    /// source stays reachable through [`std::error::Error::source`].
    pub fn caused(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Caused {
            kind,
            message: message.into(),
            source: source.into(),
        }
    }

    /// A checkpoint error without an underlying error.
    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            message: message.into(),
            source: None,
        }
    }

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
