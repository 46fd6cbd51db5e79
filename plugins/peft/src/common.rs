//! Pieces shared by the tuners: hook access, module matching, `modules_to_save`, freezing.

use burn::module::Module;
use burn::prelude::*;
use cleft_core::peft::{PeftHooks, named_params, set_trainable_by_path};
use cleft_core::{CleftError, Component, TextEncoder};

use crate::targets::{TargetModules, closest};

/// The encoder's PEFT hooks, or an error naming the method that needs them.
pub(crate) fn hooks<'a>(
    encoder: &'a Component<dyn TextEncoder>,
    method: &str,
) -> Result<&'a dyn PeftHooks, CleftError> {
    encoder.peft_hooks().ok_or_else(|| incompatible(method))
}

/// Mutable PEFT hooks, or an error naming the method.
pub(crate) fn hooks_mut<'a>(
    encoder: &'a mut Component<dyn TextEncoder>,
    method: &str,
) -> Result<&'a mut dyn PeftHooks, CleftError> {
    encoder.peft_hooks_mut().ok_or_else(|| incompatible(method))
}

fn incompatible(method: &str) -> CleftError {
    CleftError::Invalid(format!(
        "peft.type = \"{method}\" cannot be applied: this text encoder offers no PEFT hooks \
         (supported: gpt2)"
    ))
}

/// The device the encoder's parameters live (or will be initialised) on.
pub(crate) fn device_of(encoder: &Component<dyn TextEncoder>) -> Result<Device, CleftError> {
    encoder
        .devices()
        .into_iter()
        .next()
        .ok_or_else(|| CleftError::Invalid("the text encoder has no parameters to adapt".into()))
}

/// Whether `module` (a module path) is selected by `targets` (HF PEFT rules: a regex must match
/// the whole path; a name matches the path or its `.name` suffix).
pub(crate) fn module_matches(targets: &TargetModules, module: &str) -> bool {
    match targets {
        TargetModules::Regex(pattern) => regex::Regex::new(&format!("^(?:{pattern})$"))
            .map(|regex| regex.is_match(module))
            .unwrap_or(false),
        TargetModules::Names(names) => names
            .iter()
            .any(|name| module == name || module.ends_with(&format!(".{name}"))),
    }
}

/// Whether the parameter at `path` lies inside a module listed in `modules_to_save`.
pub(crate) fn in_modules_to_save(modules_to_save: &[String], path: &str) -> bool {
    let segments: Vec<&str> = path.split('.').collect();
    (1..segments.len()).any(|end| {
        let module = segments[..end].join(".");
        modules_to_save
            .iter()
            .any(|name| module == *name || module.ends_with(&format!(".{name}")))
    })
}

/// Checks that every `modules_to_save` entry names a module of `encoder`.
pub(crate) fn check_modules_to_save(
    encoder: &Component<dyn TextEncoder>,
    modules_to_save: &[String],
) -> Result<(), CleftError> {
    let params = named_params(encoder);
    for name in modules_to_save {
        let single = [name.clone()];
        if !params.iter().any(|p| in_modules_to_save(&single, &p.path)) {
            let modules: Vec<String> = params
                .iter()
                .filter_map(|p| {
                    p.path
                        .rsplit_once('.')
                        .map(|(module, _)| module.to_string())
                })
                .collect();
            return Err(CleftError::Invalid(format!(
                "peft.modules_to_save: `{name}` matches no module; closest: {}",
                closest(name, &modules).join(", ")
            )));
        }
    }
    Ok(())
}

/// Freezes every parameter of `encoder` except those `trainable` selects.
pub(crate) fn freeze_except(
    encoder: Component<dyn TextEncoder>,
    trainable: &dyn Fn(&str) -> bool,
) -> Component<dyn TextEncoder> {
    set_trainable_by_path(encoder, trainable)
}

/// HF name of a burn parameter path: LayerNorm `gamma`/`beta` → `weight`/`bias`.
pub(crate) fn hf_param_name(path: &str) -> String {
    match path.rsplit_once('.') {
        Some((module, "gamma")) => format!("{module}.weight"),
        Some((module, "beta")) => format!("{module}.bias"),
        _ => path.to_string(),
    }
}

/// Whether `path` is the `weight` of one of the hooks' linear layers.
pub(crate) fn is_linear_weight(hooks: &dyn PeftHooks, path: &str) -> bool {
    path.strip_suffix(".weight")
        .is_some_and(|module| hooks.linear_paths().iter().any(|m| m == module))
}

/// Field `key` of a PEFT `adapter_config.json` value (`None` when absent or null).
pub(crate) fn json_field<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    key: &str,
) -> Result<Option<T>, CleftError> {
    match value.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| CleftError::Invalid(format!("adapter_config.json: `{key}`: {e}"))),
    }
}
