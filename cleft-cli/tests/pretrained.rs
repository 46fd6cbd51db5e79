//! `cleft inspect`, `cleft embed-text`, `cleft embed-image` on the real offline assets (run
//! `tools/fetch-assets.sh` first).

use std::path::PathBuf;
use std::process::{Command, Output};

use cleft_core::weights::{SafetensorsCheckpoint, TensorSource};
use cleft_testing::require_asset;

fn cleft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleft"))
        .args(args)
        .output()
        .expect("cleft runs")
}

fn asset(relative: &str) -> String {
    require_asset(relative).display().to_string()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn inspect_reports_architecture_parameters_and_dtype() {
    let minilm = stdout(&cleft(&["inspect", &asset("minilm")]));
    assert!(minilm.contains("architecture: BertModel"), "{minilm}");
    assert!(minilm.contains("parameters:   22,713,216"), "{minilm}");
    assert!(minilm.contains("F32 (103 tensors)"), "{minilm}");
    let gguf = stdout(&cleft(&[
        "inspect",
        &asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    ]));
    assert!(gguf.contains("architecture: llama"), "{gguf}");
    assert!(gguf.contains("parameters:   134,515,008"), "{gguf}");
    assert!(gguf.contains("Q4_1"), "{gguf}");
}

#[test]
fn embed_text_prints_one_json_embedding_per_text() {
    let output = stdout(&cleft(&[
        "embed-text",
        "--model",
        &asset("minilm"),
        "Normal chest.",
        "Mild cardiomegaly.",
    ]));
    let json: serde_json::Value = serde_json::from_str(&output).unwrap();
    assert_eq!(json["dim"], 384);
    let rows = json["embeddings"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["input"], "Mild cardiomegaly.");
    assert_eq!(rows[0]["embedding"].as_array().unwrap().len(), 384);
}

#[test]
fn a_checkpoint_with_one_tensor_removed_fails_naming_it() {
    let source = PathBuf::from(asset("minilm"));
    let dir = std::env::temp_dir().join(format!("cleft-cli-minilm-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(source.join(file), dir.join(file)).unwrap();
    }
    let checkpoint = SafetensorsCheckpoint::open(&source).unwrap();
    let removed = "encoder.layer.3.output.dense.weight";
    let kept: Vec<(String, Vec<usize>, Vec<u8>)> = checkpoint
        .names()
        .into_iter()
        .filter(|name| name != removed && checkpoint.dtype(name) == Some(safetensors::Dtype::F32))
        .map(|name| {
            let t = checkpoint.read(&name).unwrap();
            (
                name,
                t.shape,
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = kept
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();

    let output = cleft(&[
        "embed-text",
        "--model",
        &dir.display().to_string(),
        "Normal chest.",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("missing tensors: [{removed}]")),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn golden(name: &str) -> String {
    cleft_testing::golden_dir().join(name).display().to_string()
}

#[test]
fn the_llm_families_are_inspected_and_embedded_through_their_claims() {
    // Gemma-3-270M's GGUF (claimed by `gemma3`), with its own SentencePiece vocabulary.
    let gemma = stdout(&cleft(&[
        "embed-text",
        "--model",
        &asset("gemma3-270m/gemma-3-270m-q4_k_m.gguf"),
        "pleural effusion",
    ]));
    let json: serde_json::Value = serde_json::from_str(&gemma).unwrap();
    assert_eq!(json["dim"], 640);
    // A Qwen2 GGUF and a Gemma 3 HF directory; a sharded pytorch_model.bin directory.
    let qwen2 = stdout(&cleft(&[
        "embed-text",
        "--model",
        &golden("tiny-qwen2.gguf"),
        "ab",
    ]));
    let json: serde_json::Value = serde_json::from_str(&qwen2).unwrap();
    assert_eq!(json["dim"], 64);
    let inspected = stdout(&cleft(&["inspect", &golden("tiny-gemma3")]));
    assert!(
        inspected.contains("architecture: Gemma3ForCausalLM"),
        "{inspected}"
    );
    let bin = stdout(&cleft(&["inspect", &golden("tiny-llama-linear-bin")]));
    let safetensors = stdout(&cleft(&["inspect", &golden("tiny-llama-linear")]));
    let parameters = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("parameters:"))
            .map(str::to_string)
    };
    assert_eq!(parameters(&bin), parameters(&safetensors));
    assert!(bin.contains("F32 (20 tensors)"), "{bin}");
}
