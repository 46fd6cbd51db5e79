//! Reading a config file: TOML to [`ExperimentConfig`] through the registry, with errors that
//! name the file, line and dotted key, then the cross-component contracts.

use std::path::{Path, PathBuf};

use super::ExperimentConfig;
use crate::error::{CleftError, Result};
use crate::registry::{ComponentConfig, FieldError, Registry, parse_value};

const SECTIONS: [&str; 11] = [
    "vision",
    "text",
    "peft",
    "prompt",
    "objective",
    "projection",
    "data",
    "train",
    "prompt_train",
    "eval",
    "output",
];

/// The `plugins` array of a config file `file`, each path made absolute against the file's
/// directory.
fn plugin_paths(file: &Path, value: toml::Value) -> std::result::Result<Vec<PathBuf>, String> {
    let toml::Value::Array(items) = value else {
        return Err("`plugins` must be an array of library paths".to_string());
    };
    let base = file.parent().unwrap_or(Path::new(""));
    items
        .into_iter()
        .map(|item| match item {
            toml::Value::String(path) => Ok(base.join(path)),
            other => Err(format!(
                "`plugins` must hold library paths (strings), found {}",
                other.type_str()
            )),
        })
        .collect()
}

/// Source text being parsed, for error locations.
struct Source<'a> {
    name: &'a str,
    text: &'a str,
}

impl Source<'_> {
    /// `file:line: message` for the key at `path` (or the closest existing ancestor).
    fn error(&self, path: &[&str], message: impl std::fmt::Display) -> CleftError {
        match key_line(self.text, path) {
            Some(line) => CleftError::Config(format!("{}:{line}: {message}", self.name)),
            None => CleftError::Config(format!("{}: {message}", self.name)),
        }
    }
}

/// 1-based line of the key at `path`, or of its nearest existing ancestor.
fn key_line(text: &str, path: &[&str]) -> Option<usize> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut span = None;
    for key in path {
        let Some((found_key, value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *key)
        else {
            break;
        };
        span = Some(found_key.span());
        match value.get_ref() {
            toml::de::DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    let offset = span?.start;
    Some(text[..offset].matches('\n').count() + 1)
}

impl ExperimentConfig {
    /// Reads and validates a config file against `registry`.
    pub fn load(path: &Path, registry: &Registry) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| CleftError::io(path, e))?;
        Self::parse(&text, &path.display().to_string(), registry)
    }

    /// The shared-library plugins a config file lists under `plugins = […]`, each path made
    /// absolute against the file's directory; a file without the key lists none.
    pub fn listed_plugins(file: &Path) -> Result<Vec<PathBuf>> {
        let text = std::fs::read_to_string(file).map_err(|e| CleftError::io(file, e))?;
        let name = file.display().to_string();
        let mut table: toml::Table = toml::from_str(&text)
            .map_err(|error| CleftError::Config(format!("{name}: {}", error.message())))?;
        let Some(value) = table.remove("plugins") else {
            return Ok(Vec::new());
        };
        let source = Source {
            name: &name,
            text: &text,
        };
        plugin_paths(file, value).map_err(|message| source.error(&["plugins"], message))
    }

    /// Parses config text; `name` is used in error messages (usually the file path).
    pub fn parse(text: &str, name: &str, registry: &Registry) -> Result<Self> {
        let source = Source { name, text };
        let mut table: toml::Table = toml::from_str(text).map_err(|error| {
            let line = error
                .span()
                .map(|span| text[..span.start].matches('\n').count() + 1);
            let message = error.message().to_string();
            match line {
                Some(line) => CleftError::Config(format!("{name}:{line}: {message}")),
                None => CleftError::Config(format!("{name}: {message}")),
            }
        })?;
        let plugins = match table.remove("plugins") {
            Some(value) => {
                let plugins = plugin_paths(Path::new(name), value)
                    .map_err(|message| source.error(&["plugins"], message))?;
                for plugin in &plugins {
                    if !registry.has_plugin(plugin) {
                        return Err(source.error(
                            &["plugins"],
                            format!(
                                "plugin {} is not loaded; load the config's plugins first \
                                 (`PluginHost::load_config_plugins` of cleft-plugin-host; the `cleft` command does)",
                                plugin.display()
                            ),
                        ));
                    }
                }
                plugins
            }
            None => Vec::new(),
        };
        if let Some(unknown) = table.keys().find(|key| !SECTIONS.contains(&key.as_str())) {
            return Err(source.error(
                &[unknown],
                format!(
                    "unknown section `{unknown}`; expected one of: {}",
                    SECTIONS.join(", ")
                ),
            ));
        }
        let mut take = |section: &str| table.remove(section);
        let required = |section: &str, value: Option<toml::Value>| {
            value
                .ok_or_else(|| source.error(&[], format!("missing required section `[{section}]`")))
        };
        let (vision, text_section, peft, prompt) =
            (take("vision"), take("text"), take("peft"), take("prompt"));
        let (objective, data) = (take("objective"), take("data"));
        let [projection, train, prompt_train, eval, output] =
            ["projection", "train", "prompt_train", "eval", "output"].map(take);
        let config = Self {
            plugins,
            vision: component(&source, registry, required("vision", vision)?)?,
            text: component(&source, registry, required("text", text_section)?)?,
            peft: peft
                .map(|value| component(&source, registry, value))
                .transpose()?,
            prompt: prompt
                .map(|value| component(&source, registry, value))
                .transpose()?,
            objective: component(&source, registry, required("objective", objective)?)?,
            data: component(&source, registry, required("data", data)?)?,
            projection: plain(&source, "projection", projection)?,
            train: plain(&source, "train", train)?,
            prompt_train: plain(&source, "prompt_train", prompt_train)?,
            eval: plain(&source, "eval", eval)?,
            output: plain(&source, "output", output)?,
        };
        config.check_contracts().map_err(|error| match error {
            CleftError::Config(message) | CleftError::Invalid(message) => {
                CleftError::Config(format!("{name}: {message}"))
            }
            other => other,
        })?;
        Ok(config)
    }

    /// Checks the cross-component [contracts](crate::contract) (image shape, text positions,
    /// projection); `parse` and `load` run it, so a config that loads is consistent.
    pub fn check_contracts(&self) -> Result<()> {
        crate::contract::check(self)
    }

    /// The fully resolved configuration as TOML (every default filled in).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| {
            CleftError::caused(
                crate::error::ErrorKind::Config,
                "cannot serialise the resolved config",
                e,
            )
        })
    }
}

fn field_error(source: &Source, section: &str, error: FieldError) -> CleftError {
    let mut path = vec![section];
    path.extend(error.path.split('.').filter(|part| !part.is_empty()));
    // serde reports an unknown key at its parent; name the key itself.
    let unknown = error
        .message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(key, _)| key);
    if let Some(key) = unknown {
        if path.last() != Some(&key) {
            path.push(key);
        }
        let dotted = path.join(".");
        let expected = error
            .message
            .split_once(", ")
            .map(|(_, rest)| rest)
            .unwrap_or("");
        return source.error(&path, format!("unknown key `{dotted}`; {expected}"));
    }
    let dotted = path.join(".");
    source.error(
        &path,
        format!("bad value for `{dotted}`: {}", error.message),
    )
}

fn plain<C: serde::de::DeserializeOwned + Default>(
    source: &Source,
    section: &str,
    value: Option<toml::Value>,
) -> Result<C> {
    match value {
        None => Ok(C::default()),
        Some(value) => parse_value(value).map_err(|error| field_error(source, section, error)),
    }
}

fn component<C: ComponentConfig + ?Sized>(
    source: &Source,
    registry: &Registry,
    value: toml::Value,
) -> Result<Box<C>> {
    let kind = C::KIND;
    let section = kind.section();
    let toml::Value::Table(mut table) = value else {
        return Err(source.error(
            &[section],
            format!("`{section}` must be a table (`[{section}]`)"),
        ));
    };
    let name = match table.remove("type") {
        Some(toml::Value::String(name)) => name,
        Some(_) => {
            return Err(source.error(
                &[section, "type"],
                format!("`{section}.type` must be a string"),
            ));
        }
        None => {
            return Err(source.error(
                &[section],
                format!(
                    "section `[{section}]` needs `type = \"…\"`; registered {section} names: {}",
                    registry.names(kind).join(", ")
                ),
            ));
        }
    };
    let registration = registry
        .get(kind, &name)
        .map_err(|error| source.error(&[section, "type"], error))?;
    let parse = C::parser(registration.parse)
        .expect("registry invariant: entries are keyed by the kind of their parser");
    parse(toml::Value::Table(table)).map_err(|error| field_error(source, section, error))
}
