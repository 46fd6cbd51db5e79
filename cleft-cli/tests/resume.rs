//! Checkpoints, resume and faults, exercised on real `cleft` processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cleft_testing::{Quick, TINY_CONFIG as TINY, quick_tiny};
const STEPS: usize = 12;

/// The tiny config made quick: 12 steps of 16 samples, a checkpoint every 3 steps.
fn config_text(run_dir: &Path, lr: &str) -> String {
    let quick = Quick {
        steps: STEPS,
        train_size: 400,
        train_extra: "checkpoint_every = 3\nkeep_checkpoints = 2",
    };
    quick_tiny(TINY, quick, run_dir).replace("lr = 1e-3", &format!("lr = {lr}"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cleft-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_config(dir: &Path, run_dir: &Path, lr: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, config_text(run_dir, lr)).unwrap();
    path
}

fn cleft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cleft"))
}

/// Losses as logged, as exact bit patterns.
fn losses(run_dir: &Path) -> Vec<(usize, u64)> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                value["step"].as_u64().unwrap() as usize,
                value["loss"].as_f64().unwrap().to_bits(),
            )
        })
        .collect()
}

/// Waits until `checkpoint` exists, then SIGKILLs `child` somewhere after it (possibly in the
/// middle of writing a later checkpoint).
fn kill_after_checkpoint(mut child: std::process::Child, checkpoint: &Path) {
    let started = Instant::now();
    while !checkpoint.is_dir() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(
        u64::from(std::process::id() % 7) * 40,
    ));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn checkpoint_steps(run_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run_dir.join("checkpoints"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_run_killed_with_sigkill_resumes_to_the_uninterrupted_losses() {
    let work = scratch("kill");
    let straight = work.join("straight");
    let config = write_config(&work, &straight, "1e-3");
    let status = cleft()
        .args(["train", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let expected = losses(&straight);
    assert_eq!(expected.len(), STEPS);

    let killed = work.join("killed");
    let config = write_config(&work, &killed, "1e-3");
    let child = cleft()
        .args(["train", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_after_checkpoint(child, &killed.join("checkpoints/step-00000003"));
    assert!(
        checkpoint_steps(&killed)
            .iter()
            .any(|n| n.starts_with("step-"))
    );

    let status = cleft()
        .args(["train", "--resume"])
        .arg(&killed)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        losses(&killed),
        expected,
        "resumed losses must equal the uninterrupted run bit for bit"
    );
    assert_eq!(
        checkpoint_steps(&killed),
        ["step-00000009", "step-00000012"],
        "keep-last-2, no temp dirs"
    );
    for file in [
        "model.safetensors",
        "metrics.csv",
        "loss.png",
        "lr.png",
        "zero_shot.json",
    ] {
        assert!(killed.join(file).is_file(), "{file} missing");
    }
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn a_diverging_run_stops_naming_the_step_and_keeps_its_checkpoints() {
    let work = scratch("nan");
    let run = work.join("run");
    let config = write_config(&work, &run, "1e30");
    let output = cleft()
        .args(["train", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not finite") && stderr.contains("step "),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for name in checkpoint_steps(&run) {
        assert!(name.starts_with("step-"), "unexpected {name}");
        assert!(
            run.join("checkpoints")
                .join(&name)
                .join("model.bpk")
                .is_file()
        );
    }
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn ctrl_c_writes_a_checkpoint_exits_130_and_the_run_resumes_to_the_end() {
    let work = scratch("sigint");
    let run = work.join("run");
    let text = config_text(&run, "1e-3").replace(&format!("steps = {STEPS}\n"), "steps = 60\n");
    let config = work.join("config.toml");
    std::fs::write(&config, text).unwrap();
    let child = cleft()
        .args(["train", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !run.join("checkpoints/step-00000003").is_dir() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("--resume"),
        "tells how to continue: {stderr}"
    );
    let logged = losses(&run).len();
    assert!(logged < 60, "interrupted before the end");
    assert!(
        checkpoint_steps(&run).contains(&format!("step-{logged:08}")),
        "checkpoint at the interrupted step"
    );

    let status = cleft()
        .args(["train", "--resume"])
        .arg(&run)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let steps: Vec<usize> = losses(&run).into_iter().map(|(step, _)| step).collect();
    assert_eq!(steps, (0..60).collect::<Vec<_>>());
    std::fs::remove_dir_all(&work).unwrap();
}

/// Unmounts the test's small tmpfs however the test ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// A tmpfs of `size` bytes at `dir` (the test runs as root, as CI does here).
    fn mount(dir: &Path, size: usize) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs at {} (this test needs root)",
            dir.display()
        );
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_while_checkpointing_keeps_the_previous_checkpoint_valid() {
    let work = scratch("full-disk");
    let straight = work.join("straight");
    let config = write_config(&work, &straight, "1e-3");
    assert!(
        cleft()
            .args(["train", "--config"])
            .arg(&config)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    );

    // One checkpoint of the tiny model takes ~4.8 MB: the second no longer fits.
    let disk = work.join("disk");
    let _tmpfs = Tmpfs::mount(&disk, 7 << 20);
    let run = disk.join("run");
    let config = write_config(&work, &run, "1e-3");
    let output = cleft()
        .args(["train", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the disk should have filled up");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let entries: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        ["step-00000003"],
        "only the complete checkpoint, no partial one"
    );

    // The surviving checkpoint is valid: resumed elsewhere, the run ends as if never interrupted.
    let moved = work.join("moved");
    let status = Command::new("cp")
        .arg("-r")
        .arg(&run)
        .arg(&moved)
        .status()
        .unwrap();
    assert!(status.success());
    let resumed = cleft()
        .args(["train", "--resume"])
        .arg(&moved)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(resumed.success());
    assert_eq!(losses(&moved), losses(&straight));
    drop(_tmpfs);
    std::fs::remove_dir_all(&work).unwrap();
}

/// Stage 2 (`--stage prompt`) resumes like stage 1: killed after its first checkpoint, the
/// resumed run logs exactly the losses of an uninterrupted one.
#[test]
fn a_stage_two_run_killed_with_sigkill_resumes_to_the_uninterrupted_losses() {
    let work = scratch("kill-stage2");
    let config_for = |run: &Path| {
        let text = config_text(run, "1e-3")
            .replace("steps = 60", "steps = 12")
            .replace("checkpoint_every = 30", "checkpoint_every = 3");
        let path = work.join(format!(
            "{}.toml",
            run.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&path, text).unwrap();
        path
    };
    let run = |args: &[&str], config: &Path| {
        let status = cleft()
            .args(args)
            .arg(config)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "cleft {args:?} failed");
    };
    let straight = work.join("straight");
    let config = config_for(&straight);
    run(&["train", "--config"], &config);
    run(&["train", "--stage", "prompt", "--config"], &config);
    let expected = losses(&straight.join("prompt"));
    assert_eq!(expected.len(), 12);

    let killed = work.join("killed");
    let config = config_for(&killed);
    run(&["train", "--config"], &config);
    let child = cleft()
        .args(["train", "--stage", "prompt", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_after_checkpoint(child, &killed.join("prompt/checkpoints/step-00000003"));
    run(&["train", "--stage", "prompt", "--resume"], &killed);
    assert_eq!(
        losses(&killed.join("prompt")),
        expected,
        "resumed stage-2 losses must equal the uninterrupted run bit for bit"
    );
    assert!(killed.join("prompt/prompt.safetensors").is_file());
    std::fs::remove_dir_all(&work).unwrap();
}

/// A run directory belongs to one process: a second `cleft train` on it is refused by name.
#[test]
fn a_second_process_on_a_busy_run_directory_is_refused() {
    let work = scratch("busy");
    let run_dir = work.join("run");
    let config = write_config(&work, &run_dir, "1e-3");
    let mut first = cleft()
        .args(["train", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !run_dir.join("config.toml").is_file() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "first run did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = cleft()
        .args(["train", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let first_status = first.wait().unwrap();
    assert!(first_status.success());
    assert!(!second.status.success(), "the second run must be refused");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("is in use by another cleft process"),
        "{stderr}"
    );
    // Once the first has finished, the directory is free again (e.g. for --resume).
    let again = cleft()
        .args(["train", "--resume"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    std::fs::remove_dir_all(&work).unwrap();
}
