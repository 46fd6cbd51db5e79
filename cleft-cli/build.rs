//! Lets `target/*/cleft` run outside cargo: it links `libcleft_dylib.so` (next to it) and Rust's
//! `libstd-*.so` (in the toolchain), so the binary gets run paths to both.

use std::process::Command;

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN:$ORIGIN/deps");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let target = std::env::var("TARGET").unwrap_or_default();
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok());
    if let Some(sysroot) = sysroot {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,-rpath,{}/lib/rustlib/{target}/lib",
            sysroot.trim()
        );
    }
    println!("cargo:rerun-if-env-changed=RUSTC");
}
