//! The inference entry on a tiny run trained once (the demo's config on synthetic radiographs):
//! `cleft_train::Predictor` embeds and classifies, synthetic images written as PNG load back to
//! the training normalisation, and `cleft predict` ranks each image's drawn finding first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cleft_core::config::Precision;
use cleft_core::data::ImageTextDataset;
use cleft_core::device::{default_device_name, open_device};
use cleft_core::inference::ImageSource;
use cleft_core::registry::Split;
use cleft_synthetic::{FINDINGS, SyntheticCxr, SyntheticCxrConfig};
// Through cleft-train's re-export, as applications written against it use it.
use cleft_train::{Predictor, PromptChoice};

const TINY: &str = include_str!("../../configs/tiny/cleft.toml");
const TEST_SIZE: usize = 100;

/// The demo's config (300 steps on 4000 images), 100 test images, into `run_dir`.
fn config_text(run_dir: &Path) -> String {
    TINY.replace("test_size = 500", &format!("test_size = {TEST_SIZE}"))
        .replace(
            "dir = \"runs/tiny-cleft\"",
            &format!("dir = {:?}", run_dir.display().to_string()),
        )
}

/// The synthetic test split the run's config describes.
fn test_split() -> SyntheticCxr {
    let config = SyntheticCxrConfig {
        image_size: 32,
        train_size: 4000,
        test_size: TEST_SIZE,
        ..SyntheticCxrConfig::default()
    };
    SyntheticCxr::new(config, Split::Test)
}

/// A run trained once per test binary by `cleft train`; its directory.
fn trained_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cleft-predict-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let run_dir = dir.join("run");
        let config = dir.join("tiny.toml");
        std::fs::write(&config, config_text(&run_dir)).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_cleft"))
            .args(["train", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        run_dir
    })
}

/// `image` (normalised `[1, S, S]`, values in −1..1) as an 8-bit grey PNG.
fn write_png(image: &[f32], side: usize, path: &Path) {
    let pixels: Vec<u8> = image
        .iter()
        .map(|v| ((v * 0.5 + 0.5) * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    image::GrayImage::from_raw(side as u32, side as u32, pixels)
        .unwrap()
        .save(path)
        .unwrap();
}

/// The first test image of each finding: (index, finding).
fn one_per_class(split: &SyntheticCxr) -> Vec<(usize, usize)> {
    FINDINGS
        .iter()
        .enumerate()
        .map(|(class, _)| {
            let index = (0..split.len())
                .find(|&i| split.get(i).unwrap().labels[class] == 1.0)
                .unwrap();
            (index, class)
        })
        .collect()
}

fn classes() -> Vec<String> {
    FINDINGS.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_predictor_embeds_classifies_and_reads_pngs_back_to_the_training_input() {
    let run = trained_run();
    let registry = cleft_builtins::registry();
    let device = open_device(default_device_name(), Precision::F32).unwrap();
    let predictor = Predictor::load(run, &registry, &device, PromptChoice::Template).unwrap();

    assert_eq!(predictor.input_shape(), [1, 32, 32]);
    let preprocessor = predictor
        .preprocessor()
        .expect("synthetic-cxr declares one");
    assert_eq!(preprocessor.output_shape(), [1, 32, 32]);
    let split = test_split();
    let dir = run.parent().unwrap().join("api-images");
    std::fs::create_dir_all(&dir).unwrap();
    let sample = split.get(0).unwrap();
    let png = dir.join("0.png");
    write_png(&sample.image, 32, &png);
    let loaded = predictor.load_image(&png).unwrap();
    assert_eq!(loaded.len(), sample.image.len());
    let worst = loaded
        .iter()
        .zip(&sample.image)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1.0 / 255.0 + 1e-5, "8-bit rounding only: {worst}");

    let other = split.get(1).unwrap().image;
    let images = [
        ImageSource::Prepared(&sample.image),
        ImageSource::Prepared(&loaded),
        ImageSource::Prepared(&other),
    ];
    let embeddings = predictor.embed_images(&images).unwrap();
    assert_eq!(embeddings.dims(), [3, 64]);
    let norms = embeddings
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4), "{norms:?}");
    let texts = predictor
        .embed_texts(&["no finding".to_string(), "edema".to_string()])
        .unwrap();
    assert_eq!(texts.dims(), [2, 64]);

    let probabilities = predictor.classify(&images, &classes()).unwrap();
    assert_eq!(probabilities.len(), 3);
    for row in &probabilities {
        assert_eq!(row.len(), 5);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{row:?}");
    }
    let drift = probabilities[0]
        .iter()
        .zip(&probabilities[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        drift < 0.02,
        "PNG round trip changes the prediction by {drift}"
    );

    let error = Predictor::load(run, &registry, &device, PromptChoice::Learned).unwrap_err();
    assert!(error.to_string().contains("no learned prompt"), "{error}");
    let error = predictor
        .embed_images(&[ImageSource::Prepared(&[0.0; 10])])
        .unwrap_err();
    assert!(error.to_string().contains("[1, 32, 32]"), "{error}");
}

#[test]
fn cleft_predict_ranks_the_drawn_finding_first() {
    let run = trained_run();
    let split = test_split();
    let dir = run.parent().unwrap().join("cli-images");
    std::fs::create_dir_all(&dir).unwrap();
    let drawn = one_per_class(&split);
    let paths: Vec<PathBuf> = drawn
        .iter()
        .map(|&(index, class)| {
            let path = dir.join(format!("{index}-{class}.png"));
            write_png(&split.get(index).unwrap().image, 32, &path);
            path
        })
        .collect();
    let output = Command::new(env!("CARGO_BIN_EXE_cleft"))
        .args([
            "predict",
            "--run",
            run.to_str().unwrap(),
            "--json",
            "--classes",
        ])
        .arg(FINDINGS.join(","))
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = report.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(
        ranked_first(rows, &drawn) >= 4,
        "of 5 drawn findings ranked first: {report:#}"
    );

    let text = Command::new(env!("CARGO_BIN_EXE_cleft"))
        .args([
            "predict",
            "--run",
            run.to_str().unwrap(),
            "--classes",
            "Edema,Atelectasis",
        ])
        .arg(&paths[0])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&text.stdout);
    assert!(
        line.starts_with(&format!("{}: ", paths[0].display()))
            && line.contains("Edema ")
            && line.contains("Atelectasis "),
        "{line}"
    );
}

/// How many rows of `cleft predict --json` rank the drawn class first; each row sorted.
fn ranked_first(rows: &[serde_json::Value], drawn: &[(usize, usize)]) -> usize {
    let mut right = 0;
    for (row, &(_, class)) in rows.iter().zip(drawn) {
        let ranked = row["classes"].as_array().unwrap();
        assert_eq!(ranked.len(), 5);
        let p: Vec<f64> = ranked
            .iter()
            .map(|c| c["probability"].as_f64().unwrap())
            .collect();
        assert!(
            p.windows(2).all(|w| w[0] >= w[1]),
            "sorted, top first: {p:?}"
        );
        right += usize::from(ranked[0]["class"] == FINDINGS[class]);
    }
    right
}

#[test]
fn cleft_predict_with_the_learned_context_of_stage_2() {
    let trained = trained_run();
    let run = trained.parent().unwrap().join("run-stage2");
    let copy = Command::new("cp")
        .args(["-r", trained.to_str().unwrap(), run.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copy.success());
    let cleft = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_cleft"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    cleft(&[
        "train",
        "--stage",
        "prompt",
        "--resume",
        run.to_str().unwrap(),
    ]);
    let split = test_split();
    let drawn = one_per_class(&split);
    let mut args = vec!["predict".to_string(), "--prompt".into(), "learned".into()];
    args.extend(["--json".into(), "--run".into(), run.display().to_string()]);
    args.extend(["--classes".into(), FINDINGS.join(",")]);
    for &(index, class) in &drawn {
        let path = run.join(format!("{index}-{class}.png"));
        write_png(&split.get(index).unwrap().image, 32, &path);
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report: serde_json::Value = serde_json::from_slice(&cleft(&args)).unwrap();
    let right = ranked_first(report.as_array().unwrap(), &drawn);
    assert!(
        right >= 4,
        "{right} of 5 drawn findings ranked first: {report:#}"
    );
}
