//! Shared-library plugins through real `cleft` processes: the ConvNeXt (vision encoder) and DoRA
//! (PEFT method) example plugins listed, trained (loss falls), checkpointed and resumed bit for
//! bit; every refusal a clear error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cleft_testing::{Quick, TINY_CONFIG as TINY, quick_tiny};

fn cleft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleft"))
        .args(args)
        .output()
        .expect("cleft runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cleft-plugins-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `libcleft_plugin_<name>.so`, built beside `cleft` by the same cargo command (the workspace
/// test command builds it: each plugin crate has tests of its own).
fn plugin_library(name: &str) -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_cleft"));
    let dir = bin.parent().unwrap();
    let file = format!("libcleft_plugin_{name}.so");
    [dir.to_path_buf(), dir.join("deps")]
        .iter()
        .map(|dir| dir.join(&file))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{file} is not built beside cleft: run the workspace tests (`cargo test \
                 --workspace`), which build it with the same features as cleft"
            )
        })
}

fn convnext_plugin() -> PathBuf {
    plugin_library("convnext")
}

/// Asserts a clean refusal: exit status 1 (not a signal) and `needles` in stderr.
fn assert_refused(output: &Output, needles: &[&str]) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "`{needle}` not in: {stderr}");
    }
}

#[test]
fn plugins_list_shows_the_library_as_the_origin() {
    let plugin = convnext_plugin();
    let plugin = plugin.to_str().unwrap();
    let output = cleft(&["plugins", "list", "--plugin", plugin]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.split_whitespace().nth(1) == Some("convnext"))
        .unwrap_or_else(|| panic!("no convnext row in:\n{stdout}"));
    assert!(line.starts_with("vision"), "{line}");
    let canonical = Path::new(plugin).canonicalize().unwrap();
    assert!(line.contains(canonical.to_str().unwrap()), "{line}");
    // Without the library the host does not know the name.
    let bare = text(&cleft(&["plugins", "list"]).stdout);
    assert!(!bare.contains("convnext"));
}

/// The tiny config with the section from `section` up to the next one replaced by
/// `replacement`, the plugin library listed relative to the config file, and a short schedule.
fn tiny_with_plugin(
    dir: &Path,
    run_dir: &Path,
    steps: usize,
    plugin: &str,
    section: &str,
    replacement: &str,
) -> PathBuf {
    let file = format!("libcleft_plugin_{plugin}.so");
    let library = dir.join("lib").join(&file);
    std::fs::create_dir_all(library.parent().unwrap()).unwrap();
    if !library.exists() {
        std::os::unix::fs::symlink(plugin_library(plugin), &library).unwrap();
    }
    let start = TINY.find(section).unwrap();
    let end = start + 1 + TINY[start + 1..].find("\n[").unwrap() + 1;
    let text = format!(
        "plugins = [\"lib/{file}\"]\n\n{}{replacement}\n{}",
        &TINY[..start],
        &TINY[end..]
    );
    let quick = Quick {
        steps,
        train_size: 400,
        train_extra: "checkpoint_every = 4\nkeep_checkpoints = 2",
    };
    let config = quick_tiny(&text, quick, run_dir);
    let path = dir.join(format!("{plugin}.toml"));
    std::fs::write(&path, config).unwrap();
    path
}

/// The tiny config with the plugin's encoder.
fn convnext_config(dir: &Path, run_dir: &Path, steps: usize) -> PathBuf {
    tiny_with_plugin(
        dir,
        run_dir,
        steps,
        "convnext",
        "[vision]",
        "[vision]\ntype = \"convnext\"\nchannels = 1\nimage_size = 32\ndims = [24, 48]\n\
         depths = [1, 1]\nlayer_scale_init = 0.1\n",
    )
}

fn losses(run_dir: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                value["step"].as_u64().unwrap(),
                value["loss"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Trains `config` for `steps` steps (loss must fall), then the same run killed after its first
/// checkpoint and resumed: every step's loss bit for bit the same. Returns the full run's dir.
fn trains_and_resumes_exactly(dir: &Path, config: &Path, steps: usize) -> PathBuf {
    let (full_dir, cut_dir) = (dir.join("full"), dir.join("cut"));
    let output = cleft(&["train", "--config", config.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let full = losses(&full_dir);
    assert_eq!(full.len(), steps);
    let mean = |part: &[(u64, f64)]| part.iter().map(|(_, l)| l).sum::<f64>() / part.len() as f64;
    let (first, last) = (mean(&full[..6]), mean(&full[steps - 6..]));
    assert!(
        last < first - 0.1,
        "loss did not fall: {first:.3} → {last:.3}"
    );
    // The run's resolved config names the library by its absolute path.
    let resolved = std::fs::read_to_string(full_dir.join("config.toml")).unwrap();
    assert!(resolved.starts_with("plugins = [\"/"), "{resolved}");

    // The same run killed after its first checkpoint, then resumed from its own directory.
    let mut child = Command::new(env!("CARGO_BIN_EXE_cleft"))
        .args(["train", "--config", config.to_str().unwrap()])
        .args(["--output", cut_dir.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !cut_dir.join("checkpoints").join("step-00000008").is_dir() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint"
        );
        assert!(child.try_wait().unwrap().is_none(), "ended before the kill");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let output = cleft(&["train", "--resume", cut_dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let resumed = losses(&cut_dir);
    assert_eq!(resumed.len(), steps, "{resumed:?}");
    for ((step, a), (_, b)) in full.iter().zip(&resumed) {
        assert_eq!(a.to_bits(), b.to_bits(), "step {step}: {a} vs {b}");
    }
    full_dir
}

#[test]
fn a_config_selecting_the_plugin_trains_checkpoints_and_resumes_exactly() {
    let dir = scratch("train");
    let config = convnext_config(&dir, &dir.join("full"), 24);
    trains_and_resumes_exactly(&dir, &config, 24);
}

#[test]
fn a_peft_method_plugin_trains_resumes_and_exports_an_hf_peft_adapter() {
    let plugin = plugin_library("dora");
    let listed = text(&cleft(&["plugins", "list", "--plugin", plugin.to_str().unwrap()]).stdout);
    assert!(
        listed
            .lines()
            .any(|line| line.starts_with("peft") && line.split_whitespace().nth(1) == Some("dora")),
        "no peft dora row in:\n{listed}"
    );
    let dir = scratch("dora");
    let config = tiny_with_plugin(
        &dir,
        &dir.join("full"),
        24,
        "dora",
        "[peft]",
        "[peft]\ntype = \"dora\"\nr = 8\nlora_alpha = 32.0\nlora_dropout = 0.1\n\
         target_modules = [\"c_attn\"]\n",
    );
    let check = cleft(&["config", "check", config.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let run = trains_and_resumes_exactly(&dir, &config, 24);
    // The run's adapter in HF PEFT layout: a LoRA config with use_dora, and the magnitudes.
    let adapter = run.join("adapter");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["use_dora"], true);
    let weights = std::fs::read(adapter.join("adapter_model.safetensors")).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&weights).unwrap();
    let keys: Vec<String> = header.tensors().into_keys().collect();
    let magnitudes = keys
        .iter()
        .filter(|k| k.ends_with(".attn.c_attn.lora_magnitude_vector"))
        .count();
    assert!(magnitudes > 0, "no DoRA magnitude in {keys:?}");
}

/// The host's `rustc --version` (what cleft-core recorded at build time).
fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let output = Command::new(rustc).arg("--version").output().unwrap();
    text(&output.stdout).trim().to_string()
}

/// Compiles a dependency-free `cdylib` exporting `body`.
fn fixture_library(dir: &Path, name: &str, body: &str) -> PathBuf {
    let source = dir.join(format!("{name}.rs"));
    std::fs::write(&source, body).unwrap();
    let library = dir.join(format!("lib{name}.so"));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let status = Command::new(rustc)
        .args(["--crate-type", "cdylib", "--edition", "2024", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success(), "compiling the {name} fixture");
    library
}

/// A library carrying only a declaration with the given versions (no registration entry is
/// needed: the host must refuse before looking for one).
fn declaration_only(dir: &Path, name: &str, abi: u32, rustc: &str, core: &str) -> PathBuf {
    let body = format!(
        r#"
use std::ffi::c_char;
#[repr(C)]
pub struct Declaration {{
    magic: [u8; 8], abi_version: u32, rustc_version: *const c_char,
    core_version: *const c_char, burn_version: *const c_char,
    backend_features: *const c_char, core_anchor: *const u8,
}}
unsafe impl Sync for Declaration {{}}
#[unsafe(no_mangle)]
pub static CLEFT_PLUGIN_DECLARATION: Declaration = Declaration {{
    magic: *b"CLEFTPLG", abi_version: {abi},
    rustc_version: c"{rustc}".as_ptr(), core_version: c"{core}".as_ptr(),
    burn_version: c"0.22.1".as_ptr(), backend_features: c"flex".as_ptr(),
    core_anchor: std::ptr::null(),
}};
"#
    );
    fixture_library(dir, name, &body)
}

#[test]
fn bad_plugins_are_refused_by_name_without_a_crash() {
    let dir = scratch("refusals");
    let list = |path: &Path| cleft(&["plugins", "list", "--plugin", path.to_str().unwrap()]);

    let missing = dir.join("libnothing.so");
    assert_refused(
        &list(&missing),
        &["libnothing.so", "cannot open the library file"],
    );

    let not_a_library = dir.join("libtext.so");
    std::fs::write(&not_a_library, "not an ELF file\n").unwrap();
    assert_refused(
        &list(&not_a_library),
        &["libtext.so", "not a loadable shared library"],
    );

    let undeclared = fixture_library(
        &dir,
        "undeclared",
        "#[unsafe(no_mangle)]\npub extern \"C\" fn something() -> i32 { 7 }\n",
    );
    assert_refused(
        &list(&undeclared),
        &["libundeclared.so", "no `CLEFT_PLUGIN_DECLARATION`"],
    );

    let rustc = rustc_version();
    let core = env!("CARGO_PKG_VERSION");
    let abi = declaration_only(&dir, "abi", 999, &rustc, core);
    assert_refused(
        &list(&abi),
        &[
            "libabi.so",
            "plugin ABI version 999",
            "version 1",
            "rebuild",
        ],
    );

    let old_rustc = declaration_only(&dir, "rustc", 1, "rustc 1.70.0 (old)", core);
    assert_refused(
        &list(&old_rustc),
        &[
            "librustc.so",
            "`rustc 1.70.0 (old)`",
            &format!("`{rustc}`"),
            "rebuild",
        ],
    );

    let other_core = declaration_only(&dir, "core", 1, &rustc, "0.0.7");
    assert_refused(
        &list(&other_core),
        &[
            "libcore.so",
            "cleft-core version `0.0.7`",
            &format!("`{core}`"),
            "rebuild",
        ],
    );

    // A faithful declaration that does not link the host's cleft-core copy.
    let unshared = declaration_only(&dir, "unshared", 1, &rustc, core);
    assert_refused(
        &list(&unshared),
        &["libunshared.so", "do not share one copy"],
    );

    // The real plugin twice under two paths: its `convnext` is already taken the second time.
    let copy = dir.join("libconvnext-copy.so");
    std::fs::copy(convnext_plugin(), &copy).unwrap();
    let output = cleft(&[
        "plugins",
        "list",
        "--plugin",
        convnext_plugin().to_str().unwrap(),
        "--plugin",
        copy.to_str().unwrap(),
    ]);
    assert_refused(
        &output,
        &[
            "libconvnext-copy.so",
            "vision `convnext`",
            "already registered",
        ],
    );

    // A config listing a library that is not there names the config key's line.
    let config = dir.join("needs-plugin.toml");
    std::fs::write(&config, format!("plugins = [\"gone.so\"]\n\n{TINY}")).unwrap();
    assert_refused(
        &cleft(&["config", "check", config.to_str().unwrap()]),
        &["gone.so", "cannot open the library file"],
    );
}
