//! PyTorch checkpoints (`pytorch_model.bin`) read as the same tensors as their safetensors twins
//! (`fixtures/golden/tiny-{gpt2,llama-linear}-bin/`, written by `tools/golden_checkpoint_formats.py`
//! with `torch.save`): float16 values, a strided tensor, and a sharded directory.

use std::path::PathBuf;

use cleft_core::weights::{
    PytorchCheckpoint, SafetensorsCheckpoint, TensorSource, open_checkpoint, summarize_checkpoint,
};
use cleft_testing::golden_dir;

fn dir(name: &str) -> PathBuf {
    golden_dir().join(name)
}

#[test]
fn float16_bin_holds_the_safetensors_values_rounded_to_half() {
    let bin = PytorchCheckpoint::open(&dir("tiny-gpt2-bin")).unwrap();
    let reference = SafetensorsCheckpoint::open(&dir("tiny-gpt2")).unwrap();
    assert_eq!(bin.names(), reference.names());
    for name in reference.names() {
        let (got, want) = (bin.read(&name).unwrap(), reference.read(&name).unwrap());
        assert_eq!(got.shape, want.shape, "{name}");
        let rounded: Vec<u32> = want
            .data
            .iter()
            .map(|&v| half::f16::from_f32(v).to_f32().to_bits())
            .collect();
        let bits: Vec<u32> = got.data.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, rounded, "{name}");
    }
    // h.0.attn.c_attn.weight is saved as a transposed view of its storage: gathered in order.
    assert_eq!(
        bin.dtype_name("h.0.attn.c_attn.weight").as_deref(),
        Some("F16")
    );
}

#[test]
fn sharded_bin_directory_equals_its_safetensors_twin_bit_for_bit() {
    let path = dir("tiny-llama-linear-bin");
    let bin = open_checkpoint(&path).unwrap();
    let reference = SafetensorsCheckpoint::open(&dir("tiny-llama-linear")).unwrap();
    assert_eq!(bin.names(), reference.names());
    for name in reference.names() {
        assert_eq!(
            bin.read(&name).unwrap(),
            reference.read(&name).unwrap(),
            "{name}"
        );
    }
    let (from_bin, from_safetensors) = (
        summarize_checkpoint(&path).unwrap(),
        summarize_checkpoint(&dir("tiny-llama-linear")).unwrap(),
    );
    assert_eq!(from_bin.parameters, from_safetensors.parameters);
    assert_eq!(from_bin.tensors, 20);
    assert_eq!(from_bin.architecture, "LlamaForCausalLM");
    assert_eq!(from_bin.dtypes.get("F32"), Some(&20));
}

fn scratch(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "cleft-pytorch-checkpoint-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    path
}

#[test]
fn a_directory_without_weights_lists_the_names_it_looked_for() {
    let empty = scratch("empty");
    let error = open_checkpoint(&empty).err().unwrap().to_string();
    assert!(
        error.contains(&*empty.to_string_lossy())
            && error.contains("model.safetensors")
            && error.contains("pytorch_model.bin.index.json"),
        "{error}"
    );
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn damaged_bin_files_are_named_errors() {
    let work = scratch("damaged");
    let original = std::fs::read(dir("tiny-gpt2-bin").join("pytorch_model.bin")).unwrap();
    // Cut short (the zip directory at the end is lost), and not a checkpoint at all.
    for (name, bytes) in [
        ("truncated.bin", &original[..original.len() / 2]),
        ("text.bin", &b"not a pickle"[..]),
    ] {
        let file = work.join(name);
        std::fs::write(&file, bytes).unwrap();
        let error = open_checkpoint(&file).err().unwrap().to_string();
        assert!(
            error.contains(name) && error.contains("not a readable PyTorch checkpoint"),
            "{error}"
        );
    }
    // A shard named by the index but absent.
    let sharded = work.join("sharded");
    std::fs::create_dir_all(&sharded).unwrap();
    std::fs::copy(
        dir("tiny-llama-linear-bin").join("pytorch_model.bin.index.json"),
        sharded.join("pytorch_model.bin.index.json"),
    )
    .unwrap();
    let error = open_checkpoint(&sharded).err().unwrap().to_string();
    assert!(error.contains("pytorch_model-0000"), "{error}");
    std::fs::remove_dir_all(&work).unwrap();
}
