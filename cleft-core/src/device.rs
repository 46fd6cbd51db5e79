//! Explicit device selection among the backends compiled in by cargo features.
//!
//! burn's `Device::default()` prefers CUDA even when no GPU is present and then panics, so
//! cleft never uses it: every entry point takes a device name.

use burn::prelude::*;
use burn::tensor::FloatDType;

use crate::config::Precision;
use crate::error::{CleftError, Result};

#[cfg(not(any(feature = "flex", feature = "tch", feature = "cuda")))]
compile_error!(
    "cleft-core needs at least one backend feature: `flex` (pure-Rust CPU), \
     `tch` (libtorch; set LIBTORCH to a pip-installed torch==2.9.0) or `cuda`: \
     e.g. `cleft-core = { ..., features = [\"flex\"] }` or `--features cleft-core/flex`."
);

/// Device names accepted by [`parse_device`] in this build, with what each means.
pub fn compiled_devices() -> Vec<(&'static str, &'static str)> {
    let mut names = Vec::new();
    if cfg!(feature = "flex") {
        names.push(("flex", "pure-Rust CPU backend (alias: cpu)"));
    }
    if cfg!(feature = "tch") {
        names.push(("tch", "libtorch on the CPU"));
        names.push(("tch-cuda:N", "libtorch on CUDA GPU N"));
    }
    if cfg!(feature = "cuda") {
        names.push((
            "cuda:N",
            "burn's CUDA backend on GPU N (alias: cuda = cuda:0)",
        ));
    }
    names
}

/// The default device name of this build: the first CPU backend compiled in.
pub fn default_device_name() -> &'static str {
    if cfg!(feature = "flex") {
        "flex"
    } else if cfg!(feature = "tch") {
        "tch"
    } else {
        "cuda:0"
    }
}

fn not_compiled(name: &str, feature: &str) -> CleftError {
    let available: Vec<_> = compiled_devices().iter().map(|(n, _)| *n).collect();
    CleftError::Device(format!(
        "device `{name}` needs the `{feature}` cargo feature, which this build lacks; \
         devices compiled in: {}",
        available.join(", ")
    ))
}

fn parse_index(name: &str, rest: Option<&str>) -> Result<usize> {
    match rest {
        None => Ok(0),
        Some(index) => index.parse().map_err(|_| {
            CleftError::Device(format!("device `{name}`: `{index}` is not a GPU index"))
        }),
    }
}

/// Parses a device name (`flex`, `cpu`, `tch`, `tch-cuda:0`, `cuda:1`, …) into a device of a
/// backend compiled into this build, with float32 as its float type.
///
/// Errors name the device and list the compiled-in ones. GPU devices are probed with a tiny
/// allocation so that a missing GPU is a clear error here rather than a panic later.
pub fn parse_device(name: &str) -> Result<Device> {
    open_device(name, Precision::F32)
}

/// Like [`parse_device`], with the device's default float type set to `precision` (before any
/// tensor exists on it: burn fixes a device's float type at its first tensor).
///
/// bf16 on a backend that lacks it is a clear error naming the device.
pub fn open_device(name: &str, precision: Precision) -> Result<Device> {
    let mut device = device_of(name)?;
    if precision == Precision::Bf16 {
        device.configure(FloatDType::BF16).map_err(|error| {
            CleftError::Device(format!("device `{name}` cannot train in bf16: {error:?}"))
        })?;
    }
    probe(name, &device)?;
    Ok(device)
}

/// The device name of data-parallel replica `index` from `name`: a GPU name (`cuda`, `cuda:N`,
/// `tch-cuda:N`) gives GPU `N + index`; a CPU backend (`flex`, `tch`) gives `name` itself (the
/// replicas share the machine's cores).
pub fn replica_device_name(name: &str, index: usize) -> Result<String> {
    let (base, first) = match name.split_once(':') {
        Some((base, first)) => (base, first),
        None if name == "cuda" || name == "tch-cuda" => (name, "0"),
        None => return Ok(name.to_string()),
    };
    let first: usize = first.parse().map_err(|_| {
        CleftError::Device(format!("device `{name}`: `{first}` is not a device index"))
    })?;
    Ok(format!("{base}:{}", first + index))
}

/// The devices of `replicas` in-process data-parallel replicas named from `name` (see
/// [`replica_device_name`]), each opened with `precision`.
pub fn open_replica_devices(
    name: &str,
    replicas: usize,
    precision: Precision,
) -> Result<Vec<Device>> {
    if replicas == 0 {
        return Err(CleftError::Device("--replicas must be at least 1".into()));
    }
    (0..replicas)
        .map(|index| open_device(&replica_device_name(name, index)?, precision))
        .collect()
}

/// The device's current default float type as a [`Precision`] (`None` for other types).
pub fn precision_of(device: &Device) -> Option<Precision> {
    match device.settings().float_dtype {
        FloatDType::F32 => Some(Precision::F32),
        FloatDType::BF16 => Some(Precision::Bf16),
        _ => None,
    }
}

fn device_of(name: &str) -> Result<Device> {
    let (base, index) = match name.split_once(':') {
        Some((base, index)) => (base, Some(index)),
        None => (name, None),
    };
    let device = match base {
        "flex" | "cpu" if index.is_none() => flex_device(name)?,
        "tch" | "tch-cpu" if index.is_none() => tch_device(name, None)?,
        "tch-cuda" => tch_device(name, Some(parse_index(name, index)?))?,
        "cuda" => cuda_device(name, parse_index(name, index)?)?,
        _ => {
            let available: Vec<_> = compiled_devices().iter().map(|(n, _)| *n).collect();
            return Err(CleftError::Device(format!(
                "unknown device `{name}`; devices compiled in: {}",
                available.join(", ")
            )));
        }
    };
    Ok(device)
}

#[allow(unused_variables)]
fn flex_device(name: &str) -> Result<Device> {
    #[cfg(feature = "flex")]
    return Ok(Device::flex());
    #[cfg(not(feature = "flex"))]
    Err(not_compiled(name, "flex"))
}

#[allow(unused_variables)]
fn tch_device(name: &str, gpu: Option<usize>) -> Result<Device> {
    #[cfg(feature = "tch")]
    return Ok(match gpu {
        None => Device::libtorch(),
        Some(index) => Device::libtorch_cuda(index),
    });
    #[cfg(not(feature = "tch"))]
    Err(not_compiled(name, "tch"))
}

#[allow(unused_variables)]
fn cuda_device(name: &str, index: usize) -> Result<Device> {
    #[cfg(feature = "cuda")]
    return Ok(Device::cuda(index));
    #[cfg(not(feature = "cuda"))]
    Err(not_compiled(name, "cuda"))
}

fn probe(name: &str, device: &Device) -> Result<()> {
    let device = device.clone();
    let outcome = std::panic::catch_unwind(move || {
        let probe = Tensor::<1>::ones([1], &device);
        probe.into_scalar::<f32>()
    });
    match outcome {
        Ok(1.0) => Ok(()),
        _ => Err(CleftError::Device(format!(
            "device `{name}` is compiled in but not usable on this machine (no such GPU or \
             driver?)"
        ))),
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    #[test]
    fn flex_and_cpu_alias_parse() {
        assert!(parse_device("flex").is_ok());
        assert!(parse_device("cpu").is_ok());
    }

    #[test]
    fn unknown_device_lists_compiled_ones() {
        let message = parse_device("tpu:0").unwrap_err().to_string();
        assert!(message.contains("unknown device `tpu:0`"), "{message}");
        assert!(message.contains("flex"), "{message}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_names_the_feature() {
        let message = parse_device("cuda:0").unwrap_err().to_string();
        assert!(message.contains("`cuda` cargo feature"), "{message}");
    }

    #[test]
    fn bad_gpu_index_is_reported() {
        let message = parse_device("cuda:x").unwrap_err().to_string();
        assert!(message.contains("cuda:x"), "{message}");
    }
}
