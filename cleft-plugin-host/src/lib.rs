//! # cleft-plugin-host
//!
//! The host side of cleft's shared-library plugins: [`PluginHost::load_plugin`] opens a Rust
//! `dylib` built with [`cleft_core::export_plugin!`], reads and checks its
//! [`PluginDeclaration`](cleft_core::plugin::PluginDeclaration) before any Rust type crosses the
//! boundary, and only then calls its registration entry, which adds the plugin's components to a
//! [`Registry`]. Libraries are never unloaded.
//!
//! The last check compares the address of a cleft-core static in the plugin and in the host:
//! equal only when both link the same `libcleft_dylib.so`, i.e. share one copy of cleft-core and
//! burn (tensors, devices and autodiff state are the same objects). A host of shared-library
//! plugins therefore depends on `cleft-dylib` too (as the `cleft` binary does).
//!
//! All of the workspace's `unsafe` code for plugins is here (opening libraries and reading their
//! symbols); what a plugin itself needs (the declaration, the registrar, `export_plugin!`) is in
//! [`cleft_core::plugin`].

#![allow(unsafe_code)] // Opening libraries and reading their exported symbols is inherently unsafe.

mod declaration;
mod load;

use std::path::Path;

use cleft_core::error::Result;
use cleft_core::registry::LoadedPlugin;
use cleft_core::{ExperimentConfig, Registry};

/// Loading shared-library plugins into a [`Registry`].
pub trait PluginHost {
    /// Loads a shared-library plugin and adds its components (origin: the library's path).
    ///
    /// Loading the same library (same canonical path) again is a no-op. Refuses, with the
    /// library named and nothing registered: a missing file; a file that is not a loadable
    /// shared library (or links another build of cleft: undefined symbols); a library without
    /// the declaration or entry; a declaration from another plugin ABI, rustc, cleft-core, burn
    /// or backend feature set (both versions shown); a host that does not share its copy of
    /// cleft-core; a component name that is already registered. The library stays loaded for
    /// the life of the process.
    fn load_plugin(&mut self, path: &Path) -> Result<LoadedPlugin>;

    /// Loads the shared-library plugins a config file lists under `plugins = […]` (see
    /// [`PluginHost::load_plugin`]); a file without the key loads nothing.
    fn load_config_plugins(&mut self, file: &Path) -> Result<Vec<LoadedPlugin>>;
}

impl PluginHost for Registry {
    fn load_plugin(&mut self, path: &Path) -> Result<LoadedPlugin> {
        load::load_plugin(self, path)
    }

    fn load_config_plugins(&mut self, file: &Path) -> Result<Vec<LoadedPlugin>> {
        ExperimentConfig::listed_plugins(file)?
            .iter()
            .map(|path| self.load_plugin(path))
            .collect()
    }
}
