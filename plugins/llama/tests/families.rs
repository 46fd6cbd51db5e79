//! Parity with HF transformers for the LLaMA-layout families on tiny random checkpoints
//! (`fixtures/golden/tiny-{llama3,llama-linear,qwen2,mistral}/`, made by
//! `tools/golden_llm_families.py`): LLaMA 3 with `rope_scaling` `llama3` and an untied LM head,
//! LLaMA with `linear` scaling, Qwen2 (q/k/v biases, weights stored as bfloat16) and Mistral
//! (sliding window wider than the inputs). The checkpoints use transformers 5's `config.json`
//! layout (`rope_parameters`); the goldens also record the transformers-4 layout, which must give
//! the same RoPE.

use std::path::Path;
use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::TensorData;
use cleft_core::TextEncoder;
use cleft_core::registry::TextEncoderConfig;
use cleft_core::text::TextPooling;
use cleft_llama::{
    Gemma3Architecture, Gemma3Config, LlamaArchitecture, LlamaConfig, LlamaModel, LoadOptions,
    gemma3_architecture, load_gemma3, load_llama,
};
use cleft_testing::Golden;
use cleft_testing::golden::golden_dir;
use cleft_tokenizer::HfTokenizer;

fn options(max_len: usize) -> LoadOptions {
    LoadOptions {
        pooling: TextPooling::FirstPad,
        max_len,
        allow_missing: false,
        pad_token: String::new(),
    }
}

/// The model and the number of tensors it took from the checkpoint.
fn load(dir: &str, device: &Device) -> (LlamaModel, usize) {
    // The goldens feed token ids directly; any tokenizer within the 256-token vocabulary will do.
    let tokenizer = Arc::new(HfTokenizer::builtin_words());
    let (model, report) = load_llama(
        &golden_dir().join(dir),
        Some(tokenizer),
        &options(16),
        device,
    )
    .unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{dir}: {report:?}"
    );
    (model, report.loaded)
}

/// A decoder's final hidden states (an inherent method of each model), for one golden check.
trait HiddenStates: TextEncoder {
    fn hidden(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<3>;
}

impl HiddenStates for LlamaModel {
    fn hidden(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<3> {
        self.hidden_states(embeddings, mask)
    }
}

impl HiddenStates for cleft_llama::Gemma3Model {
    fn hidden(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<3> {
        self.hidden_states(embeddings, mask)
    }
}

/// `model` on the golden's inputs against its float32 and float64 references.
fn check_outputs(golden: &Golden, model: &impl HiddenStates, device: &Device) {
    let ids = golden.ints::<2>("input_ids", device);
    let mask = golden.ints::<2>("attention_mask", device);
    let hidden = model.hidden(model.embed_tokens(ids.clone()), mask.clone());
    let pooled = model.forward(ids, mask);
    golden.check_hidden_and_pooled(hidden, pooled);
}

fn golden_json(stem: &str) -> serde_json::Value {
    let path = golden_dir().join(format!("{stem}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Hidden states, CLEFT pooling and RoPE frequencies against the float32 reference (its own
/// spread is the floor) and against the float64 run (the spread of its float32 twin).
fn check_family(dir: &str, stem: &str, expected_tensors: usize) {
    let device = Device::flex();
    let (model, loaded) = load(dir, &device);
    assert_eq!((model.dim(), model.num_layers()), (64, 2));
    let golden = Golden::open(stem);
    let inv_freq = model.rope().inv_freq(16);
    golden.check(
        "rope_inv_freq",
        Tensor::<1>::from_data(TensorData::new(inv_freq, [8]), &device),
    );

    check_outputs(&golden, &model, &device);

    // Every tensor of the checkpoint was used (an untied LM head is the one ignored name).
    let keys = golden_json(stem)["checkpoint"]["keys"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "lm_head.weight")
        .count();
    assert_eq!(
        (keys, loaded),
        (expected_tensors, expected_tensors),
        "{stem}"
    );
}

#[test]
fn llama3_rope_scaling_and_untied_head_match_transformers() {
    check_family("tiny-llama3", "tiny_llama3", 2 + 2 * 9);
}

#[test]
fn linear_rope_scaling_matches_transformers() {
    check_family("tiny-llama-linear", "tiny_llama_linear", 2 + 2 * 9);
}

#[test]
fn qwen2_qkv_biases_from_bfloat16_weights_match_transformers() {
    check_family("tiny-qwen2", "tiny_qwen2", 2 + 2 * 12);
}

#[test]
fn mistral_within_its_window_matches_transformers() {
    check_family("tiny-mistral", "tiny_mistral", 2 + 2 * 9);
}

#[test]
fn both_config_layouts_give_the_same_architecture_and_rope() {
    for stem in [
        "tiny_llama3",
        "tiny_llama_linear",
        "tiny_qwen2",
        "tiny_mistral",
    ] {
        let json = golden_json(stem);
        let dir = json["hf_dir"].as_str().unwrap().rsplit('/').next().unwrap();
        let v5: LlamaArchitecture = serde_json::from_str(
            &std::fs::read_to_string(golden_dir().join(dir).join("config.json")).unwrap(),
        )
        .unwrap();
        let v4: LlamaArchitecture =
            serde_json::from_value(json["config_json_transformers4"].clone()).unwrap();
        assert_eq!(v5.rope("v5").unwrap(), v4.rope("v4").unwrap(), "{stem}");
        assert_eq!(
            (v5.qkv_bias(), v5.o_bias(), v5.attention_window()),
            (v4.qkv_bias(), v4.o_bias(), v4.attention_window()),
            "{stem}"
        );
    }
}

fn copy_with_config(dir: &str, edit: impl Fn(&mut serde_json::Value)) -> tempfile_dir::Dir {
    let source = golden_dir().join(dir);
    let target = tempfile_dir::Dir::new(dir);
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, target.0.join(path.file_name().unwrap())).unwrap();
    }
    let config_path = target.0.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&config_path, config.to_string()).unwrap();
    target
}

/// A scratch directory removed on drop.
mod tempfile_dir {
    use std::path::PathBuf;

    pub struct Dir(pub PathBuf);

    impl Dir {
        pub fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "cleft-llama-families-{}-{name}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn load_error(dir: &Path, max_len: usize) -> String {
    let tokenizer = Arc::new(HfTokenizer::builtin_words());
    match load_llama(dir, Some(tokenizer), &options(max_len), &Device::flex()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsupported_families_and_rope_types_are_refused_by_name() {
    let gemma = copy_with_config("tiny-llama3", |c| c["model_type"] = "gemma3".into());
    let error = load_error(&gemma.0, 16);
    assert!(
        error.contains(&*gemma.0.to_string_lossy())
            && error.contains("\"gemma3\"")
            && error.contains("llama, qwen2, mistral"),
        "{error}"
    );
    let yarn = copy_with_config("tiny-llama3", |c| {
        c["rope_parameters"]["rope_type"] = "yarn".into()
    });
    let error = load_error(&yarn.0, 16);
    assert!(
        error.contains("rope_parameters.rope_type \"yarn\"")
            && error.contains("default, linear, llama3"),
        "{error}"
    );
}

#[test]
fn mistral_longer_than_its_window_is_refused_at_load_and_by_the_contract() {
    // The window is 64: 63 real tokens and the pooled pad fit, 64 do not.
    let dir = golden_dir().join("tiny-mistral");
    load_llama(
        &dir,
        Some(Arc::new(HfTokenizer::builtin_words())),
        &options(63),
        &Device::flex(),
    )
    .unwrap();
    let error = load_error(&dir, 64);
    assert!(
        error.contains("sliding window of 64") && error.contains("text.max_len = 64"),
        "{error}"
    );

    // Before anything is loaded, the text contract gets the window as the position bound.
    let config = LlamaConfig {
        weights: Some(dir.clone()),
        ..LlamaConfig::default()
    };
    let input = TextEncoderConfig::input(&config).unwrap().unwrap();
    let window = input.positions.unwrap();
    assert_eq!(window.value, 64);
    assert!(window.key.contains("sliding_window"), "{}", window.key);
    // Without weights, the section's own `sliding_window` is the bound.
    let config = LlamaConfig {
        model_type: "mistral".into(),
        sliding_window: Some(32),
        ..LlamaConfig::default()
    };
    let window = TextEncoderConfig::input(&config)
        .unwrap()
        .unwrap()
        .positions
        .unwrap();
    assert_eq!(
        (window.value, window.key.as_str()),
        (32, "text.sliding_window")
    );
    // LLaMA has no window: RoPE positions are unbounded.
    let config = LlamaConfig {
        weights: Some(golden_dir().join("tiny-llama3")),
        ..LlamaConfig::default()
    };
    assert!(
        TextEncoderConfig::input(&config)
            .unwrap()
            .unwrap()
            .positions
            .is_none()
    );
}

#[test]
fn sharded_pytorch_bin_checkpoint_gives_the_same_outputs() {
    // `tiny-llama-linear-bin/` holds tiny-llama-linear's tensors as two `torch.save` shards.
    let device = Device::flex();
    let (model, loaded) = load("tiny-llama-linear-bin", &device);
    assert_eq!(loaded, 2 + 2 * 9);
    let golden = Golden::open("tiny_llama_linear");
    let ids = golden.ints::<2>("input_ids", &device);
    let mask = golden.ints::<2>("attention_mask", &device);
    golden.check("cleft_pooled", model.forward(ids, mask));
}

#[test]
fn spm_gguf_loads_with_its_own_or_a_user_tokenizer_and_its_linear_rope_scaling() {
    // tiny-llama-linear written as llama.cpp's converter writes a LLaMA (Q/K rows permuted,
    // `llama.rope.scaling.{type,factor}`) with a SentencePiece vocabulary of byte pieces: its own
    // tokenizer starts texts with BOS (id 1); a user's tokenizer is used without building it.
    let path = golden_dir().join("tiny-llama-linear-spm.gguf");
    let device = Device::flex();
    let (own, _) = load_llama(&path, None, &options(16), &device).unwrap();
    let batch = own
        .tokenizer()
        .encode_batch(&["ab".to_string()], 16)
        .unwrap();
    assert_eq!(batch.ids[0], 1, "BOS first: {:?}", batch.ids);
    assert_eq!(own.tokenizer().leading_special_tokens(), 1);
    let tokenizer = Arc::new(HfTokenizer::builtin_words());
    let (model, report) = load_llama(&path, Some(tokenizer), &options(16), &device).unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        model.rope().scaling,
        cleft_llama::RopeScaling::Linear { factor: 4.0 }
    );
    let golden = Golden::open("tiny_llama_linear");
    check_outputs(&golden, &model, &device);
}

#[test]
fn gemma3_text_decoder_matches_transformers() {
    // Layers 0 and 2 local (θ 10⁴), layer 1 global (θ 10⁶, linear ÷ 8); query_pre_attn_scalar 24
    // (not head_dim); every norm weight non-zero, so `(1 + w)` and the sandwich norms show.
    let device = Device::flex();
    let tokenizer = Arc::new(HfTokenizer::builtin_words());
    let (model, report) = load_gemma3(
        &golden_dir().join("tiny-gemma3"),
        Some(tokenizer),
        &options(16),
        &device,
    )
    .unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.loaded, 2 + 3 * 13);
    let golden = Golden::open("tiny_gemma3");
    let scale = Tensor::<1>::from_data(TensorData::new(vec![model.embed_scale()], [1]), &device);
    golden.check("embed_scale", scale);
    let (global, local) = model.ropes();
    let freqs = |rope: &cleft_llama::Rope| {
        Tensor::<1>::from_data(TensorData::new(rope.inv_freq(16), [8]), &device)
    };
    golden.check("rope_inv_freq_global", freqs(global));
    golden.check("rope_inv_freq_local", freqs(local));

    check_outputs(&golden, &model, &device);
}

#[test]
fn gemma3_hub_config_layout_gives_the_same_layers_and_rope() {
    let json = golden_json("tiny_gemma3");
    let v5 = gemma3_architecture(&golden_dir().join("tiny-gemma3")).unwrap();
    let v4 = Gemma3Architecture::from_config_json(json["config_json_transformers4"].clone(), "v4")
        .unwrap();
    assert_eq!(v5.local_layers().unwrap(), [true, false, true]);
    assert_eq!(v4.local_layers().unwrap(), v5.local_layers().unwrap());
    assert_eq!(v4.ropes("v4").unwrap(), v5.ropes("v5").unwrap());
    // A multimodal checkpoint (MedGemma) nests the decoder under text_config.
    let nested = serde_json::json!({"model_type": "gemma3", "text_config": json["config_json_transformers4"].clone()});
    assert_eq!(
        Gemma3Architecture::from_config_json(nested, "mm").unwrap(),
        v4
    );
}

#[test]
fn gemma3_longer_than_its_window_and_bidirectional_configs_are_refused() {
    let dir = golden_dir().join("tiny-gemma3");
    let tokenizer =
        || Some(Arc::new(HfTokenizer::builtin_words()) as Arc<dyn cleft_core::TextTokenizer>);
    let error = match load_gemma3(&dir, tokenizer(), &options(64), &Device::flex()) {
        Ok(_) => panic!("loaded past the window"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("sliding window of 64"), "{error}");
    let bidirectional = copy_with_config("tiny-gemma3", |c| {
        c["use_bidirectional_attention"] = true.into()
    });
    let error = match load_gemma3(&bidirectional.0, tokenizer(), &options(16), &Device::flex()) {
        Ok(_) => panic!("loaded a bidirectional config"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("use_bidirectional_attention"), "{error}");
    let config = Gemma3Config {
        weights: Some(dir),
        ..Gemma3Config::default()
    };
    let window = TextEncoderConfig::input(&config)
        .unwrap()
        .unwrap()
        .positions
        .unwrap();
    assert_eq!(window.value, 64);
}

#[test]
fn qwen2_gguf_reads_its_biases_unpermuted_and_matches_transformers() {
    // tiny-qwen2 written as llama.cpp writes Qwen2 (`qwen2.*` metadata, q/k/v biases, Q/K rows
    // not permuted): the same outputs as the HF directory's transformers run.
    let device = Device::flex();
    let (model, loaded) = load("tiny-qwen2.gguf", &device);
    assert_eq!(loaded, 2 + 2 * 12);
    let golden = Golden::open("tiny_qwen2");
    check_outputs(&golden, &model, &device);
}
