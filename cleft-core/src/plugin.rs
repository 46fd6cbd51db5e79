//! Shared-library plugins: components loaded at run time from a Rust `dylib`.
//!
//! A plugin crate is built with `crate-type = ["dylib"]` against `cleft-dylib` and invokes
//! [`export_plugin!`](crate::export_plugin) once. That exports two symbols:
//!
//! - `CLEFT_PLUGIN_DECLARATION`, a `#[repr(C)]` [`PluginDeclaration`] (C types only: a magic
//!   tag, the plugin ABI version, the rustc, cleft-core and burn versions and the backend features
//!   it was built with, and the address of a cleft-core static as the plugin sees it);
//! - `cleft_plugin_register`, the registration entry that adds the plugin's components to a
//!   [`Registry`].
//!
//! The host (the `cleft-plugin-host` crate) opens the library, reads and checks the declaration
//! before any Rust type crosses the boundary, and only then calls the entry. The last check
//! compares the cleft-core static's address in the plugin and in the host: equal only when both
//! link the same `libcleft_dylib.so`, i.e. share one copy of cleft-core and burn (tensors,
//! devices and autodiff state are the same objects). Libraries are never unloaded.
//!
//! Nothing here is `unsafe`: the declaration's `Sync` wrapper and the exported symbols are
//! generated in the plugin crate by [`export_plugin!`](crate::export_plugin).

use std::ffi::c_char;

use crate::error::Result;
use crate::registry::{Registration, Registry};

/// Version of the plugin ABI: the layout of [`PluginDeclaration`], the registration entry's
/// signature and the rules of [`PluginRegistrar`]. Bumped on any change to them.
pub const PLUGIN_ABI_VERSION: u32 = 1;

/// The tag every declaration starts with.
pub const PLUGIN_MAGIC: [u8; 8] = *b"CLEFTPLG";

/// Version of this cleft-core.
pub const CORE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The rustc that compiled this cleft-core (`rustc --version`).
pub const RUSTC_VERSION: &str = concat!(env!("CLEFT_RUSTC_VERSION"), "\0");

/// The burn version cleft-core is built on (pinned exactly in the workspace; a test checks it
/// against `Cargo.lock`).
pub const BURN_VERSION: &str = "0.22.1\0";

/// The backend features compiled in, comma-separated.
pub const BACKEND_FEATURES: &str = {
    // `concat!` cannot take `cfg!` results, so every combination is spelled out.
    if cfg!(all(feature = "flex", feature = "tch", feature = "cuda")) {
        "flex,tch,cuda\0"
    } else if cfg!(all(feature = "flex", feature = "tch")) {
        "flex,tch\0"
    } else if cfg!(all(feature = "flex", feature = "cuda")) {
        "flex,cuda\0"
    } else if cfg!(all(feature = "tch", feature = "cuda")) {
        "tch,cuda\0"
    } else if cfg!(feature = "flex") {
        "flex\0"
    } else if cfg!(feature = "tch") {
        "tch\0"
    } else if cfg!(feature = "cuda") {
        "cuda\0"
    } else {
        "\0"
    }
};

/// A static whose address identifies this copy of cleft-core (see the module docs).
pub static CORE_ANCHOR: u8 = 0;

/// Name of the exported declaration symbol.
pub const DECLARATION_SYMBOL: &str = "CLEFT_PLUGIN_DECLARATION";

/// Name of the exported registration entry.
pub const REGISTER_SYMBOL: &str = "cleft_plugin_register";

/// What a plugin library declares about its build, read before any Rust type crosses.
///
/// Every string is NUL-terminated UTF-8 owned by the library. The raw pointers make it `!Sync`:
/// [`export_plugin!`](crate::export_plugin) exports it inside a `#[repr(transparent)]` wrapper
/// that the plugin crate declares `Sync` (the same layout, read by the host as this struct).
#[repr(C)]
#[derive(Debug)]
pub struct PluginDeclaration {
    /// [`PLUGIN_MAGIC`].
    pub magic: [u8; 8],
    /// [`PLUGIN_ABI_VERSION`] of the cleft-core the plugin was built against.
    pub abi_version: u32,
    /// `rustc --version` of its compiler.
    pub rustc_version: *const c_char,
    /// Its cleft-core version.
    pub core_version: *const c_char,
    /// Its burn version.
    pub burn_version: *const c_char,
    /// Its backend features, comma-separated.
    pub backend_features: *const c_char,
    /// Address of [`CORE_ANCHOR`] as the plugin links it.
    pub core_anchor: *const u8,
}

impl PluginDeclaration {
    /// The declaration of a plugin built against this cleft-core (what
    /// [`export_plugin!`](crate::export_plugin) exports).
    pub const fn current() -> Self {
        Self {
            magic: PLUGIN_MAGIC,
            abi_version: PLUGIN_ABI_VERSION,
            rustc_version: RUSTC_VERSION.as_ptr().cast(),
            core_version: CORE_VERSION.as_ptr().cast(),
            burn_version: BURN_VERSION.as_ptr().cast(),
            backend_features: BACKEND_FEATURES.as_ptr().cast(),
            core_anchor: &CORE_ANCHOR,
        }
    }
}

/// The registration entry's signature: adds the plugin's components through the registrar.
pub type RegisterFn = fn(&mut PluginRegistrar<'_>) -> Result<()>;

/// Handed to a plugin's registration entry: adds components with the library as their origin.
pub struct PluginRegistrar<'a> {
    registry: &'a mut Registry,
    origin: &'static str,
    added: Vec<String>,
}

impl<'a> PluginRegistrar<'a> {
    /// A registrar adding to `registry` with `origin` (the library's path) as every component's
    /// origin; the host creates it before calling the plugin's registration entry.
    pub fn new(registry: &'a mut Registry, origin: &'static str) -> Self {
        Self {
            registry,
            origin,
            added: Vec::new(),
        }
    }

    /// The components added so far, as `kind \`name\``.
    pub fn into_added(self) -> Vec<String> {
        self.added
    }

    /// Adds one component (build it with [`export_plugin!`](crate::export_plugin)); its origin is
    /// set to the library's path. Errors if the kind and name are already registered.
    pub fn add(&mut self, mut registration: Registration) -> Result<()> {
        registration.origin = self.origin;
        let label = format!("{} `{}`", registration.kind(), registration.name);
        self.registry.add(registration)?;
        self.added.push(label);
        Ok(())
    }
}

/// Exports a shared-library plugin's declaration and registration entry.
///
/// Lists components as `Kind, "name", "summary", ConfigType;` with an optional
/// `, claims = ["model_type"]` (the arguments of
/// [`register_component!`](crate::register_component)). Invoke once, in a crate built with
/// `crate-type = ["dylib"]` that depends on `cleft-dylib`.
///
/// ```ignore
/// cleft_core::export_plugin! {
///     Vision, "convnext", "a small ConvNeXt", ConvNextConfig;
/// }
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($($kind:ident, $name:literal, $summary:literal, $config:ty
       $(, claims = [$($claim:literal),* $(,)?])?);+ $(;)?) => {
        /// This library's [`PluginDeclaration`]($crate::plugin::PluginDeclaration), exported
        /// as a static (the same layout).
        #[doc(hidden)]
        #[repr(transparent)]
        pub struct CleftPluginDeclaration($crate::plugin::PluginDeclaration);

        // SAFETY: the declaration is immutable static data (pointers to string literals and a
        // static), never written after it is built.
        #[allow(unsafe_code)]
        unsafe impl Sync for CleftPluginDeclaration {}

        /// This library's plugin declaration, read by the host before anything else.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub static CLEFT_PLUGIN_DECLARATION: CleftPluginDeclaration =
            CleftPluginDeclaration($crate::plugin::PluginDeclaration::current());

        /// This library's registration entry (called by the host after the declaration checks).
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub fn cleft_plugin_register(
            registrar: &mut $crate::plugin::PluginRegistrar<'_>,
        ) -> $crate::Result<()> {
            $(
                registrar.add($crate::registry::Registration {
                    name: $name,
                    summary: $summary,
                    origin: env!("CARGO_PKG_NAME"),
                    parse: $crate::registry::ParseFn::$kind(|value| {
                        $crate::registry::parse_value::<$config>(value)
                            .map(|config| Box::new(config) as _)
                    }),
                    claims: &[$($($claim),*)?],
                })?;
            )+
            Ok(())
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_burn_version_is_the_locked_one() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
            .expect("the workspace Cargo.lock");
        let locked = lock
            .split("[[package]]")
            .find(|entry| entry.contains("\nname = \"burn\"\n"))
            .and_then(|entry| entry.lines().find(|l| l.starts_with("version = ")))
            .expect("burn in Cargo.lock");
        assert_eq!(
            locked,
            format!("version = \"{}\"", BURN_VERSION.trim_end_matches('\0'))
        );
    }
}
