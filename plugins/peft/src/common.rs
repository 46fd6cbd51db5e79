//! Pieces shared by the tuners, public for PEFT-method plugins: hook access, module matching,
//! `modules_to_save`, freezing, and the HF PEFT file layout of a layer method ([`layer_specs`]).

use burn::module::Module;
use burn::prelude::*;
use cleft_core::ErrorKind;
use cleft_core::peft::{PeftHooks, named_params, set_trainable_by_path};
use cleft_core::{CleftError, Component, TextEncoder};

use crate::files::{MODEL_PREFIX, TensorSpec};
use crate::targets::{TargetModules, closest};

/// The encoder's PEFT hooks, or an error naming the method that needs them.
pub fn hooks<'a>(
    encoder: &'a Component<dyn TextEncoder>,
    method: &str,
) -> Result<&'a dyn PeftHooks, CleftError> {
    encoder.peft_hooks().ok_or_else(|| incompatible(method))
}

/// Mutable PEFT hooks, or an error naming the method.
pub fn hooks_mut<'a>(
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
pub fn device_of(encoder: &Component<dyn TextEncoder>) -> Result<Device, CleftError> {
    encoder
        .devices()
        .into_iter()
        .next()
        .ok_or_else(|| CleftError::Invalid("the text encoder has no parameters to adapt".into()))
}

/// Whether `module` (a module path) is selected by `targets` (HF PEFT rules: a regex must match
/// the whole path; a name matches the path or its `.name` suffix).
pub fn module_matches(targets: &TargetModules, module: &str) -> bool {
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
pub fn in_modules_to_save(modules_to_save: &[String], path: &str) -> bool {
    let segments: Vec<&str> = path.split('.').collect();
    (1..segments.len()).any(|end| {
        let module = segments[..end].join(".");
        modules_to_save
            .iter()
            .any(|name| module == *name || module.ends_with(&format!(".{name}")))
    })
}

/// Checks that every `modules_to_save` entry names a module of `encoder`.
pub fn check_modules_to_save(
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
pub fn freeze_except(
    encoder: Component<dyn TextEncoder>,
    trainable: &dyn Fn(&str) -> bool,
) -> Component<dyn TextEncoder> {
    set_trainable_by_path(encoder, trainable)
}

/// HF name of a burn parameter path: LayerNorm `gamma`/`beta` → `weight`/`bias`.
pub fn hf_param_name(path: &str) -> String {
    match path.rsplit_once('.') {
        Some((module, "gamma")) => format!("{module}.weight"),
        Some((module, "beta")) => format!("{module}.bias"),
        _ => path.to_string(),
    }
}

/// Whether `path` is the `weight` of one of the hooks' linear layers.
pub fn is_linear_weight(hooks: &dyn PeftHooks, path: &str) -> bool {
    path.strip_suffix(".weight")
        .is_some_and(|module| hooks.linear_paths().iter().any(|m| m == module))
}

/// Field `key` of a PEFT `adapter_config.json` value (`None` when absent or null).
pub fn json_field<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    key: &str,
) -> Result<Option<T>, CleftError> {
    match value.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
            CleftError::caused(
                ErrorKind::Adapter,
                format!("adapter_config.json: `{key}`"),
                e,
            )
        }),
    }
}

/// A method's file layout for `(target module, parameter name, shape)`; `None` for names that are
/// not the method's own.
pub type StoredFn<'a> = &'a dyn Fn(&str, &str, &[usize]) -> Option<cleft_core::peft::StoredTensor>;

/// File layout of every trainable parameter of an encoder whose `targets` layers carry an
/// adapter method: a parameter `<target>.<name>` is stored as `stored(target, name, shape)` says
/// (the method's [`LinearAdapter::stored_as`](cleft_core::peft::LinearAdapter::stored_as)); a
/// target's `bias` as PEFT's `<target>.base_layer.bias`; anything else trainable
/// (`modules_to_save`, `bias = "all"`) under its HF name, linear weights transposed unless the
/// encoder stores them `[in, out]`.
pub fn layer_specs(
    encoder: &Component<dyn TextEncoder>,
    method: &str,
    targets: &[String],
    is_trainable: &dyn Fn(&str) -> bool,
    stored: StoredFn<'_>,
) -> Result<Vec<TensorSpec>, CleftError> {
    let hooks = hooks(encoder, method)?;
    let fan_in_fan_out = hooks.fan_in_fan_out();
    let mut specs = Vec::new();
    for param in named_params(encoder) {
        let path = param.path.as_str();
        if !is_trainable(path) {
            continue;
        }
        let in_target = targets.iter().find_map(|target| {
            path.strip_prefix(target.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
                .map(|name| (target, name))
        });
        let from_method = in_target
            .and_then(|(target, name)| Some((target, stored(target, name, &param.shape)?)));
        let spec = match (from_method, in_target) {
            (Some((target, layout)), _) => TensorSpec {
                path: param.path.clone(),
                key: format!("{MODEL_PREFIX}{target}.{}", layout.suffix),
                transpose: layout.transpose,
                file_shape: layout.file_shape,
            },
            (None, Some((target, "bias"))) => TensorSpec {
                path: param.path.clone(),
                key: format!("{MODEL_PREFIX}{target}.base_layer.bias"),
                transpose: false,
                file_shape: param.shape.clone(),
            },
            _ => {
                let transpose = is_linear_weight(hooks, path) && !fan_in_fan_out;
                let mut file_shape = param.shape.clone();
                if transpose {
                    file_shape.reverse();
                }
                TensorSpec {
                    path: param.path.clone(),
                    key: format!("{MODEL_PREFIX}{}", hf_param_name(path)),
                    transpose,
                    file_shape,
                }
            }
        };
        specs.push(spec);
    }
    Ok(specs)
}
