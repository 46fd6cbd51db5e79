//! Opening a plugin library and running its registration entry.

use std::path::Path;

use cleft_core::error::Result;
use cleft_core::plugin::{
    DECLARATION_SYMBOL, PluginDeclaration, PluginRegistrar, REGISTER_SYMBOL, RegisterFn,
};
use cleft_core::registry::{LoadedPlugin, Registry};

use crate::declaration::{check_declaration, plugin_error};

/// [`PluginHost::load_plugin`](crate::PluginHost::load_plugin).
pub(crate) fn load_plugin(registry: &mut Registry, path: &Path) -> Result<LoadedPlugin> {
    let canonical = path
        .canonicalize()
        .map_err(|error| plugin_error(path, format!("cannot open the library file: {error}")))?;
    if let Some(loaded) = registry.plugins().iter().find(|p| p.path == canonical) {
        return Ok(loaded.clone());
    }
    // RTLD_NOW: a library built against another cleft fails here with its undefined
    // symbols named, not later in the middle of a call.
    let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL;
    // SAFETY: loading runs the library's initialisers; a cleft plugin's are Rust statics
    // and `inventory` constructors, which are sound to run.
    let library = unsafe { libloading::os::unix::Library::open(Some(&canonical), flags) }.map_err(
        |error| {
            plugin_error(
                path,
                format!("not a loadable shared library for this cleft: {error}"),
            )
        },
    )?;
    // SAFETY: the symbol is read as a pointer to a `#[repr(C)]` struct of C types (the plugin
    // exports it through a `#[repr(transparent)]` wrapper, the same layout).
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
    let mut scratch = registry.clone();
    let mut registrar = PluginRegistrar::new(&mut scratch, origin);
    register(&mut registrar).map_err(|error| plugin_error(path, error))?;
    let loaded = LoadedPlugin {
        path: canonical,
        components: registrar.into_added(),
    };
    *registry = scratch;
    registry.record_plugin(loaded.clone());
    Ok(loaded)
}
