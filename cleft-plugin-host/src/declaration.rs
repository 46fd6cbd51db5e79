//! Checking a plugin's declaration against this build, field by field.

use std::ffi::{CStr, c_char};
use std::path::Path;

use cleft_core::error::{CleftError, Result};
use cleft_core::plugin::{
    BACKEND_FEATURES, BURN_VERSION, CORE_ANCHOR, CORE_VERSION, PLUGIN_ABI_VERSION, PLUGIN_MAGIC,
    PluginDeclaration, RUSTC_VERSION,
};

/// An error naming the plugin library.
pub(crate) fn plugin_error(path: &Path, message: impl std::fmt::Display) -> CleftError {
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
pub(crate) unsafe fn check_declaration(path: &Path, declaration: &PluginDeclaration) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
            error.contains("`0.0.1`") && error.contains(CORE_VERSION.trim_end_matches('\0')),
            "{error}"
        );
    }
}
