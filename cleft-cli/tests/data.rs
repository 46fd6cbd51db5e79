//! `cleft data synth` then `cleft data check` on the tree it wrote, as a user runs them.

use std::process::{Command, Output};

fn cleft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleft"))
        .args(args)
        .output()
        .expect("running cleft")
}

#[test]
fn synth_tree_checks_and_a_broken_csv_is_named() {
    let dir = std::env::temp_dir().join(format!("cleft-data-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("synth");
    let out_str = out.to_str().unwrap();
    let synth = cleft(&[
        "data",
        "synth",
        "--out",
        out_str,
        "--n",
        "20",
        "--valid",
        "4",
        "--test-per-class",
        "3",
        "--size",
        "32",
    ]);
    assert!(
        synth.status.success(),
        "{}",
        String::from_utf8_lossy(&synth.stderr)
    );
    assert!(String::from_utf8_lossy(&synth.stdout).contains("39 images"));

    // The shipped on-disk config, pointed at this tree.
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/tiny/cleft-chexpert.toml"
    ))
    .unwrap()
    .replace("\"data/synth", &format!("\"{out_str}"))
    .replace("per_class = 200", "per_class = 3");
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config).unwrap();
    let check = cleft(&[
        "data",
        "check",
        "--config",
        config_path.to_str().unwrap(),
        "--read-images",
    ]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        stdout.contains("Train: 20 samples, images 1x32x32"),
        "{stdout}"
    );
    assert!(stdout.contains("Valid: 4 samples"), "{stdout}");
    assert!(stdout.contains("Test: 15 samples"), "{stdout}");
    assert!(
        stdout.contains("records chexpert-5x200.csv (15 lines)"),
        "{stdout}"
    );

    // A missing column: a non-zero exit naming the file and the column.
    let train = out.join("CheXpert-v1.0-small/train.csv");
    let text = std::fs::read_to_string(&train)
        .unwrap()
        .replacen("Frontal/Lateral", "View", 1);
    std::fs::write(&train, text).unwrap();
    let check = cleft(&["data", "check", "--config", config_path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success());
    assert!(
        stderr.contains("train.csv") && stderr.contains("no column `Frontal/Lateral`"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
