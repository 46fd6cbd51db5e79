//! Both binaries in real child processes, on a tiny run trained here with the library (the
//! demo's config on synthetic radiographs): classification ranks each image's drawn finding
//! first, retrieval ranks each finding's image first for its query.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cleft_core::ExperimentConfig;
use cleft_core::data::ImageTextDataset;
use cleft_core::device::open_device;
use cleft_core::registry::Split;
use cleft_synthetic::{FINDINGS, SyntheticCxr, SyntheticCxrConfig};
use cleft_train::{Experiment, TrainOptions};

const TINY: &str = include_str!("../../../configs/tiny/cleft.toml");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(bin: &str, args: &[&str]) -> Output {
    let output = Command::new(bin).args(args).output().unwrap();
    assert!(output.status.success(), "{bin}: {}", text(&output.stderr));
    output
}

/// Trains the demo's config into `dir/run` and writes the first test image of each finding
/// to `dir/images/<finding>.png`; returns the run directory and the image paths.
fn trained_run_and_images(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let run_dir = dir.join("run");
    let config_text = TINY.replace("test_size = 500", "test_size = 100").replace(
        "dir = \"runs/tiny-cleft\"",
        &format!("dir = {:?}", run_dir.display().to_string()),
    );
    let registry = cleft_builtins::registry();
    let config = ExperimentConfig::parse(&config_text, "tiny.toml", &registry).unwrap();
    let device = open_device("cpu", config.train.precision).unwrap();
    Experiment::build(&config, &device)
        .unwrap()
        .train(cleft_train::Stage::Contrastive, &TrainOptions::default())
        .unwrap();

    let split = SyntheticCxr::new(
        SyntheticCxrConfig {
            image_size: 32,
            train_size: 4000,
            test_size: 100,
            ..SyntheticCxrConfig::default()
        },
        Split::Test,
    );
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let paths = (0..FINDINGS.len())
        .map(|class| {
            let index = (0..split.len())
                .find(|&i| split.get(i).unwrap().labels[class] == 1.0)
                .unwrap();
            let pixels: Vec<u8> = split
                .get(index)
                .unwrap()
                .image
                .iter()
                .map(|v| ((v * 0.5 + 0.5) * 255.0).round().clamp(0.0, 255.0) as u8)
                .collect();
            let path = images.join(format!("{}.png", FINDINGS[class]));
            image::GrayImage::from_raw(32, 32, pixels)
                .unwrap()
                .save(&path)
                .unwrap();
            path
        })
        .collect();
    (run_dir, paths)
}

#[test]
fn classify_and_retrieve_find_the_drawn_findings() {
    let dir = std::env::temp_dir().join(format!("cleft-embed-classify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (run_dir, images) = trained_run_and_images(&dir);
    let run_arg = run_dir.to_str().unwrap();

    let mut args = vec![run_arg.to_string(), FINDINGS.join(",")];
    args.extend(images.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = text(&run(env!("CARGO_BIN_EXE_embed-classify"), &args).stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), FINDINGS.len(), "{stdout}");
    let mut right = 0;
    for (line, (path, finding)) in lines.iter().zip(images.iter().zip(FINDINGS)) {
        let ranked = line
            .strip_prefix(&format!("{}: ", path.display()))
            .unwrap_or_else(|| panic!("{line}"));
        let probabilities: Vec<(&str, f64)> = ranked
            .split(", ")
            .map(|item| {
                let (class, p) = item.rsplit_once(' ').unwrap();
                (class, p.parse().unwrap())
            })
            .collect();
        assert_eq!(probabilities.len(), FINDINGS.len());
        // Printed with 4 decimals: 5 roundings of at most 5e-5 each.
        let total: f64 = probabilities.iter().map(|(_, p)| p).sum();
        assert!(
            (total - 1.0).abs() < 1e-3,
            "probabilities sum to {total}: {line}"
        );
        assert!(probabilities.windows(2).all(|w| w[0].1 >= w[1].1), "{line}");
        right += usize::from(probabilities[0].0 == finding);
    }
    assert!(
        right >= 4,
        "{right} of 5 drawn findings ranked first:\n{stdout}"
    );

    let folder = images[0].parent().unwrap().to_str().unwrap();
    let mut found = 0;
    for (path, finding) in images.iter().zip(FINDINGS) {
        let query = format!(
            "this is a chest x ray of a patient with {}",
            finding.to_lowercase()
        );
        let stdout = text(
            &run(
                env!("CARGO_BIN_EXE_retrieve"),
                &[run_arg, folder, &query, "5"],
            )
            .stdout,
        );
        let ranked: Vec<(f64, &str)> = stdout
            .lines()
            .map(|line| {
                let (score, path) = line.split_once(' ').unwrap();
                (score.parse().unwrap(), path)
            })
            .collect();
        assert_eq!(ranked.len(), 5, "{stdout}");
        assert!(
            ranked.iter().all(|(s, _)| (-1.0..=1.0).contains(s)),
            "{stdout}"
        );
        assert!(ranked.windows(2).all(|w| w[0].0 >= w[1].0), "{stdout}");
        found += usize::from(ranked[0].1 == path.display().to_string());
    }
    assert!(
        found >= 3,
        "{found} of 5 queries found their finding's image first"
    );
}
