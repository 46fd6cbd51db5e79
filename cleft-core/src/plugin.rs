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
//! [`Registry::load_plugin`] opens the library, reads and checks the declaration before any Rust
//! type crosses the boundary, and only then calls the entry. The last check compares the
//! cleft-core static's address in the plugin and in the host: equal only when both link the same
//! `libcleft_dylib.so`, i.e. share one copy of cleft-core and burn (tensors, devices and
//! autodiff state are the same objects). Libraries are never unloaded.

#![allow(unsafe_code)] // Opening libraries and reading their exported symbols is inherently unsafe.

use std::ffi::{CStr, c_char};
use std::path::{Path, PathBuf};

use crate::error::{CleftError, Result};
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
#[doc(hidden)]
pub static CORE_ANCHOR: u8 = 0;

/// Name of the exported declaration symbol.
pub const DECLARATION_SYMBOL: &str = "CLEFT_PLUGIN_DECLARATION";

/// Name of the exported registration entry.
pub const REGISTER_SYMBOL: &str = "cleft_plugin_register";

/// What a plugin library declares about its build, read before any Rust type crosses.
///
/// Every string is NUL-terminated UTF-8 owned by the library.
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

// SAFETY: the declaration is immutable static data (pointers to string literals and a static).
unsafe impl Sync for PluginDeclaration {}

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

impl PluginRegistrar<'_> {
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
        /// This library's plugin declaration, read by the host before anything else.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub static CLEFT_PLUGIN_DECLARATION: $crate::plugin::PluginDeclaration =
            $crate::plugin::PluginDeclaration::current();

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

/// A loaded plugin library: its path and the components it added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedPlugin {
    /// Canonical path of the library.
    pub path: PathBuf,
    /// The components it registered, as `kind \`name\``.
    pub components: Vec<String>,
}

fn plugin_error(path: &Path, message: impl std::fmt::Display) -> CleftError {
    CleftError::Plugin(format!("plugin {}: {message}", path.display()))
}

const REBUILD: &str = "rebuild the plugin against this cleft (same workspace checkout, same \
                       toolchain, same cargo command as the host: e.g. `cargo build --release -p \
                       cleft-cli -p <plugin>`)";

/// Reads a declared string, refusing a null pointer or non-UTF-8 bytes.
///
/// # Safety
/// `pointer` is null or points to a NUL-terminated string that lives as long as the library.
unsafe fn declared(path: &Path, field: &str, pointer: *const c_char) -> Result<String> {
    if pointer.is_null() {
        return Err(plugin_error(
            path,
            format!("its declaration has no {field}"),
        ));
    }
    // SAFETY: guaranteed by the caller.
    let text = unsafe { CStr::from_ptr(pointer) };
    text.to_str()
        .map(str::to_string)
        .map_err(|_| plugin_error(path, format!("its declared {field} is not UTF-8")))
}

/// Checks a declaration against this cleft-core; every mismatch names both sides.
///
/// # Safety
/// The declaration's string pointers are null or NUL-terminated strings alive as long as the
/// library.
unsafe fn check_declaration(path: &Path, declaration: &PluginDeclaration) -> Result<()> {
    if declaration.magic != PLUGIN_MAGIC {
        return Err(plugin_error(
            path,
            "its CLEFT_PLUGIN_DECLARATION does not start with the cleft plugin tag (not a cleft \
             plugin, or a corrupt one)",
        ));
    }
    if declaration.abi_version != PLUGIN_ABI_VERSION {
        return Err(plugin_error(
            path,
            format!(
                "plugin ABI version {} but this cleft speaks version {PLUGIN_ABI_VERSION}; {REBUILD}",
                declaration.abi_version
            ),
        ));
    }
    let host = |constant: &str| constant.trim_end_matches('\0').to_string();
    let fields = [
        ("rustc version", declaration.rustc_version, RUSTC_VERSION),
        ("cleft-core version", declaration.core_version, CORE_VERSION),
        ("burn version", declaration.burn_version, BURN_VERSION),
        (
            "backend features",
            declaration.backend_features,
            BACKEND_FEATURES,
        ),
    ];
    for (field, pointer, ours) in fields {
        // SAFETY: guaranteed by the caller.
        let theirs = unsafe { declared(path, field, pointer)? };
        if theirs != host(ours) {
            return Err(plugin_error(
                path,
                format!(
                    "built with {field} `{theirs}`, but this cleft has `{}`; {REBUILD}",
                    host(ours)
                ),
            ));
        }
    }
    if !std::ptr::eq(declaration.core_anchor, &CORE_ANCHOR) {
        return Err(plugin_error(
            path,
            "the plugin and this program do not share one copy of cleft-core and burn: this \
             program links them statically, or the plugin links another libcleft_dylib. A host \
             of shared-library plugins depends on `cleft-dylib` (as the `cleft` binary does); \
             build host and plugin in one cargo command",
        ));
    }
    Ok(())
}

impl Registry {
    /// Loads a shared-library plugin and adds its components (origin: the library's path).
    ///
    /// Loading the same library (same canonical path) again is a no-op. Refuses, with the
    /// library named and nothing registered: a missing file; a file that is not a loadable
    /// shared library (or links another build of cleft: undefined symbols); a library without
    /// the declaration or entry; a declaration from another plugin ABI, rustc, cleft-core, burn
    /// or backend feature set (both versions shown); a host that does not share its copy of
    /// cleft-core; a component name that is already registered. The library stays loaded for
    /// the life of the process.
    pub fn load_plugin(&mut self, path: &Path) -> Result<LoadedPlugin> {
        let canonical = path.canonicalize().map_err(|error| {
            plugin_error(path, format!("cannot open the library file: {error}"))
        })?;
        if let Some(loaded) = self.plugins.iter().find(|p| p.path == canonical) {
            return Ok(loaded.clone());
        }
        // RTLD_NOW: a library built against another cleft fails here with its undefined
        // symbols named, not later in the middle of a call.
        let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL;
        // SAFETY: loading runs the library's initialisers; a cleft plugin's are Rust statics
        // and `inventory` constructors, which are sound to run.
        let library = unsafe { libloading::os::unix::Library::open(Some(&canonical), flags) }
            .map_err(|error| {
                plugin_error(
                    path,
                    format!("not a loadable shared library for this cleft: {error}"),
                )
            })?;
        // SAFETY: the symbol is read as a pointer to a `#[repr(C)]` struct of C types.
        let declaration: *const PluginDeclaration = unsafe {
            library
                .get::<*const PluginDeclaration>(DECLARATION_SYMBOL.as_bytes())
                .map(|symbol| symbol.into_raw() as *const PluginDeclaration)
        }
        .map_err(|_| {
            plugin_error(
                path,
                format!(
                    "no `{DECLARATION_SYMBOL}` symbol: not a cleft plugin (a plugin invokes \
                     `cleft_core::export_plugin!`)"
                ),
            )
        })?;
        // SAFETY: the symbol's address is that of the exported static.
        unsafe { check_declaration(path, &*declaration)? };
        // SAFETY: the declaration matched this build exactly, so the entry has the signature
        // `export_plugin!` gives it.
        let register: RegisterFn = unsafe {
            library
                .get::<RegisterFn>(REGISTER_SYMBOL.as_bytes())
                .map(|symbol| *symbol)
        }
        .map_err(|_| plugin_error(path, format!("no `{REGISTER_SYMBOL}` entry")))?;
        // Never unloaded: its code and statics back the components registered below.
        std::mem::forget(library);
        let origin: &'static str = Box::leak(canonical.display().to_string().into_boxed_str());
        let mut scratch = self.clone();
        let mut registrar = PluginRegistrar {
            registry: &mut scratch,
            origin,
            added: Vec::new(),
        };
        register(&mut registrar).map_err(|error| plugin_error(path, error))?;
        let loaded = LoadedPlugin {
            path: canonical,
            components: registrar.added,
        };
        *self = scratch;
        self.plugins.push(loaded.clone());
        Ok(loaded)
    }

    /// Whether the library at `path` is loaded into this registry.
    pub fn has_plugin(&self, path: &Path) -> bool {
        path.canonicalize()
            .is_ok_and(|canonical| self.plugins.iter().any(|p| p.path == canonical))
    }

    /// The plugin libraries loaded into this registry, in load order.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }
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

    #[test]
    fn the_current_declaration_passes_its_own_checks() {
        let declaration = PluginDeclaration::current();
        // SAFETY: the declaration's strings are NUL-terminated constants.
        unsafe { check_declaration(Path::new("self"), &declaration) }.unwrap();
        let other = PluginDeclaration {
            core_version: c"0.0.1".as_ptr(),
            ..PluginDeclaration::current()
        };
        // SAFETY: as above.
        let error = unsafe { check_declaration(Path::new("libx.so"), &other) }
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`0.0.1`") && error.contains(env!("CARGO_PKG_VERSION")),
            "{error}"
        );
    }
}
