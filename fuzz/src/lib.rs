//! Fuzz harnesses: one function per parser that reads a user's file, fed arbitrary bytes.
//!
//! Each harness turns the bytes into the file (or directory) its parser reads, runs the parser
//! and everything that consumes its result cheaply (dequantisation, tokenizer construction,
//! tensor conversion, row parsing), and returns the parser's verdict: `Ok` or the error it names.
//! A panic, an abort, a hang or an allocation far beyond the input's size is a bug.
//!
//! The same functions run under libFuzzer (`fuzz/engine`, `tools/fuzz.sh`) and in the normal test
//! suite, which replays the seed corpora (`fuzz/corpus/<target>/`) and every crash found so far
//! (`fixtures/fuzz/<target>/`, each with the error it must now give).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cleft_core::burn::prelude::*;
use cleft_core::registry::Split;
use cleft_core::weights::{SafetensorsCheckpoint, TensorSource};
use cleft_core::{Component, TextEncoder};

/// What a harness reports: `Ok`, or the parser's error as the user would read it.
pub type Outcome = Result<(), String>;

/// A fuzz target: its name (the corpus folder) and its harness.
pub struct Target {
    /// Folder name under `fuzz/corpus/` and `fixtures/fuzz/`, and the engine's binary name.
    pub name: &'static str,
    /// The harness.
    pub run: fn(&[u8]) -> Outcome,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "gguf",
        run: gguf,
    },
    Target {
        name: "safetensors",
        run: safetensors,
    },
    Target {
        name: "peft_adapter",
        run: peft_adapter,
    },
    Target {
        name: "config",
        run: config,
    },
    Target {
        name: "csv",
        run: csv,
    },
    Target {
        name: "image",
        run: image,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}

/// Most tensors a harness reads from one input (keeps each execution short).
const MAX_TENSORS: usize = 16;

/// A scratch directory of this process and thread (inputs are written as files there).
fn scratch() -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id())
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>();
    let dir = std::env::temp_dir().join(format!("cleft-fuzz-{}-{thread}", std::process::id()));
    // Failing to make a scratch directory is the harness's problem, not the parser's.
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("scratch file");
}

/// A GGUF file: header, metadata, tensor infos, dequantisation of up to 16 tensors, and the
/// tokenizer built from the metadata (then used once).
pub fn gguf(data: &[u8]) -> Outcome {
    let file = cleft_gguf::GgufFile::from_bytes(data.to_vec()).map_err(|e| e.to_string())?;
    let mut first_error = None;
    if let Err(error) = file.hyper_params() {
        first_error.get_or_insert(error.to_string());
    }
    let _ = file.parameter_count();
    for info in file.tensors().iter().take(MAX_TENSORS) {
        let _ = info.shape();
        if let Err(error) = file.read_f32(info.name()) {
            first_error.get_or_insert(error.to_string());
        }
    }
    match file.tokenizer_data() {
        Ok(data) => match cleft_gguf::build_tokenizer(&data) {
            Ok(tokenizer) => {
                let _ = tokenizer.encode("a chest x ray with cardiomegaly", true);
            }
            Err(error) => {
                first_error.get_or_insert(error.to_string());
            }
        },
        Err(error) => {
            first_error.get_or_insert(error.to_string());
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A safetensors checkpoint (what `weights = …` and HF model directories load): the header,
/// then up to 16 tensors converted to float32.
pub fn safetensors(data: &[u8]) -> Outcome {
    let path = scratch().join("model.safetensors");
    write(&path, data);
    let checkpoint = SafetensorsCheckpoint::open(&path).map_err(|e| e.to_string())?;
    for name in checkpoint.names().into_iter().take(MAX_TENSORS) {
        let _ = checkpoint.shape(&name);
        checkpoint.read(&name).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Splits `data` into two files: a 2-byte little-endian length of the first, then the two.
fn split_two(data: &[u8]) -> (&[u8], &[u8]) {
    let (head, rest) = data.split_at(data.len().min(2));
    let length = match head {
        [a, b] => usize::from(u16::from_le_bytes([*a, *b])),
        _ => 0,
    };
    rest.split_at(length.min(rest.len()))
}

/// The tiny GPT-2 the adapter harness loads onto: the geometry of the golden tiny GPT-2
/// (`fixtures/golden/tiny-gpt2/config.json`) that the seed adapters were made for by HF PEFT.
fn tiny_gpt2() -> Component<dyn TextEncoder> {
    let config = cleft_gpt::Gpt2Config {
        vocab_size: 100,
        n_positions: 64,
        n_embd: 64,
        n_layer: 2,
        n_head: 4,
        scale_attn_by_inverse_layer_idx: true,
        max_len: 16,
        ..cleft_gpt::Gpt2Config::default()
    };
    let tokenizer = Arc::new(cleft_tokenizer::HfTokenizer::builtin_words());
    Component::<dyn TextEncoder>::new(cleft_gpt::Gpt2Model::init(
        &config,
        tokenizer,
        &Device::flex(),
    ))
}

/// An HF PEFT adapter directory: `adapter_config.json` (the input's first part) and
/// `adapter_model.safetensors` (the rest), applied to a tiny GPT-2 and loaded.
pub fn peft_adapter(data: &[u8]) -> Outcome {
    let dir = scratch().join("adapter");
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let (config, weights) = split_two(data);
    write(&dir.join("adapter_config.json"), config);
    write(&dir.join("adapter_model.safetensors"), weights);
    cleft_peft::from_pretrained(tiny_gpt2(), &dir)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// An experiment configuration (TOML) against every built-in component: parsing, the
/// registry's per-component validation and the cross-component contract checks.
pub fn config(data: &[u8]) -> Outcome {
    let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
    cleft_core::ExperimentConfig::parse(text, "fuzz.toml", &cleft_builtins::registry())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The CheXpert CSV (as the data set ships it) and the image–text CSV, both with bad rows
/// skipped (so later rows are reached): both splits of each are opened; the reader that takes
/// the file decides (the CheXpert error otherwise).
pub fn csv(data: &[u8]) -> Outcome {
    let dir = scratch().join("csv");
    std::fs::create_dir_all(&dir).expect("scratch directory");
    // Rows name images `img0.png` … `img15.png` (the seeds do): they exist, so rows get past
    // the image check (their contents are the image target's business).
    for index in 0..16 {
        let image = dir.join(format!("img{index}.png"));
        if !image.is_file() {
            write(&image, b"");
        }
    }
    let path = dir.join("train.csv");
    write(&path, data);
    let chexpert = cleft_datasets::ChexpertConfig {
        csv: path.clone(),
        image_root: dir.clone(),
        test: cleft_datasets::FiveByTwoHundred {
            per_class: 1,
            ..Default::default()
        },
        on_bad_sample: cleft_datasets::OnBadSample::Skip,
        ..Default::default()
    };
    let chexpert_outcome = [Split::Train, Split::Test]
        .into_iter()
        .try_for_each(|split| chexpert.open(split).map(|_| ()));
    let pairs = cleft_datasets::ImageTextCsvConfig {
        train_csv: path.clone(),
        test_csv: Some(path),
        image_root: dir,
        labels: vec!["Cardiomegaly".into(), "Edema".into()],
        on_bad_sample: cleft_datasets::OnBadSample::Skip,
        ..Default::default()
    };
    let pairs_outcome = [Split::Train, Split::Test]
        .into_iter()
        .try_for_each(|split| pairs.open(split).map(|_| ()));
    // Accepted when one of the two readers takes the file (a file is one format or the other).
    match (chexpert_outcome, pairs_outcome) {
        (Ok(()), _) | (_, Ok(())) => Ok(()),
        (Err(error), Err(_)) => Err(error.to_string()),
    }
}

/// An image file as the data sets read it: DICOM (once with its VOI window applied, once
/// min-max scaled) or PNG / JPEG, to greyscale.
pub fn image(data: &[u8]) -> Outcome {
    let path = scratch().join("image");
    write(&path, data);
    let mut outcome = Ok(());
    for voi_window in [false, true] {
        if let Err(error) =
            cleft_imaging::read_grey(&path, &cleft_imaging::DicomOptions { voi_window })
        {
            outcome = Err(error.to_string());
        }
    }
    outcome
}
