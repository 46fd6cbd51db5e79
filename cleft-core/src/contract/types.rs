//! What components declare about their inputs and outputs, each value with the config key that
//! sets it: the leaf types the registry's config traits return, checked by
//! [`check`](super::check).

/// A value and the dotted config key it comes from (`vision.num_channels`), for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed<T> {
    /// The value.
    pub value: T,
    /// Where it is set.
    pub key: String,
}

impl<T> Keyed<T> {
    /// `value` set by `key`.
    pub fn new(value: T, key: impl Into<String>) -> Self {
        Self {
            value,
            key: key.into(),
        }
    }
}

/// What a vision encoder takes: `[B, C, S, S]` images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInput {
    /// Input channels `C`.
    pub channels: Keyed<usize>,
    /// Input side `S` in pixels; `None` when any side the encoder can patchify is accepted.
    pub size: Option<Keyed<usize>>,
}

/// What a data set produces: `[C, S, S]` images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageShape {
    /// Channels `C`.
    pub channels: Keyed<usize>,
    /// Side `S` in pixels.
    pub size: Keyed<usize>,
}

/// What a text encoder takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextInput {
    /// Real tokens per text (the single source of truth for text length).
    pub max_len: Keyed<usize>,
    /// Positions available (learned position table); `None` when unbounded (e.g. RoPE).
    pub positions: Option<Keyed<usize>>,
    /// Positions the encoder needs after the real tokens (CLEFT first-pad pooling: 1).
    pub trailing: usize,
}
