//! `cleft params`: parameter budgets of the paper's configurations, from the architecture alone.

use cleft_core::ExperimentConfig;
use cleft_core::params::{ParamBudget, comparison};

fn budget(name: &str) -> ParamBudget {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs/paper")
        .join(name);
    let config = ExperimentConfig::load(&path, &cleft_tests::registry()).unwrap();
    ParamBudget::of(&config, name).unwrap()
}

/// Resident memory high-water mark of this process in bytes (Linux), if known.
fn peak_rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<usize>()
        .ok()
        .map(|kb| kb * 1024)
}

#[test]
fn paper_budgets_match_the_paper_without_allocating_the_llm() {
    let lora = budget("cleft.toml");
    let ia3 = budget("cleft-ia3.toml");
    let prefix = budget("cleft-prefix.toml");
    let bert = budget("bert-baseline.toml");

    assert_eq!(lora.text_trainable(), 2_621_440, "32 · (8·2560 + 7680·8)");
    assert_eq!(ia3.text_trainable(), 573_440, "32 · (7680 + 10240)");
    assert_eq!(prefix.text_trainable(), 3_276_800, "20 · 32 · 2 · 2560");
    let gpt2 = |b: &ParamBudget| {
        b.components
            .iter()
            .find(|c| c.component == "text")
            .unwrap()
            .total
    };
    assert_eq!(
        gpt2(&lora) - 2_621_440,
        2_594_247_680,
        "BioMedLM-size GPT-2 without lm_head"
    );
    assert_eq!(
        bert.text_trainable(),
        gpt2(&bert),
        "the BERT baseline trains fully"
    );
    let vision = |b: &ParamBudget| {
        b.components
            .iter()
            .find(|c| c.component == "vision")
            .unwrap()
            .total
    };
    assert_eq!(
        vision(&bert),
        85_798_656,
        "HF ViTModel ViT-B/16 without pooler (transformers: 86,389,248 with it)"
    );

    assert_eq!(
        vision(&lora),
        86_583_552,
        "DINOv2 ViT-B/14 + 4 registers with its native 37×37 position grid (the method's ≈ 86.6 M)"
    );
    assert_eq!(
        gpt2(&bert),
        65_192_448,
        "BERT-6L without the unused pooler (the method's 65.19 M)"
    );

    let ratio = lora.text_trainable() as f64 / gpt2(&bert) as f64;
    assert!(
        (ratio - 0.040).abs() < 0.001,
        "LM-trainable vs BERT-6L ≈ 4.0 %: {ratio}"
    );
    let (_, cleft_trainable) = lora.totals();
    let (_, bert_trainable) = bert.totals();
    let reduction = 1.0 - cleft_trainable as f64 / bert_trainable as f64;
    assert!(
        (0.37..0.43).contains(&reduction),
        "≈ −39 % trainable parameters: {reduction}"
    );
    let text = comparison(&lora, &bert);
    assert!(
        text.contains("2,621,440") && text.contains("encoders only"),
        "{text}"
    );

    // 2.6 B f32 parameters would be 10.4 GB; the lazily built model stays tiny.
    if let Some(peak) = peak_rss() {
        assert!(peak < 1 << 30, "counting allocated {peak} bytes");
    }
}

#[test]
fn llm_family_budgets_match_their_published_sizes() {
    // Text-tower totals without the (tied or unused) LM head, as transformers counts the bare
    // decoder: Llama-3.2-1B 1,235,814,400; Qwen2.5-0.5B 494,032,768 (with its q/k/v biases);
    // Mistral-7B (BioMistral) 7,241,732,096 − 32000·4096 LM head; Gemma 3 4B's language model. LoRA r = 8 on q_proj and
    // v_proj: layers · 8 · ((E + H·hd) + (E + KV·hd)).
    for (config, total, lora) in [
        (
            "cleft-llama3.2-1b.toml",
            1_235_814_400,
            16 * 8 * ((2048 + 2048) + (2048 + 512)),
        ),
        (
            "cleft-qwen2.5-0.5b.toml",
            494_032_768,
            24 * 8 * ((896 + 896) + (896 + 128)),
        ),
        (
            "cleft-biomistral-7b.toml",
            7_110_660_096,
            32 * 8 * ((4096 + 4096) + (4096 + 1024)),
        ),
        // Gemma 3 4B's decoder (MedGemma 4B): 262208·2560 embeddings + 34 layers of
        // 94,382,592 (q/k norms and four sandwich norms included) + the final norm.
        (
            "cleft-medgemma-4b.toml",
            3_880_263_168,
            34 * 8 * ((2560 + 2048) + (2560 + 1024)),
        ),
    ] {
        let budget = budget(config);
        let text = budget
            .components
            .iter()
            .find(|c| c.component == "text")
            .unwrap();
        assert_eq!(text.total - lora, total, "{config}");
        assert_eq!(budget.text_trainable(), lora, "{config}");
    }
    if let Some(peak) = peak_rss() {
        assert!(peak < 1 << 30, "counting allocated {peak} bytes");
    }
}
