//! The `cleft` binary as a user runs it.

use std::process::{Command, Output};

fn cleft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleft"))
        .args(args)
        .output()
        .expect("cleft runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_config(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cleft-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

const TINY: &str = include_str!("../../configs/tiny/cleft.toml");

#[test]
fn plugins_list_shows_the_builtins_with_summaries() {
    let output = cleft(&["plugins", "list"]);
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    for (kind, name) in [
        ("vision", "vit"),
        ("text", "gpt2"),
        ("peft", "lora"),
        ("objective", "clip"),
        ("data", "synthetic-cxr"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().take(2).eq([kind, name]))
            .unwrap_or_else(|| panic!("no {kind} {name} in:\n{stdout}"));
        assert!(
            line.split_whitespace().count() > 4,
            "summary missing: {line}"
        );
    }
}

#[test]
fn config_check_accepts_the_tiny_config_and_prints_it_resolved() {
    let path = temp_config("ok.toml", TINY);
    let output = cleft(&["config", "check", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("layer_norm_eps"),
        "defaults are filled in:\n{stdout}"
    );
}

#[test]
fn config_check_names_a_typod_key() {
    let path = temp_config(
        "typo.toml",
        &TINY.replace("num_hidden_layers = 3", "num_hiden_layers = 3"),
    );
    let output = cleft(&["config", "check", path.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("unknown key `vision.num_hiden_layers`"),
        "{stderr}"
    );
    assert!(stderr.contains("typo.toml:"), "{stderr}");
}

#[test]
fn config_check_lists_valid_names_for_an_unknown_type() {
    let path = temp_config(
        "type.toml",
        &TINY.replace("type = \"lora\"", "type = \"lorra\""),
    );
    let output = cleft(&["config", "check", path.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("unknown peft `lorra`; registered peft names: "),
        "{stderr}"
    );
    assert!(stderr.contains("lora"), "{stderr}");
}

#[test]
fn an_unavailable_device_is_a_clear_error() {
    let output = cleft(&["demo", "--device", "cuda:0", "--steps", "1"]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("cuda"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_short_demo_runs_end_to_end_and_writes_its_artefacts() {
    let dir = std::env::temp_dir().join(format!("cleft-cli-demo-{}", std::process::id()));
    let output = cleft(&["demo", "--steps", "5", "--output", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("zero-shot accuracy"));
    for file in [
        "config.toml",
        "metrics.jsonl",
        "model.safetensors",
        "zero_shot.json",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_in_bf16_runs_and_lowers_the_loss() {
    let dir = std::env::temp_dir().join(format!("cleft-cli-bf16-{}", std::process::id()));
    let config = TINY
        .replace("steps = 300", "steps = 30\nprecision = \"bf16\"")
        .replace("warmup_steps = 30", "warmup_steps = 3")
        .replace("test_size = 500", "test_size = 50");
    let path = temp_config("bf16.toml", &config);
    let output = Command::new(env!("CARGO_BIN_EXE_cleft"))
        .args([
            "train",
            "--config",
            path.to_str().unwrap(),
            "--output",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let losses: Vec<f64> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    assert!(mean(&losses[24..]) < mean(&losses[..6]), "{losses:?}");
    // bf16 losses carry 8 bits of mantissa: every value is a multiple of 2^-4 near 5.
    assert!(
        losses.iter().all(|l| (l * 64.0).fract() == 0.0),
        "not bf16: {losses:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn embed_text_picks_the_encoder_through_the_registry_and_names_unclaimed_types() {
    let dir = std::env::temp_dir().join(format!("cleft-cli-t5-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"model_type": "t5"}"#).unwrap();
    let output = cleft(&["embed-text", "--model", dir.to_str().unwrap(), "hello"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no registered text component claims checkpoints of model_type `t5`")
            && stderr.contains("bert (bert)")
            && stderr.contains("gpt2 (gpt2)"),
        "{stderr}"
    );
    let output = cleft(&["embed-image", "--model", dir.to_str().unwrap(), "x.png"]);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("vit (dinov2)"), "{stderr}");
}
