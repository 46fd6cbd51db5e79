//! Typed errors: an application can tell what failed (`CleftError::kind`) and reach the
//! underlying library's error (`std::error::Error::source`), and the command line prints each
//! message once.

use std::error::Error;

use cleft_core::burn::prelude::*;
use cleft_core::{CleftError, ErrorKind};
use cleft_tests::{fast_config, train_stage1};
use cleft_train::TrainOptions;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cleft-errors-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A checkpoint whose `state.json` is not JSON: a checkpoint error naming the file, with the
/// JSON parser's error as its source.
#[test]
fn a_corrupt_checkpoint_state_is_a_checkpoint_error_with_its_source() {
    let dir = temp_dir("state");
    let config = fast_config(&dir, 1);
    train_stage1(&config, &Device::flex(), &TrainOptions::default()).unwrap();
    let checkpoint = cleft_train::latest_checkpoint(&dir).unwrap().unwrap();
    std::fs::write(checkpoint.join("state.json"), "{ not json").unwrap();
    let resume = TrainOptions {
        resume: true,
        ..TrainOptions::default()
    };
    let error = train_stage1(&config, &Device::flex(), &resume).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Checkpoint, "{error}");
    assert!(error.to_string().contains("state.json"), "{error}");
    let source = error.source().expect("the parser's error is kept");
    assert!(error.to_string().ends_with(&source.to_string()), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An `adapter_config.json` that is not JSON: an adapter error naming the file.
#[test]
fn a_corrupt_adapter_config_is_an_adapter_error() {
    let dir = temp_dir("adapter");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("adapter_config.json"), "[1, 2").unwrap();
    let error = cleft_peft::files::read_adapter_config(&dir).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Adapter, "{error}");
    assert!(error.to_string().contains("adapter_config.json"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `CleftError::caused` keeps the kind and the source; the CLI's chain prints each text once.
#[test]
fn a_caused_error_keeps_kind_and_source_and_prints_once() {
    let io = std::io::Error::other("disk on fire");
    let error = CleftError::caused(ErrorKind::Training, "cannot start a loader thread", io);
    assert_eq!(error.kind(), ErrorKind::Training);
    assert_eq!(
        error.to_string(),
        "cannot start a loader thread: disk on fire"
    );
    assert_eq!(error.source().unwrap().to_string(), "disk on fire");
    let chain = cleft_cli::error_chain(&anyhow::Error::new(error));
    assert_eq!(chain, "cannot start a loader thread: disk on fire");
}
