//! Stage-1 training end to end on the tiny configuration.

use cleft_core::burn::prelude::*;
use cleft_core::model::ClipModel;
use cleft_tests::{fast_config, params};
use cleft_tests::{train_stage1, train_stage2};
use cleft_train::TrainOptions;

fn initial_model(config: &cleft_core::ExperimentConfig) -> ClipModel {
    ClipModel::build_seeded(config, &Device::flex().autodiff(), config.train.seed).unwrap()
}

#[test]
fn initialisation_is_seeded() {
    let dir = std::env::temp_dir().join("cleft-seeded");
    let config = fast_config(&dir, 1);
    let (a, b) = (
        params(&initial_model(&config)),
        params(&initial_model(&config)),
    );
    assert!(a == b, "two seeded builds differ");
}

#[test]
fn training_lowers_the_loss_trains_lora_and_keeps_the_base_llm_frozen() {
    let dir = std::env::temp_dir().join(format!("cleft-train-{}", std::process::id()));
    let config = fast_config(&dir, 40);
    let before = params(&initial_model(&config));
    let outcome = train_stage1(&config, &Device::flex(), &TrainOptions::default()).unwrap();

    let losses: Vec<f64> = outcome.history.iter().map(|m| m.loss).collect();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    // CLIP loss (sum of both directions) of a model that cannot tell pairs apart: 2 ln B.
    let chance = 2.0 * (config.train.batch_size as f64).ln();
    assert!(
        mean(&losses[losses.len() - 8..]) < chance - 0.5,
        "loss should fall clearly below chance {chance:.3}: {losses:?}"
    );

    let after = params(&outcome.model);
    let is_adapter = |path: &str| path.contains(".lora_A.") || path.contains(".lora_B.");
    let base: Vec<_> = before
        .iter()
        .filter(|(p, _)| p.starts_with("text.") && !is_adapter(p))
        .collect();
    assert!(!base.is_empty());
    for (path, old) in &base {
        let new = &after.iter().find(|(p, _)| p == path).unwrap().1;
        assert_eq!(old, new, "{path} belongs to the frozen base LLM");
    }
    let adapters: Vec<_> = after.iter().filter(|(p, _)| is_adapter(p)).collect();
    let adapter_paths: Vec<&String> = adapters.iter().map(|(p, _)| p).collect();
    assert_eq!(
        adapters.len(),
        2 * 2,
        "A and B per c_attn in 2 layers: {adapter_paths:?}"
    );
    for (path, new) in &adapters {
        let old = &before.iter().find(|(p, _)| p == path).unwrap().1;
        assert_ne!(old, new, "{path} is a trainable LoRA factor");
    }
    let vision = |set: &[(String, Vec<f32>)]| {
        set.iter()
            .find(|(p, _)| p == "vision.encoder.layer.0.attention.attention.query.weight")
            .unwrap()
            .1
            .clone()
    };
    assert_ne!(vision(&before), vision(&after), "the image encoder trains");

    for file in [
        "config.toml",
        "metrics.jsonl",
        "model.safetensors",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing in the run dir");
    }
    let lines = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 40);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every tiny config in `configs/tiny/` trains: the loss of the last steps is below the first's.
#[test]
fn every_tiny_config_trains_and_its_loss_falls() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/tiny");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    // Configs reading the synthetic benchmark on disk (`cleft data synth`) get a small one.
    let synth = std::env::temp_dir().join(format!("cleft-tiny-synth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&synth);
    let tree = cleft_synthetic::SynthTreeOptions {
        train: 160,
        valid: 10,
        test_per_class: 10,
        size: 64,
        seed: 7,
    };
    cleft_synthetic::write_chexpert_tree(&synth, &tree, &|_, _| {}).unwrap();
    for path in names {
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"data/synth", &format!("\"{}", synth.display()))
            .replace("per_class = 200", "per_class = 10");
        let mut config =
            cleft_tests::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let run = std::env::temp_dir().join(format!(
            "cleft-tiny-{}-{}",
            path.file_stem().unwrap().to_string_lossy(),
            std::process::id()
        ));
        config.train.steps = 30;
        config.train.batch_size = 16;
        config.train.warmup_steps = 2;
        config.output.dir = run.clone();
        let outcome = train_stage1(&config, &Device::flex(), &TrainOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let losses: Vec<f64> = outcome.history.iter().map(|m| m.loss).collect();
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
        assert!(
            mean(&losses[losses.len() - 6..]) < mean(&losses[..6]),
            "{}: loss should fall: {losses:?}",
            path.display()
        );
        std::fs::remove_dir_all(&run).unwrap();
    }
    std::fs::remove_dir_all(&synth).unwrap();
}

#[test]
fn stage_two_learns_a_prompt_on_the_stage_one_model() {
    let dir = std::env::temp_dir().join(format!("cleft-stage2-{}", std::process::id()));
    // A randomly initialised context has something to learn within a few steps.
    let text = cleft_tests::TINY_CONFIG.replace("init = \"text\"", "init = \"random\"");
    let mut config = cleft_tests::fast_config_from(&text, &dir, 30);
    train_stage1(&config, &Device::flex(), &TrainOptions::default()).unwrap();
    config.prompt_train.steps = 12;
    config.prompt_train.batch_size = 32;
    config.prompt_train.warmup_steps = 1;
    config.prompt_train.lr = 0.1;
    config.prompt_train.checkpoint_every = 6;
    let outcome = train_stage2(&config, &Device::flex(), &TrainOptions::default()).unwrap();
    assert_eq!(outcome.history.len(), 12);

    // The learned context lowers the stage-2 loss on a fixed set of single-finding images.
    use cleft_core::registry::Split;
    let device = Device::flex();
    let data = config.data.build(Split::Valid).unwrap();
    let single: Vec<usize> = (0..data.len())
        .filter(|&i| data.labels(i).unwrap().iter().sum::<f32>() == 1.0)
        .take(96)
        .collect();
    let names: Vec<String> = data
        .label_names()
        .iter()
        .map(|n| n.to_lowercase())
        .collect();
    let trained = outcome.prompt.as_ref().unwrap().valid();
    let before = cleft_train::PromptModel {
        prompt: cleft_train::initial_prompt(&config, &trained.clip, &device).unwrap(),
        clip: trained.clip.clone(),
    };
    let recipe = config.prompt_train.recipe;
    let loss = |model: &cleft_train::PromptModel| {
        let text = &model.clip.text;
        let batch = cleft_train::loader::read_batch(
            data.as_ref(),
            &single,
            text.tokenizer().as_ref(),
            text.max_len(),
        )
        .unwrap()
        .to_device(&device);
        let class_tokens = model.class_tokens(&names, &device).unwrap();
        cleft_train::prompt_loss(model, batch, recipe, &class_tokens).into_scalar::<f64>()
    };
    let (initial, learned) = (loss(&before), loss(&trained));
    assert!(
        learned < initial,
        "stage-2 loss on fixed images: {initial} -> {learned}"
    );
    let stage2 = outcome.outcome.as_ref().expect("stage 2 completed");
    for file in [
        "prompt.safetensors",
        "metrics.jsonl",
        "metrics.csv",
        "loss.png",
        "zero_shot.json",
    ] {
        assert!(stage2.run_dir.join(file).is_file(), "{file} missing");
    }
    assert!(
        stage2
            .run_dir
            .join("checkpoints/step-00000012/model.bpk")
            .is_file()
    );
    assert_eq!(stage2.report.images, 500);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The released recipe keeps training the image side (ViT, image projection, logit scale) and
/// freezes the text side; the paper recipe trains the context only.
#[test]
fn stage_two_recipes_train_exactly_their_parameters() {
    use cleft_core::config::PromptRecipe;
    let dir = std::env::temp_dir().join(format!("cleft-stage2-recipes-{}", std::process::id()));
    let mut config = fast_config(&dir, 10);
    train_stage1(&config, &Device::flex(), &TrainOptions::default()).unwrap();
    let mut stage1 = ClipModel::build_seeded(&config, &Device::flex(), 0).unwrap();
    cleft_train::checkpoint::load_safetensors(&mut stage1, &dir.join("model.safetensors")).unwrap();
    let stage1 = params(&stage1);
    config.prompt_train.steps = 4;
    config.prompt_train.batch_size = 16;
    for recipe in [PromptRecipe::Paper, PromptRecipe::Released] {
        config.prompt_train.recipe = recipe;
        let outcome = train_stage2(&config, &Device::flex(), &TrainOptions::default()).unwrap();
        let after = params(&outcome.prompt.as_ref().unwrap().clip);
        for ((path, old), (_, new)) in stage1.iter().zip(&after) {
            let image_side = ["vision.", "vision_projection.", "objective."]
                .iter()
                .any(|p| path.starts_with(p));
            // Unused by the forward pass (pre-norm mean pooling, no masked-image modelling).
            let unused = [
                "vision.layernorm.gamma",
                "vision.layernorm.beta",
                "vision.embeddings.mask_token",
            ];
            let trains =
                recipe == PromptRecipe::Released && image_side && !unused.contains(&path.as_str());
            assert_eq!(
                old != new,
                trains,
                "{recipe:?}: {path} changed = {}",
                old != new
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// No process-wide state: two trainings on two threads of one process give exactly the losses
/// each gives alone — initialisation, LoRA dropout (on here) and data order all come from seeds
/// derived per parameter, per step and per sample, not from a shared RNG or timing.
#[test]
fn two_trainings_on_two_threads_give_exactly_their_solo_losses() {
    let text = cleft_tests::TINY_CONFIG.replace(
        "target_modules = [\"c_attn\"]",
        "target_modules = [\"c_attn\"]\nlora_dropout = 0.2",
    );
    assert!(text.contains("lora_dropout = 0.2"));
    let run = |name: &str, seed: u64| {
        let dir = std::env::temp_dir().join(format!("cleft-threads-{name}-{}", std::process::id()));
        let mut config = cleft_tests::fast_config_from(&text, &dir, 6);
        config.train.seed = seed;
        config.train.log_every = 4;
        let outcome = train_stage1(&config, &Device::flex(), &TrainOptions::default()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        outcome
            .history
            .iter()
            .map(|m| (m.loss.to_bits(), m.grad_norm.to_bits()))
            .collect::<Vec<_>>()
    };
    let solo = (run("solo-a", 1), run("solo-b", 2));
    assert_ne!(solo.0, solo.1, "different seeds train differently");
    let together = std::thread::scope(|scope| {
        let a = scope.spawn(|| run("pair-a", 1));
        let b = scope.spawn(|| run("pair-b", 2));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(together, solo);
}

/// One experiment serves stage 1, stage 2 and export: stage 2 continues from the trained model
/// in memory (no rebuild, no reload), and the adapter that tuned the text encoder is the one
/// that exports it.
#[test]
fn one_experiment_trains_both_stages_and_exports_without_rebuilding() {
    let dir = std::env::temp_dir().join(format!("cleft-experiment-{}", std::process::id()));
    let mut config = fast_config(&dir, 8);
    config.prompt_train.steps = 3;
    config.prompt_train.batch_size = 16;
    let mut experiment = cleft_train::Experiment::build(&config, Device::flex()).unwrap();
    assert_eq!(experiment.adapter().unwrap().method(), "lora");
    experiment
        .train(cleft_train::Stage::Contrastive, &TrainOptions::default())
        .unwrap();
    let trained = params(experiment.model());
    // Stage 2 without model.safetensors on disk: it can only have used the model in memory.
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let outcome = experiment
        .train(cleft_train::Stage::Prompt, &TrainOptions::default())
        .unwrap();
    assert_eq!(outcome.history.len(), 3);
    assert!(
        params(&experiment.prompt_model().unwrap().clip) == trained,
        "the paper recipe keeps the stage-1 model as trained"
    );
    let export = dir.join("exported");
    experiment.export_adapter(&export).unwrap();
    assert!(export.join("adapter_model.safetensors").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Both stages on the LLM families' tiny configs: stage 1, then the learned context on the
/// stage-1 model (Qwen2 through the llama decoder, Gemma 3 through its own).
#[test]
fn stage_two_runs_on_the_qwen2_and_gemma3_towers() {
    for name in ["qwen2", "gemma3"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../configs/tiny/{name}.toml"));
        let dir = std::env::temp_dir().join(format!("cleft-stage2-{name}-{}", std::process::id()));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut config = cleft_tests::fast_config_from(&text, &dir, 6);
        train_stage1(&config, &Device::flex(), &TrainOptions::default()).unwrap();
        config.prompt_train.steps = 4;
        config.prompt_train.batch_size = 16;
        config.prompt_train.warmup_steps = 1;
        let outcome = train_stage2(&config, &Device::flex(), &TrainOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outcome.history.len(), 4, "{name}");
        assert!(
            outcome.history.iter().all(|m| m.loss.is_finite()),
            "{name}: {:?}",
            outcome.history.iter().map(|m| m.loss).collect::<Vec<_>>()
        );
        assert!(
            outcome
                .outcome
                .as_ref()
                .unwrap()
                .run_dir
                .join("prompt.safetensors")
                .is_file(),
            "{name}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
