//! HF-PEFT-style target matching on module paths, with helpful errors.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use cleft_core::CleftError;
use cleft_core::ErrorKind;
use serde::{Deserialize, Serialize};

/// Which modules an adapter targets, as in HF PEFT's `target_modules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// A regular expression that must match a whole module path.
    Regex(String),
    /// Module names: an entry matches a path equal to it or ending in `.entry`.
    Names(Vec<String>),
}

struct LinearWeights {
    path: Vec<String>,
    modules: Vec<String>,
}

impl ModuleVisitor for LinearWeights {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
        if D == 2 && self.path.last().is_some_and(|name| name == "weight") {
            self.modules
                .push(self.path[..self.path.len() - 1].join("."));
        }
    }
}

/// Paths of the modules of `module` that own a 2-D `weight` (linear-like layers), in visit order.
pub fn module_paths<M: Module>(module: &M) -> Vec<String> {
    let mut visitor = LinearWeights {
        path: Vec::new(),
        modules: Vec::new(),
    };
    module.visit(&mut visitor);
    visitor.modules
}

/// Up to three module names or paths closest (by edit distance) to `pattern`.
pub fn closest(pattern: &str, modules: &[String]) -> Vec<String> {
    let mut names: Vec<&str> = modules
        .iter()
        .map(|m| m.rsplit('.').next().unwrap_or(m))
        .collect();
    names.extend(modules.iter().map(String::as_str));
    names.sort_unstable();
    names.dedup();
    names.sort_by_key(|name| strsim::levenshtein(pattern, name));
    names.into_iter().take(3).map(str::to_string).collect()
}

/// Resolves `targets` against `modules`; an entry (or regex) matching nothing is an error that
/// names it and suggests the closest module names.
pub fn resolve_targets(
    targets: &TargetModules,
    modules: &[String],
) -> Result<Vec<String>, CleftError> {
    let matched: Vec<String> = match targets {
        TargetModules::Regex(pattern) => {
            let regex = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                CleftError::caused(
                    ErrorKind::Config,
                    format!("peft.target_modules: `{pattern}` is not a valid regex"),
                    e,
                )
            })?;
            let matched: Vec<String> = modules
                .iter()
                .filter(|m| regex.is_match(m))
                .cloned()
                .collect();
            if matched.is_empty() {
                return Err(CleftError::TargetNotFound {
                    pattern: pattern.clone(),
                    closest: closest(pattern, modules),
                });
            }
            matched
        }
        TargetModules::Names(names) => {
            for name in names {
                let suffix = format!(".{name}");
                if !modules.iter().any(|m| m == name || m.ends_with(&suffix)) {
                    return Err(CleftError::TargetNotFound {
                        pattern: name.clone(),
                        closest: closest(name, modules),
                    });
                }
            }
            modules
                .iter()
                .filter(|m| {
                    names
                        .iter()
                        .any(|n| *m == n || m.ends_with(&format!(".{n}")))
                })
                .cloned()
                .collect()
        }
    };
    Ok(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules() -> Vec<String> {
        [
            "h.0.attn.c_attn",
            "h.0.attn.c_proj",
            "h.0.mlp.c_fc",
            "h.0.mlp.c_proj",
            "h.1.attn.c_attn",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn names_match_exactly_or_as_suffix() {
        let names = TargetModules::Names(vec!["c_attn".into()]);
        assert_eq!(
            resolve_targets(&names, &modules()).unwrap(),
            ["h.0.attn.c_attn", "h.1.attn.c_attn"]
        );
        let full = TargetModules::Names(vec!["h.0.mlp.c_proj".into()]);
        assert_eq!(
            resolve_targets(&full, &modules()).unwrap(),
            ["h.0.mlp.c_proj"]
        );
    }

    #[test]
    fn regex_must_match_the_whole_path() {
        let regex = TargetModules::Regex(r"h\.\d+\.attn\.c_(attn|proj)".into());
        assert_eq!(resolve_targets(&regex, &modules()).unwrap().len(), 3);
        let partial = TargetModules::Regex("c_attn".into());
        assert!(resolve_targets(&partial, &modules()).is_err());
    }

    #[test]
    fn a_typo_names_itself_and_suggests_the_real_module() {
        let typo = TargetModules::Names(vec!["c_atn".into()]);
        let message = resolve_targets(&typo, &modules()).unwrap_err().to_string();
        assert!(message.contains("`c_atn`"), "{message}");
        assert!(message.contains("c_attn"), "{message}");
    }
}
