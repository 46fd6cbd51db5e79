//! cleft-core, cleft-peft and burn linked as one Rust `dylib`.
//!
//! A program that hosts shared-library plugins depends on this crate (and names it once, e.g.
//! `use cleft_dylib as _;`); so does every plugin. Both then link `libcleft_dylib.so` instead of
//! their own static copies, so tensors, devices, autodiff state and the registry types that
//! cross between them are the same objects (the "dynamic linking" pattern of large Rust
//! frameworks). cleft-peft is inside too: PEFT-method plugins (`examples/plugin-dora`) build on
//! its tuner helpers, and its built-in methods must be registered once. See
//! `docs/writing-a-plugin.md` for the rules this imposes.

pub use burn;
pub use cleft_core;
pub use cleft_peft;
