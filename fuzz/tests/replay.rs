//! Replays every seed of `fuzz/corpus/<target>/` and every crash found so far
//! (`fixtures/fuzz/<target>/`) through the fuzz harnesses, in the normal test suite.
//!
//! A crash fixture `NAME` comes with `NAME.expect`: a piece of the named error the input must now
//! give (the harness returning `Err` containing it), so a fix cannot regress into a panic or into
//! silently accepting the input.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files of `dir` (sorted), without `.expect` companions; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && path.extension().is_none_or(|e| e != "expect"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_seeds_and_every_seed_runs_without_panic() {
    for target in cleft_fuzz::TARGETS {
        let seeds = inputs(&root().join("fuzz/corpus").join(target.name));
        assert!(
            seeds.len() >= 2,
            "fuzz/corpus/{} needs seeds (tools/fuzz-seeds.sh)",
            target.name
        );
        let mut accepted = 0;
        for seed in &seeds {
            let bytes = std::fs::read(seed).unwrap();
            if (target.run)(&bytes).is_ok() {
                accepted += 1;
            }
        }
        // The corpus starts from real, valid files: at least one must parse, or the harness
        // exercises nothing but the first check.
        assert!(
            accepted > 0,
            "no seed of {} parses: the harness or the seeds are wrong",
            target.name
        );
    }
}

#[test]
fn every_crash_found_gives_its_named_error() {
    let fixtures = root().join("fixtures/fuzz");
    for target in cleft_fuzz::TARGETS {
        for input in inputs(&fixtures.join(target.name)) {
            let expect_file = input.with_extension("expect");
            let expected = std::fs::read_to_string(&expect_file)
                .unwrap_or_else(|_| panic!("{} lacks its .expect", input.display()));
            let bytes = std::fs::read(&input).unwrap();
            let outcome = (target.run)(&bytes);
            let message = outcome.expect_err(&format!("{} is accepted", input.display()));
            assert!(
                message.contains(expected.trim()),
                "{}: error `{message}` lacks `{}`",
                input.display(),
                expected.trim()
            );
        }
    }
}
