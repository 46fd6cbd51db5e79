//! The one registration path of the objectives: [`register_objective!`] gives a config its
//! `typetag` name (`[objective] type = "…"`), its [`ObjectiveConfig`] implementation and its
//! registry entry, so every objective is registered the same way.
//!
//! [`ObjectiveConfig`]: cleft_core::registry::ObjectiveConfig

/// Registers the objective configured by `$config` under `$name`.
///
/// `|$config_var, $device| $init` builds the objective from `&$config` and the `&Device` (it may
/// use `?` on [`CleftError`](cleft_core::CleftError)s); the config must have a
/// `gather: Option<bool>` field (data-parallel negatives).
macro_rules! register_objective {
    ($name:literal, $summary:literal, $config:ty, |$config_var:ident, $device:ident| $init:expr) => {
        #[typetag::serde(name = $name)]
        impl cleft_core::registry::ObjectiveConfig for $config {
            fn gather(&self) -> Option<bool> {
                self.gather
            }

            fn build(
                &self,
                device: &burn::prelude::Device,
            ) -> Result<
                cleft_core::Component<dyn cleft_core::ContrastiveObjective>,
                cleft_core::CleftError,
            > {
                let ($config_var, $device) = (self, device);
                Ok(cleft_core::Component::<dyn cleft_core::ContrastiveObjective>::new($init))
            }
        }

        cleft_core::register_component!(Objective, $name, $summary, $config);
    };
}

pub(crate) use register_objective;
