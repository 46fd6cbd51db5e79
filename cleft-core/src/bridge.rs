//! The bridge between object-safe component traits and burn's generic [`Module`] trait.
//!
//! burn's `Module` is not object-safe (`visit<V>` / `map<M>` are generic and it requires `Clone`),
//! yet users pick components by name at run time. This module provides:
//!
//! - [`ErasedVisitor`] / [`ErasedMapper`]: object-safe mirrors of burn's `ModuleVisitor` /
//!   `ModuleMapper`, passing parameters as `&dyn Any` / `Box<dyn Any>` together with their kind
//!   and rank, with adapters in both directions.
//! - [`DynModule`]: an object-safe mirror of `Module`, implemented for every `burn::Module` by a
//!   blanket impl, so a plugin author writes an ordinary `#[derive(Module)]` struct.
//! - [`Component`]: a wrapper around `Box<dyn Trait>` that implements `burn::Module` again, so a
//!   composed model is a plain `#[derive(Module)]` struct whose fields are components; burn's
//!   optimizers, freezing, reparameterisations and stores then work unchanged and parameter paths
//!   stay stable (`vision.blocks.3.attn.qkv.weight`).
//!
//! By-value operations (`map`, `fork`, `train`, …) return `Box<dyn Any + Send>` holding the concrete
//! type; [`Component`] stores a re-boxing function made when it was created from the concrete type,
//! which turns that back into `Box<dyn Trait>` without `unsafe`.

use std::any::Any;
use std::fmt;

use burn::module::{
    Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
    Param,
};
use burn::prelude::*;
use burn::tensor::{Bool, Int};

use burn::module::Flag;

/// What kind of tensor a type-erased parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    /// `Tensor<D>` (float).
    Float,
    /// `Tensor<D, Int>`.
    Int,
    /// `Tensor<D, Bool>`.
    Bool,
}

/// Highest tensor rank the bridge forwards (burn models use ranks 1..=6 in practice).
pub const MAX_RANK: usize = 8;

/// Object-safe mirror of burn's `ModuleVisitor`.
///
/// `param` is a `&Param<Tensor<rank, K>>` where `K` follows `kind`.
pub trait ErasedVisitor {
    /// Entering a child module named `name` (a field name or a `Vec` index).
    fn enter_module(&mut self, name: &str, container_type: &str);
    /// Leaving the child module entered last.
    fn exit_module(&mut self, name: &str, container_type: &str);
    /// A tensor parameter of the given kind and rank.
    fn visit_param(&mut self, kind: TensorKind, rank: usize, param: &dyn Any);
    /// A training/validation flag parameter.
    fn visit_flag(&mut self, flag: &Param<Flag>);
}

/// Object-safe mirror of burn's `ModuleMapper`.
///
/// `param` holds a `Param<Tensor<rank, K>>`; the mapper must return a box holding the same type.
pub trait ErasedMapper {
    /// Entering a child module named `name`.
    fn enter_module(&mut self, name: &str, container_type: &str);
    /// Leaving the child module entered last.
    fn exit_module(&mut self, name: &str, container_type: &str);
    /// Map a tensor parameter of the given kind and rank.
    fn map_param(
        &mut self,
        kind: TensorKind,
        rank: usize,
        param: Box<dyn Any + Send>,
    ) -> Box<dyn Any + Send>;
    /// Map a training/validation flag parameter.
    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag>;
}

const DOWNCAST: &str = "bridge invariant: erased parameter kind/rank must match its concrete type";

/// Dispatches a runtime rank to a const-generic call (ranks 1..=MAX_RANK).
macro_rules! by_rank {
    ($rank:expr, $d:ident => $body:expr) => {
        match $rank {
            1 => {
                const $d: usize = 1;
                $body
            }
            2 => {
                const $d: usize = 2;
                $body
            }
            3 => {
                const $d: usize = 3;
                $body
            }
            4 => {
                const $d: usize = 4;
                $body
            }
            5 => {
                const $d: usize = 5;
                $body
            }
            6 => {
                const $d: usize = 6;
                $body
            }
            7 => {
                const $d: usize = 7;
                $body
            }
            8 => {
                const $d: usize = 8;
                $body
            }
            r => panic!("bridge: tensor rank {r} exceeds MAX_RANK = {MAX_RANK}"),
        }
    };
}

/// Presents a concrete `ModuleVisitor` as an [`ErasedVisitor`].
pub struct VisitorAdapter<'a, V: ModuleVisitor>(pub &'a mut V);

impl<V: ModuleVisitor> ErasedVisitor for VisitorAdapter<'_, V> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.0.enter_module(name, container_type);
    }
    fn exit_module(&mut self, name: &str, container_type: &str) {
        self.0.exit_module(name, container_type);
    }
    fn visit_param(&mut self, kind: TensorKind, rank: usize, param: &dyn Any) {
        by_rank!(rank, D => match kind {
            TensorKind::Float => self.0.visit_float::<D>(param.downcast_ref().expect(DOWNCAST)),
            TensorKind::Int => self.0.visit_int::<D>(param.downcast_ref().expect(DOWNCAST)),
            TensorKind::Bool => self.0.visit_bool::<D>(param.downcast_ref().expect(DOWNCAST)),
        })
    }
    fn visit_flag(&mut self, flag: &Param<Flag>) {
        self.0.visit_flag(flag);
    }
}

/// Presents an [`ErasedVisitor`] as a concrete `ModuleVisitor`.
pub struct ErasedVisitorRef<'a>(pub &'a mut dyn ErasedVisitor);

impl ModuleVisitor for ErasedVisitorRef<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.visit_param(TensorKind::Float, D, param);
    }
    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        self.0.visit_param(TensorKind::Int, D, param);
    }
    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
        self.0.visit_param(TensorKind::Bool, D, param);
    }
    fn visit_flag(&mut self, flag: &Param<Flag>) {
        self.0.visit_flag(flag);
    }
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.0.enter_module(name, container_type);
    }
    fn exit_module(&mut self, name: &str, container_type: &str) {
        self.0.exit_module(name, container_type);
    }
}

/// Presents a concrete `ModuleMapper` as an [`ErasedMapper`].
pub struct MapperAdapter<'a, M: ModuleMapper>(pub &'a mut M);

fn remap<T: Send + 'static>(
    param: Box<dyn Any + Send>,
    f: impl FnOnce(T) -> T,
) -> Box<dyn Any + Send> {
    let concrete = *param.downcast::<T>().expect(DOWNCAST);
    Box::new(f(concrete))
}

impl<M: ModuleMapper> ErasedMapper for MapperAdapter<'_, M> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.0.enter_module(name, container_type);
    }
    fn exit_module(&mut self, name: &str, container_type: &str) {
        self.0.exit_module(name, container_type);
    }
    fn map_param(
        &mut self,
        kind: TensorKind,
        rank: usize,
        param: Box<dyn Any + Send>,
    ) -> Box<dyn Any + Send> {
        let mapper = &mut *self.0;
        by_rank!(rank, D => match kind {
            TensorKind::Float => remap(param, |p: Param<Tensor<D>>| mapper.map_float(p)),
            TensorKind::Int => remap(param, |p: Param<Tensor<D, Int>>| mapper.map_int(p)),
            TensorKind::Bool => remap(param, |p: Param<Tensor<D, Bool>>| mapper.map_bool(p)),
        })
    }
    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        self.0.map_flag(flag)
    }
}

/// Presents an [`ErasedMapper`] as a concrete `ModuleMapper`.
pub struct ErasedMapperRef<'a>(pub &'a mut dyn ErasedMapper);

fn unbox<T: 'static>(param: Box<dyn Any + Send>) -> T {
    *param.downcast::<T>().expect(DOWNCAST)
}

impl ModuleMapper for ErasedMapperRef<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.0.enter_module(name, container_type);
    }
    fn exit_module(&mut self, name: &str, container_type: &str) {
        self.0.exit_module(name, container_type);
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        unbox(self.0.map_param(TensorKind::Float, D, Box::new(param)))
    }
    fn map_int<const D: usize>(&mut self, param: Param<Tensor<D, Int>>) -> Param<Tensor<D, Int>> {
        unbox(self.0.map_param(TensorKind::Int, D, Box::new(param)))
    }
    fn map_bool<const D: usize>(
        &mut self,
        param: Param<Tensor<D, Bool>>,
    ) -> Param<Tensor<D, Bool>> {
        unbox(self.0.map_param(TensorKind::Bool, D, Box::new(param)))
    }
    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        self.0.map_flag(flag)
    }
}

/// A type-erased module value returned by the by-value operations of [`DynModule`].
pub type ErasedModule = Box<dyn Any + Send>;

/// Object-safe mirror of burn's [`Module`]; every `burn::Module + 'static` implements it.
///
/// Component traits (`VisionEncoder`, …) extend this trait, so a plugin author only writes a
/// `#[derive(Module)]` struct and the component trait. By-value operations return the concrete
/// module boxed as [`ErasedModule`]; [`Component`] re-boxes it.
pub trait DynModule: Send + fmt::Debug + Any {
    /// Visit every parameter (see `Module::visit`).
    fn visit_erased(&self, visitor: &mut dyn ErasedVisitor);
    /// Map every parameter (see `Module::map`).
    fn map_erased(self: Box<Self>, mapper: &mut dyn ErasedMapper) -> ErasedModule;
    /// Devices of the parameters (see `Module::collect_devices`).
    fn collect_devices_erased(&self, devices: Devices) -> Devices;
    /// Fork onto a device (see `Module::fork`).
    fn fork_erased(self: Box<Self>, device: &Device) -> ErasedModule;
    /// Move to a device (see `Module::to_device`).
    fn to_device_erased(self: Box<Self>, device: &Device) -> ErasedModule;
    /// Training mode (see `Module::train`).
    fn train_erased(self: Box<Self>) -> ErasedModule;
    /// Validation copy (see `Module::valid`).
    fn valid_erased(&self) -> ErasedModule;
    /// Merge reparameterisations into plain weights (see `Module::materialize`).
    fn materialize_erased(self: Box<Self>) -> ErasedModule;
    /// A clone of the concrete module.
    fn clone_erased(&self) -> ErasedModule;
    /// Number of float parameters (elements).
    fn num_params_erased(&self) -> usize;
    /// Human-readable module tree (burn's display format).
    fn display_erased(&self) -> String;
}

impl<M: Module + ModuleDisplay + 'static> DynModule for M {
    fn visit_erased(&self, visitor: &mut dyn ErasedVisitor) {
        self.visit(&mut ErasedVisitorRef(visitor));
    }
    fn map_erased(self: Box<Self>, mapper: &mut dyn ErasedMapper) -> ErasedModule {
        Box::new((*self).map(&mut ErasedMapperRef(mapper)))
    }
    fn collect_devices_erased(&self, devices: Devices) -> Devices {
        self.collect_devices(devices)
    }
    fn fork_erased(self: Box<Self>, device: &Device) -> ErasedModule {
        Box::new((*self).fork(device))
    }
    fn to_device_erased(self: Box<Self>, device: &Device) -> ErasedModule {
        Box::new((*self).to_device(device))
    }
    fn train_erased(self: Box<Self>) -> ErasedModule {
        Box::new((*self).train())
    }
    fn valid_erased(&self) -> ErasedModule {
        Box::new(self.valid())
    }
    fn materialize_erased(self: Box<Self>) -> ErasedModule {
        Box::new((*self).materialize())
    }
    fn clone_erased(&self) -> ErasedModule {
        Box::new(self.clone())
    }
    fn num_params_erased(&self) -> usize {
        Module::num_params(self)
    }
    fn display_erased(&self) -> String {
        ModuleDisplay::format(self, Default::default())
    }
}

/// A boxed component (`Box<dyn VisionEncoder>`, …) that is itself a `burn::Module`.
///
/// Create one with the `new` constructor that [`component_trait!`](crate::component_trait)
/// generates for each component trait, e.g. `Component::<dyn VisionEncoder>::new(my_vit)`.
/// It dereferences to the trait object.
pub struct Component<T: ?Sized> {
    inner: Box<T>,
    rebox: fn(ErasedModule) -> Box<T>,
}

impl<T: ?Sized> Component<T> {
    /// Builds a component from a boxed trait object and its re-boxing function.
    ///
    /// Prefer the typed `new` constructor generated by [`component_trait!`](crate::component_trait).
    pub fn from_parts(inner: Box<T>, rebox: fn(ErasedModule) -> Box<T>) -> Self {
        Self { inner, rebox }
    }

    fn with(&self, inner: ErasedModule) -> Self {
        Self {
            inner: (self.rebox)(inner),
            rebox: self.rebox,
        }
    }
}

impl<T: ?Sized> std::ops::Deref for Component<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> std::ops::DerefMut for Component<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

/// Declares `T` (a trait object type) usable as [`Component<T>`]; implemented by
/// [`component_trait!`](crate::component_trait).
pub trait ComponentTrait: DynModuleUpcast {}

/// Access to the [`DynModule`] part of a component trait object.
pub trait DynModuleUpcast {
    /// This object as a [`DynModule`].
    fn as_dyn_module(&self) -> &dyn DynModule;
    /// This boxed object as a boxed [`DynModule`].
    fn into_dyn_module(self: Box<Self>) -> Box<dyn DynModule>;
}

impl<T: ?Sized + ComponentTrait> Clone for Component<T> {
    fn clone(&self) -> Self {
        self.with(self.inner.as_dyn_module().clone_erased())
    }
}

impl<T: ?Sized + ComponentTrait> fmt::Debug for Component<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.inner.as_dyn_module(), f)
    }
}

impl<T: ?Sized + ComponentTrait + Send> Module for Component<T> {
    fn collect_devices(&self, devices: Devices) -> Devices {
        self.inner.as_dyn_module().collect_devices_erased(devices)
    }
    fn fork(self, device: &Device) -> Self {
        let rebox = self.rebox;
        Self {
            inner: rebox(self.inner.into_dyn_module().fork_erased(device)),
            rebox,
        }
    }
    fn to_device(self, device: &Device) -> Self {
        let rebox = self.rebox;
        Self {
            inner: rebox(self.inner.into_dyn_module().to_device_erased(device)),
            rebox,
        }
    }
    fn train(self) -> Self {
        let rebox = self.rebox;
        Self {
            inner: rebox(self.inner.into_dyn_module().train_erased()),
            rebox,
        }
    }
    fn valid(&self) -> Self {
        self.with(self.inner.as_dyn_module().valid_erased())
    }
    fn materialize(self) -> Self {
        let rebox = self.rebox;
        Self {
            inner: rebox(self.inner.into_dyn_module().materialize_erased()),
            rebox,
        }
    }
    fn num_params(&self) -> usize {
        self.inner.as_dyn_module().num_params_erased()
    }
    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        self.inner
            .as_dyn_module()
            .visit_erased(&mut VisitorAdapter(visitor));
    }
    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        let rebox = self.rebox;
        let mapped = self
            .inner
            .into_dyn_module()
            .map_erased(&mut MapperAdapter(mapper));
        Self {
            inner: rebox(mapped),
            rebox,
        }
    }
}

impl<T: ?Sized + ComponentTrait> ModuleDisplayDefault for Component<T> {
    fn content(&self, content: Content) -> Option<Content> {
        content
            .add_formatted(&self.inner.as_dyn_module().display_erased())
            .optional()
    }
    fn num_params(&self) -> usize {
        self.inner.as_dyn_module().num_params_erased()
    }
}

impl<T: ?Sized + ComponentTrait> ModuleDisplay for Component<T> {}

/// Makes a component trait usable inside [`Component`]: implements the upcast to [`DynModule`]
/// and generates `Component::<dyn Trait>::new(concrete)`.
///
/// The trait must have [`DynModule`] as a supertrait.
#[macro_export]
macro_rules! component_trait {
    ($trait:ident) => {
        impl $crate::bridge::DynModuleUpcast for dyn $trait {
            fn as_dyn_module(&self) -> &dyn $crate::bridge::DynModule {
                self
            }
            fn into_dyn_module(self: Box<Self>) -> Box<dyn $crate::bridge::DynModule> {
                self
            }
        }
        impl $crate::bridge::ComponentTrait for dyn $trait {}
        impl $crate::bridge::Component<dyn $trait> {
            /// Wraps a concrete implementation as a trainable, boxed component.
            pub fn new<C: $trait + 'static>(component: C) -> Self {
                fn rebox<C: $trait + 'static>(
                    erased: $crate::bridge::ErasedModule,
                ) -> Box<dyn $trait> {
                    erased.downcast::<C>().expect(
                        "bridge invariant: a component keeps its concrete type through by-value ops",
                    )
                }
                Self::from_parts(Box::new(component), rebox::<C>)
            }
        }
    };
}
