//! `cleft compare` and `cleft eval` end to end on a tiny run: every metric in `eval.json`, valid
//! PNGs, and `--reuse` evaluating a finished run without training it again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cleft_core::config::Precision;
use cleft_core::device::{default_device_name, open_device};
use cleft_train::{EvalOptions, PromptSource, evaluate_run};

const TINY: &str = include_str!("../../configs/tiny/cleft.toml");

/// The tiny CLEFT made quick: 20 steps on 300 images, 100 test images, a 100-step probe and two
/// ensembled templates.
fn config_text(run_dir: &Path) -> String {
    TINY.replace("steps = 300", "steps = 20")
        .replace("warmup_steps = 30", "warmup_steps = 2")
        .replace("train_size = 4000", "train_size = 300")
        .replace("test_size = 500", "test_size = 100")
        .replace(
            "prompt_template = \"this is a chest x ray of a patient with {}\"",
            "templates = [\"this is a chest x ray of a patient with {}\", \"a radiograph showing {}\"]\n\
             ensemble = true",
        )
        .replace(
            "batch_size = 100\n",
            "batch_size = 100\n\n[eval.probe]\nsteps = 100\nlr = 0.05\n",
        )
        .replace(
            "dir = \"runs/tiny-cleft\"",
            &format!("dir = {:?}", run_dir.display().to_string()),
        )
}

fn cleft(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_cleft"))
        .args(args)
        .output()
        .expect("cleft runs");
    assert!(
        output.status.success(),
        "cleft {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
        "{} is not a PNG",
        path.display()
    );
}

fn assert_metrics(metrics: &serde_json::Value, classes: usize) {
    for key in ["accuracy", "balanced_accuracy", "macro_auc", "macro_f1"] {
        let value = metrics[key].as_f64().unwrap_or_else(|| panic!("no {key}"));
        assert!((0.0..=1.0).contains(&value), "{key} = {value}");
    }
    let per_class = metrics["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), classes);
    for key in ["precision", "recall", "f1", "auc", "support"] {
        assert!(per_class[0].get(key).is_some(), "per-class {key}");
    }
    assert_eq!(metrics["confusion"].as_array().unwrap().len(), classes);
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn compare_trains_evaluates_and_reuses_the_finished_run() {
    let dir = std::env::temp_dir().join(format!("cleft-eval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run_dir = dir.join("run");
    let config: PathBuf = dir.join("tiny.toml");
    std::fs::write(&config, config_text(&run_dir)).unwrap();
    let output = dir.join("compare");
    let args = [
        "compare",
        config.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--reuse",
    ];

    let first = cleft(&args);
    assert!(String::from_utf8_lossy(&first.stderr).contains("training into"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("eval.json")).unwrap()).unwrap();
    assert_eq!(report["dataset"], "synthetic-cxr");
    assert_eq!(report["config_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(report["splits"]["test"], 100);
    assert_metrics(&report["zero_shot"]["metrics"], 5);
    assert_eq!(report["prompt"]["ensemble"], true);
    assert_eq!(report["zero_shot_templates"].as_array().unwrap().len(), 2);
    let fractions = report["probe"]["fractions"].as_array().unwrap();
    assert_eq!(fractions.len(), 3);
    for fraction in fractions {
        assert_eq!(fraction["seeds"], serde_json::json!([42, 43, 44]));
        assert_metrics(&fraction["runs"][0], 5);
        assert!(fraction["std"]["accuracy"].as_f64().is_some());
    }
    for png in ["roc.png", "confusion.png"] {
        assert_png(&run_dir.join(png));
    }
    let table = std::fs::read_to_string(output.join("compare.md")).unwrap();
    assert!(table.contains("gpt2 + lora / clip"), "{table}");
    assert!(table.contains("linear probe 100% ACC"), "{table}");
    assert_eq!(
        std::fs::read_to_string(output.join("compare.csv"))
            .unwrap()
            .lines()
            .count(),
        2
    );

    // The library entry, zero-shot only.
    let device = open_device(default_device_name(), Precision::F32).unwrap();
    let options = EvalOptions {
        probe: false,
        prompt: PromptSource::Template,
    };
    let report = evaluate_run(&run_dir, &cleft_builtins::registry(), &options, &device).unwrap();
    assert!(report.probe.is_none());
    assert_eq!(report.zero_shot.images, 100);
    assert!(report.files.iter().all(|file| file.is_file()));

    let (model_time, metrics) = (
        modified(&run_dir.join("model.safetensors")),
        std::fs::read(run_dir.join("metrics.jsonl")).unwrap(),
    );
    let second = cleft(&args);
    assert!(String::from_utf8_lossy(&second.stderr).contains("reusing the finished run"));
    assert_eq!(modified(&run_dir.join("model.safetensors")), model_time);
    assert_eq!(
        std::fs::read(run_dir.join("metrics.jsonl")).unwrap(),
        metrics
    );
    let _ = std::fs::remove_dir_all(&dir);
}
