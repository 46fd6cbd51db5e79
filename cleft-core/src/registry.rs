//! The component registry: every built-in or dynamically loaded component kind and name.
//!
//! Built-in plugins register at link time with [`register_component!`](crate::register_component)
//! (backed by `inventory`); dynamic plugins add entries at run time through
//! [`Registry::add`] (shared libraries: the `cleft-plugin-host` crate, which records each library
//! it loaded with [`Registry::record_plugin`]). A configuration section `[vision] type = "vit"`
//! is resolved here: the entry's parser turns the rest of the section into the plugin's typed config (a `typetag` trait object
//! that serialises back with its `type`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::de::DeserializeOwned;

use crate::bridge::Component;
use crate::contract::types::{ImageInput, ImageShape, Keyed, TextInput};
use crate::data::ImageTextDataset;
use crate::error::{CleftError, Result};
use crate::objective::ContrastiveObjective;
use crate::peft::PeftAdapter;
use crate::preprocess::ImagePreprocessor;
use crate::prompt::PromptLearner;
use crate::text::TextEncoder;
use crate::vision::VisionEncoder;

/// The kinds of pluggable components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentKind {
    /// [`VisionEncoder`] implementations (`[vision]` section).
    Vision,
    /// [`TextEncoder`] implementations (`[text]` section).
    Text,
    /// [`PeftAdapter`] implementations (`[peft]` section).
    Peft,
    /// [`PromptLearner`] implementations (`[prompt]` section).
    Prompt,
    /// [`ContrastiveObjective`] implementations (`[objective]` section).
    Objective,
    /// Image–text data sets (`[data]` section).
    Dataset,
}

impl ComponentKind {
    /// All kinds, in config-section order.
    pub const ALL: [ComponentKind; 6] = [
        ComponentKind::Vision,
        ComponentKind::Text,
        ComponentKind::Peft,
        ComponentKind::Prompt,
        ComponentKind::Objective,
        ComponentKind::Dataset,
    ];

    /// The config section (and display name) of this kind.
    pub fn section(self) -> &'static str {
        match self {
            ComponentKind::Vision => "vision",
            ComponentKind::Text => "text",
            ComponentKind::Peft => "peft",
            ComponentKind::Prompt => "prompt",
            ComponentKind::Objective => "objective",
            ComponentKind::Dataset => "data",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.section())
    }
}

/// Configuration of a vision encoder; builds the encoder.
#[typetag::serde(tag = "type")]
pub trait VisionEncoderConfig: fmt::Debug + Send + Sync {
    /// Builds the encoder with freshly initialised (or loaded) weights on `device`.
    fn build(&self, device: &Device) -> Result<Component<dyn VisionEncoder>>;

    /// The images it takes (channels, side), from the config alone (a checkpoint's
    /// `config.json` at most); `None` (the default) skips the data-set contract.
    fn input(&self) -> Result<Option<ImageInput>> {
        Ok(None)
    }
}

/// Configuration of a text encoder; builds the encoder.
#[typetag::serde(tag = "type")]
pub trait TextEncoderConfig: fmt::Debug + Send + Sync {
    /// Builds the encoder with freshly initialised (or loaded) weights on `device`.
    fn build(&self, device: &Device) -> Result<Component<dyn TextEncoder>>;

    /// Text length and positions, from the config alone; `None` (the default) skips the
    /// position contract.
    fn input(&self) -> Result<Option<TextInput>> {
        Ok(None)
    }
}

/// Configuration of a PEFT method; builds the adapter (tuner).
#[typetag::serde(tag = "type")]
pub trait PeftConfig: fmt::Debug + Send + Sync {
    /// Builds the adapter.
    fn build(&self) -> Result<Box<dyn PeftAdapter>>;

    /// Positions the method adds to every text (prompt / prefix tuning's virtual tokens), with
    /// the key that sets them; `None` (the default) for none.
    fn extra_positions(&self) -> Option<Keyed<usize>> {
        None
    }
}

/// Configuration of a prompt learner.
#[typetag::serde(tag = "type")]
pub trait PromptLearnerConfig: fmt::Debug + Send + Sync {
    /// Builds the prompt learner for `text` (its embedding table may initialise the context).
    fn build(
        &self,
        text: &Component<dyn TextEncoder>,
        device: &Device,
    ) -> Result<Component<dyn PromptLearner>>;

    /// Context tokens prepended to every class prompt in stage 2, with the key that sets them;
    /// `None` (the default) for none.
    fn context_tokens(&self) -> Option<Keyed<usize>> {
        None
    }
}

/// Configuration of a contrastive objective.
#[typetag::serde(tag = "type")]
pub trait ObjectiveConfig: fmt::Debug + Send + Sync {
    /// Builds the objective (with its learnable logit scale) on `device`.
    fn build(&self, device: &Device) -> Result<Component<dyn ContrastiveObjective>>;

    /// Data-parallel training: whether the loss takes every replica's embeddings as negatives
    /// (`[objective] gather`); `None` leaves it to the trainer (on when there are several
    /// replicas). Objectives whose loss is a mean over the rows of the batch's similarity matrix
    /// give the single-device loss of the global batch when gathered.
    fn gather(&self) -> Option<bool> {
        None
    }
}

/// Which part of a data set to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training images and captions.
    Train,
    /// Validation images and captions.
    Valid,
    /// Held-out test images (zero-shot evaluation).
    Test,
}

/// Configuration of an image–text data set.
#[typetag::serde(tag = "type")]
pub trait DatasetConfig: fmt::Debug + Send + Sync {
    /// Opens one split of the data set.
    fn build(&self, split: Split) -> Result<Box<dyn ImageTextDataset>>;

    /// The shape of its images as the model receives them, from the config alone; `None` (the
    /// default) skips the vision-encoder contract.
    fn image_shape(&self) -> Result<Option<ImageShape>> {
        Ok(None)
    }

    /// How one image becomes the model input at inference
    /// ([`Predictor`](crate::inference::Predictor)): this data set's evaluation-time reading,
    /// never augmented. `None` (the default) declares none; inference then takes only images
    /// already prepared as `[C, S, S]` and refuses files, bytes and decoded pixels, naming the
    /// data set.
    fn preprocessor(&self) -> Result<Option<Box<dyn ImagePreprocessor>>> {
        Ok(None)
    }
}

/// An error while turning a config value into a typed config, with the dotted path inside the
/// value (empty at the top).
#[derive(Debug, Clone)]
pub struct FieldError {
    /// Dotted path of the offending key relative to the section (e.g. `depth`).
    pub path: String,
    /// What was wrong, as serde reports it.
    pub message: String,
}

/// Deserialises `value` into `C`, tracking the path of any error.
pub fn parse_value<C: DeserializeOwned>(value: toml::Value) -> std::result::Result<C, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        FieldError {
            path: if path == "." { String::new() } else { path },
            message: error.into_inner().to_string(),
        }
    })
}

/// Parser from a config section (without its `type` key) to a typed config trait object.
#[derive(Clone, Copy)]
pub enum ParseFn {
    /// Parses a [`VisionEncoderConfig`].
    Vision(fn(toml::Value) -> std::result::Result<Box<dyn VisionEncoderConfig>, FieldError>),
    /// Parses a [`TextEncoderConfig`].
    Text(fn(toml::Value) -> std::result::Result<Box<dyn TextEncoderConfig>, FieldError>),
    /// Parses a [`PeftConfig`].
    Peft(fn(toml::Value) -> std::result::Result<Box<dyn PeftConfig>, FieldError>),
    /// Parses a [`PromptLearnerConfig`].
    Prompt(fn(toml::Value) -> std::result::Result<Box<dyn PromptLearnerConfig>, FieldError>),
    /// Parses an [`ObjectiveConfig`].
    Objective(fn(toml::Value) -> std::result::Result<Box<dyn ObjectiveConfig>, FieldError>),
    /// Parses a [`DatasetConfig`].
    Dataset(fn(toml::Value) -> std::result::Result<Box<dyn DatasetConfig>, FieldError>),
}

impl ParseFn {
    /// The component kind this parser produces.
    pub fn kind(&self) -> ComponentKind {
        match self {
            ParseFn::Vision(_) => ComponentKind::Vision,
            ParseFn::Text(_) => ComponentKind::Text,
            ParseFn::Peft(_) => ComponentKind::Peft,
            ParseFn::Prompt(_) => ComponentKind::Prompt,
            ParseFn::Objective(_) => ComponentKind::Objective,
            ParseFn::Dataset(_) => ComponentKind::Dataset,
        }
    }
}

/// A registry entry's parser of one config type: a TOML section to the boxed config.
pub type ConfigParser<C> = fn(toml::Value) -> std::result::Result<Box<C>, FieldError>;

/// A config trait object type that a registry entry can produce (implemented for
/// `dyn VisionEncoderConfig`, `dyn TextEncoderConfig`, …).
pub trait ComponentConfig {
    /// The component kind whose section holds this config.
    const KIND: ComponentKind;
    /// The parser inside `parse` if it produces this config type.
    fn parser(parse: ParseFn) -> Option<ConfigParser<Self>>;
}

macro_rules! component_config {
    ($($variant:ident => $config:ident),* $(,)?) => {$(
        impl ComponentConfig for dyn $config {
            const KIND: ComponentKind = ComponentKind::$variant;
            fn parser(parse: ParseFn) -> Option<ConfigParser<Self>> {
                match parse {
                    ParseFn::$variant(parser) => Some(parser),
                    _ => None,
                }
            }
        }
    )*};
}

component_config!(
    Vision => VisionEncoderConfig,
    Text => TextEncoderConfig,
    Peft => PeftConfig,
    Prompt => PromptLearnerConfig,
    Objective => ObjectiveConfig,
    Dataset => DatasetConfig,
);

/// One registered component: name, summary, where it comes from, and its config parser.
#[derive(Clone)]
pub struct Registration {
    /// Name used as `type = "…"` in config sections.
    pub name: &'static str,
    /// One-line description for `cleft plugins list`.
    pub summary: &'static str,
    /// Crate or library that provides it.
    pub origin: &'static str,
    /// Parser for its config section.
    pub parse: ParseFn,
    /// Pretrained checkpoints it claims, by HF `config.json` `model_type` (`"bert"`, a prefix
    /// such as `"dinov2"` matching `dinov2_with_registers` too) or GGUF architecture
    /// (`"gguf:llama"`). A claiming component's config loads such a checkpoint from
    /// `{ weights = "<path>" }` alone (vision: plus `input_size`); `cleft inspect`-style tools
    /// pick the encoder through [`Registry::claimant`].
    pub claims: &'static [&'static str],
}

impl Registration {
    /// The component kind.
    pub fn kind(&self) -> ComponentKind {
        self.parse.kind()
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("kind", &self.kind())
            .field("name", &self.name)
            .field("origin", &self.origin)
            .finish()
    }
}

inventory::collect!(Registration);

/// Registers a built-in component at link time.
///
/// ```ignore
/// cleft_core::register_component!(Vision, "vit", "DINOv2-style ViT", VitConfig);
/// ```
/// `VitConfig` must implement `serde::Deserialize` (with `deny_unknown_fields` and defaults for
/// every field) and the kind's config trait (here `VisionEncoderConfig`, via `#[typetag::serde]`).
/// An optional last argument `claims = ["dinov2"]` sets [`Registration::claims`].
#[macro_export]
macro_rules! register_component {
    ($kind:ident, $name:literal, $summary:literal, $config:ty $(, claims = [$($claim:literal),* $(,)?])?) => {
        $crate::inventory::submit! {
            $crate::registry::Registration {
                name: $name,
                summary: $summary,
                origin: env!("CARGO_PKG_NAME"),
                parse: $crate::registry::ParseFn::$kind(|value| {
                    $crate::registry::parse_value::<$config>(value).map(|config| Box::new(config) as _)
                }),
                claims: &[$($($claim),*)?],
            }
        }
    };
}

/// A loaded plugin library: its path and the components it added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedPlugin {
    /// Canonical path of the library.
    pub path: PathBuf,
    /// The components it registered, as `kind \`name\``.
    pub components: Vec<String>,
}

/// All registered components: the link-time built-ins plus any added at run time.
#[derive(Debug, Clone)]
pub struct Registry {
    entries: BTreeMap<(ComponentKind, &'static str), Registration>,
    plugins: Vec<LoadedPlugin>,
}

impl Registry {
    /// The built-in components linked into this binary.
    pub fn builtin() -> Self {
        let mut entries = BTreeMap::new();
        for registration in inventory::iter::<Registration> {
            entries.insert(
                (registration.kind(), registration.name),
                registration.clone(),
            );
        }
        Self {
            entries,
            plugins: Vec::new(),
        }
    }

    /// Adds a component (used by dynamic plugins). Errors if the kind and name are taken.
    pub fn add(&mut self, registration: Registration) -> Result<()> {
        let key = (registration.kind(), registration.name);
        if let Some(existing) = self.entries.get(&key) {
            return Err(CleftError::Invalid(format!(
                "{} `{}` from {} is already registered by {}",
                key.0, key.1, registration.origin, existing.origin
            )));
        }
        self.entries.insert(key, registration);
        Ok(())
    }

    /// Looks up a component; an unknown name lists the registered names of that kind.
    pub fn get(&self, kind: ComponentKind, name: &str) -> Result<&Registration> {
        self.entries
            .iter()
            .find(|((k, n), _)| *k == kind && *n == name)
            .map(|(_, registration)| registration)
            .ok_or_else(|| CleftError::UnknownComponent {
                kind: kind.to_string(),
                name: name.to_string(),
                known: self.names(kind).into_iter().map(str::to_string).collect(),
            })
    }

    /// Registered names of one kind, sorted.
    pub fn names(&self, kind: ComponentKind) -> Vec<&'static str> {
        self.entries
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, name)| *name)
            .collect()
    }

    /// The component of `kind` that claims a checkpoint of `model_type` (HF `config.json`) or
    /// `gguf:<architecture>`: an exact claim first, else the longest claim that is a prefix.
    /// Errors list what each component of the kind claims.
    pub fn claimant(&self, kind: ComponentKind, model_type: &str) -> Result<&Registration> {
        let of_kind = || self.entries.values().filter(move |r| r.kind() == kind);
        let exact = of_kind().find(|r| r.claims.contains(&model_type));
        let prefix = || {
            of_kind()
                .flat_map(|r| r.claims.iter().map(move |claim| (*claim, r)))
                .filter(|(claim, _)| model_type.starts_with(claim))
                .max_by_key(|(claim, _)| claim.len())
                .map(|(_, r)| r)
        };
        exact.or_else(prefix).ok_or_else(|| {
            let claims: Vec<String> = of_kind()
                .filter(|r| !r.claims.is_empty())
                .map(|r| format!("{} ({})", r.name, r.claims.join(", ")))
                .collect();
            CleftError::Invalid(format!(
                "no registered {kind} component claims checkpoints of model_type `{model_type}`; \
                 claims: {}",
                claims.join("; ")
            ))
        })
    }

    /// Every registration, ordered by kind then name.
    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.entries.values()
    }

    /// Records a plugin library whose components were added (the plugin host calls it once per
    /// library, after its registration entry succeeded): what [`Registry::has_plugin`] and
    /// config loading (a config's `plugins` must be loaded) check.
    pub fn record_plugin(&mut self, plugin: LoadedPlugin) {
        if !self.plugins.iter().any(|p| p.path == plugin.path) {
            self.plugins.push(plugin);
        }
    }

    /// Whether the library at `path` is loaded into this registry.
    pub fn has_plugin(&self, path: &Path) -> bool {
        path.canonicalize()
            .is_ok_and(|canonical| self.plugins.iter().any(|p| p.path == canonical))
    }

    /// The plugin libraries loaded into this registry, in load order.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }
}
