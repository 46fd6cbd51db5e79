//! Configuration: registry coverage, error messages, resolved-config round trip.

use cleft_core::ExperimentConfig;
use cleft_core::registry::{ComponentKind, LoadedPlugin};
use cleft_tests::{TINY_CONFIG, parse, registry};

const BASE: &str = r#"
[vision]
type = "vit"

[text]
type = "gpt2"

[objective]
type = "clip"

[data]
type = "synthetic-cxr"
"#;

#[test]
fn the_builtin_plugins_are_all_linked_and_registered() {
    let registry = registry();
    let expected: [(ComponentKind, &[&str]); 6] = [
        (ComponentKind::Vision, &["vit"]),
        (ComponentKind::Text, &["bert", "gpt2", "llama"]),
        (ComponentKind::Peft, &["lora"]),
        (ComponentKind::Prompt, &["context"]),
        (ComponentKind::Objective, &["clip", "convirt", "medclip"]),
        (ComponentKind::Dataset, &["synthetic-cxr"]),
    ];
    for (kind, names) in expected {
        let registered = registry.names(kind);
        for name in names {
            assert!(
                registered.contains(name),
                "{kind} `{name}` missing from {registered:?}"
            );
        }
    }
}

/// A minimal config with `name` as the component of `kind` and the defaults elsewhere; `extra`
/// is appended to that component's section.
fn minimal(kind: ComponentKind, name: &str, extra: &str) -> String {
    let defaults = [
        (ComponentKind::Vision, "vit"),
        (ComponentKind::Text, "gpt2"),
        (ComponentKind::Objective, "clip"),
        (ComponentKind::Dataset, "synthetic-cxr"),
        (ComponentKind::Peft, ""),
        (ComponentKind::Prompt, ""),
    ];
    let mut text = String::new();
    for (section_kind, default) in defaults {
        let chosen = if section_kind == kind { name } else { default };
        if !chosen.is_empty() {
            text += &format!("[{}]\ntype = \"{chosen}\"\n", section_kind.section());
            // Data sets read from files default to upstream's images (224 px, 3 channels).
            if section_kind == ComponentKind::Vision
                && kind == ComponentKind::Dataset
                && name != "synthetic-cxr"
            {
                text += "image_size = 224\npatch_size = 16\nnum_channels = 3\n";
            }
            if section_kind == kind {
                text += extra;
            }
        }
    }
    text
}

/// Guards against the linker dropping a plugin crate and against configs that cannot be written
/// minimally: every registered name deserialises from `type = "name"` alone, serialises back
/// under the same name, and rejects an unknown key naming its path.
#[test]
fn every_registered_name_deserialises_and_rejects_unknown_keys() {
    let registry = registry();
    let mut checked = 0;
    for entry in registry.iter() {
        let section = entry.kind().section();
        let config = parse(&minimal(entry.kind(), entry.name, ""))
            .unwrap_or_else(|e| panic!("{section} `{}`: {e}", entry.name));
        let resolved = config.to_toml().unwrap();
        assert!(
            resolved.contains(&format!("type = \"{}\"", entry.name)),
            "{resolved}"
        );

        let message = parse(&minimal(entry.kind(), entry.name, "not_a_field = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&format!("unknown key `{section}.not_a_field`")),
            "{message}"
        );
        checked += 1;
    }
    assert!(checked >= 5);
}

#[test]
fn a_typo_in_a_key_names_its_dotted_path_and_line() {
    let text = BASE.replace("type = \"vit\"", "type = \"vit\"\nhiden_size = 32");
    let message = parse(&text).unwrap_err().to_string();
    assert!(message.starts_with("test.toml:4:"), "{message}");
    assert!(
        message.contains("unknown key `vision.hiden_size`"),
        "{message}"
    );
    assert!(
        message.contains("hidden_size"),
        "lists the expected keys: {message}"
    );
}

#[test]
fn a_typo_in_a_core_section_names_its_path() {
    let text = format!("{BASE}\n[train]\nstep = 3\n");
    let message = parse(&text).unwrap_err().to_string();
    assert!(message.contains("unknown key `train.step`"), "{message}");
    assert!(message.contains("test.toml:15:"), "{message}");
}

#[test]
fn an_unknown_type_lists_the_registered_names() {
    let message = parse(&BASE.replace("\"clip\"", "\"clipp\""))
        .unwrap_err()
        .to_string();
    assert!(message.contains("unknown objective `clipp`"), "{message}");
    assert!(message.contains("clip"), "{message}");
    assert!(message.contains("test.toml:9:"), "{message}");
}

#[test]
fn a_bad_value_names_the_path_and_expected_form() {
    let message = parse(&BASE.replace("type = \"gpt2\"", "type = \"gpt2\"\nn_layer = \"two\""))
        .unwrap_err()
        .to_string();
    assert!(message.contains("`text.n_layer`"), "{message}");
    assert!(
        message.contains("expected usize") || message.contains("integer"),
        "{message}"
    );
}

#[test]
fn an_unknown_section_and_a_missing_section_are_reported() {
    let message = parse(&format!("{BASE}\n[trian]\n"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("unknown section `trian`"), "{message}");
    let message = parse(&BASE.replace("[data]\ntype = \"synthetic-cxr\"", ""))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("missing required section `[data]`"),
        "{message}"
    );
}

#[test]
fn the_resolved_config_reloads_to_the_same_config_and_model() {
    let config = parse(TINY_CONFIG).unwrap();
    let resolved = config.to_toml().unwrap();
    let reloaded = parse(&resolved).unwrap();
    assert_eq!(
        reloaded.to_toml().unwrap(),
        resolved,
        "resolving is idempotent"
    );

    let device = cleft_core::burn::prelude::Device::flex();
    use cleft_core::burn::module::Module;
    let a = cleft_core::model::ClipModel::build(&config, &device).unwrap();
    let b = cleft_core::model::ClipModel::build(&reloaded, &device).unwrap();
    assert_eq!(a.num_params(), b.num_params());
    assert_eq!(format!("{a}"), format!("{b}"), "same architecture");
}

/// Every shipped config (paper-size, baselines, tiny variants) parses and resolves.
#[test]
fn every_shipped_config_parses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut checked = 0;
    for dir in [root.join("paper"), root.join("tiny")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let config = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                config.to_toml().unwrap();
                checked += 1;
            }
        }
    }
    assert!(checked >= 10 + 9, "only {checked} configs found");
}

#[test]
fn checkpoints_are_claimed_through_the_registry_by_model_type() {
    use cleft_core::registry::ComponentKind::{Text, Vision};
    let registry = cleft_tests::registry();
    let claimant = |kind, model_type| registry.claimant(kind, model_type).map(|r| r.name);
    assert_eq!(claimant(Text, "bert").unwrap(), "bert");
    assert_eq!(claimant(Text, "gpt2").unwrap(), "gpt2");
    assert_eq!(claimant(Text, "gguf:llama").unwrap(), "llama");
    assert_eq!(claimant(Text, "qwen2").unwrap(), "llama");
    assert_eq!(claimant(Text, "mistral").unwrap(), "llama");
    assert_eq!(claimant(Text, "gemma3_text").unwrap(), "gemma3");
    // A prefix claim: transformers' DINOv2-with-registers checkpoints.
    assert_eq!(claimant(Vision, "dinov2_with_registers").unwrap(), "vit");
    assert_eq!(claimant(Vision, "vit").unwrap(), "hf-vit");
    // Kinds do not mix, and an unclaimed type lists every claim.
    let error = claimant(Vision, "bert").unwrap_err().to_string();
    assert!(
        error.contains("model_type `bert`") && error.contains("vit (dinov2)"),
        "{error}"
    );
    let error = claimant(Text, "t5").unwrap_err().to_string();
    assert!(
        error.contains("llama (llama, qwen2, mistral, gguf:llama, gguf:qwen2)"),
        "{error}"
    );
}

/// A config's `plugins` must be loaded before it parses: the registry is told of every library
/// the plugin host loads, and the parser asks it.
#[test]
fn a_config_whose_plugins_are_not_loaded_is_refused() {
    let dir = std::env::temp_dir().join(format!("cleft-config-plugins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let library = dir.join("libcleft_plugin_absent.so");
    std::fs::write(&library, b"").unwrap();
    let file = dir.join("cleft.toml");
    let text = format!("plugins = [\"libcleft_plugin_absent.so\"]\n{BASE}");
    std::fs::write(&file, &text).unwrap();
    assert_eq!(
        ExperimentConfig::listed_plugins(&file).unwrap(),
        std::slice::from_ref(&library)
    );

    let name = file.display().to_string();
    let mut registry = registry();
    let error = ExperimentConfig::parse(&text, &name, &registry)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("libcleft_plugin_absent.so is not loaded"),
        "{error}"
    );

    registry.record_plugin(LoadedPlugin {
        path: library.canonicalize().unwrap(),
        components: Vec::new(),
    });
    let config = ExperimentConfig::parse(&text, &name, &registry).unwrap();
    assert_eq!(config.plugins, [library]);
    std::fs::remove_dir_all(&dir).unwrap();
}
