//! The libtorch backend (`tch`) against the default `flex`, on real `cleft` processes.
//!
//! Compiled only with `--features tch` (libtorch from a pip-installed torch==2.9.0, ~7 GB):
//! `tools/test-tch.sh` builds and runs it. CI runs it when `CLEFT_CI_TCH=1`; otherwise CI only
//! type-checks the tch code paths (see `.ci/run`).
#![cfg(feature = "tch")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cleft_testing::{Quick, TINY_CONFIG, quick_tiny};

/// The tiny config made quick: `steps` steps of 16 samples, a checkpoint every 3 steps, all kept.
fn config_text(run_dir: &Path, steps: usize) -> String {
    let quick = Quick {
        steps,
        train_size: 800,
        train_extra: "checkpoint_every = 3\nkeep_checkpoints = 100",
    };
    quick_tiny(TINY_CONFIG, quick, run_dir)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cleft-tch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cleft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cleft"))
}

/// Runs `cleft` with `args`, failing the test with its stderr if it fails.
fn run(args: &[&str], extra: &Path) {
    let output = cleft()
        .args(args)
        .arg(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cleft {args:?} {} failed:\n{}",
        extra.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `(step, loss)` as logged in `metrics.jsonl`.
fn losses(run_dir: &Path) -> Vec<(usize, f64)> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                value["step"].as_u64().unwrap() as usize,
                value["loss"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Noise model for the same f32 computation on two correct backends (libtorch's MKL GEMM and
/// flex's `gemm`, each with its own summation order): a length-`n` dot product carries a relative
/// rounding error of about `sqrt(n)·ε` (random-walk model, ε = 2⁻²³), and the loss passes through
/// `D` such reductions in a row. The tiny model's longest reduction is the ViT MLP's
/// `n = 4·96 = 384`; its chain is 3 ViT + 2 GPT-2 blocks × (QKV, scores, context, output, 2 MLP)
/// + patch embedding, pooling, projection ≈ `D = 33`. Twice that is the bound for the first
/// loss computed from identical weights. Each AdamW step after it can move a parameter whose
/// gradient is at the noise level by up to its full update (Adam's first steps are sign-like),
/// so the bound grows by the same amount per update.
fn tolerance(loss: f64, updates_since_identical: usize) -> f64 {
    let eps = f64::from(f32::EPSILON);
    let forward = 2.0 * 33.0 * 384f64.sqrt() * eps;
    forward * (1 + updates_since_identical) as f64 * loss.abs().max(1.0)
}

#[test]
fn a_flex_checkpoint_resumes_on_tch_with_flex_losses() {
    let work = scratch("resume");
    let flex = work.join("flex");
    let config = work.join("config.toml");
    std::fs::write(&config, config_text(&flex, 9)).unwrap();
    run(&["train", "--device", "flex", "--config"], &config);
    let expected = losses(&flex);
    assert_eq!(expected.len(), 9);

    // The same run directory, cut back to its step-3 checkpoint, continued on libtorch.
    let tch = work.join("tch");
    copy_dir(&flex, &tch);
    for late in ["step-00000006", "step-00000009"] {
        std::fs::remove_dir_all(tch.join("checkpoints").join(late)).unwrap();
    }
    run(&["train", "--device", "tch", "--resume"], &tch);
    let resumed = losses(&tch);
    assert_eq!(resumed.len(), 9, "{resumed:?}");
    assert_eq!(
        &resumed[..3],
        &expected[..3],
        "steps before the checkpoint are kept as logged"
    );
    for ((step, ours), (_, theirs)) in resumed.iter().zip(&expected).skip(3) {
        let allowed = tolerance(*theirs, step - 3);
        let difference = (ours - theirs).abs();
        eprintln!(
            "step {step}: tch {ours:.7} flex {theirs:.7} |Δ| {difference:.2e} (≤ {allowed:.2e})"
        );
        assert!(
            difference <= allowed,
            "step {step}: tch loss {ours} vs flex {theirs}: |Δ| {difference:.3e} > {allowed:.3e}"
        );
    }
    // The compared losses differ from step to step by far more than the bound: the comparison
    // is not between constants.
    let compared: Vec<f64> = expected[3..].iter().map(|(_, loss)| *loss).collect();
    let spread = compared.iter().cloned().fold(f64::MIN, f64::max)
        - compared.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 10.0 * tolerance(compared[0], 5), "{expected:?}");
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn tch_trains_the_tiny_config_from_scratch() {
    let work = scratch("scratch");
    let run_dir = work.join("run");
    let config = work.join("config.toml");
    std::fs::write(&config, config_text(&run_dir, 40)).unwrap();
    run(&["train", "--device", "tch", "--config"], &config);
    let logged: Vec<f64> = losses(&run_dir).iter().map(|(_, loss)| *loss).collect();
    assert_eq!(logged.len(), 40);
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    // CLIP loss (sum of both directions) of a model that cannot tell pairs apart: 2 ln 16.
    let chance = 2.0 * 16f64.ln();
    assert!(
        mean(&logged[32..]) < chance - 0.5,
        "loss should fall clearly below chance {chance:.3} on tch: {logged:?}"
    );
    for file in ["model.safetensors", "adapter/adapter_model.safetensors"] {
        assert!(run_dir.join(file).is_file(), "{file} missing");
    }
    std::fs::remove_dir_all(&work).unwrap();
}
