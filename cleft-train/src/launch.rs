//! Where an experiment trains: one device, replicas in this process, or one rank of a group
//! (MPI); and the threads of in-process replicas.

use burn::prelude::*;

use cleft_collectives::{Collective, Interconnect, LocalGroup};
use cleft_core::error::{CleftError, Result};

/// Where [`Experiment`](crate::Experiment) trains.
pub enum Launcher {
    /// One device.
    Device(Device),
    /// Data-parallel replicas in this process, one thread per device (several GPUs of one
    /// machine, or CPU replicas): rank `r` trains on `devices[r]` and reads rows
    /// `r·b .. (r+1)·b` of every global batch (`b = batch / devices.len()`); gradients are
    /// summed over `interconnect` (the host, or NCCL on burn's CUDA devices, see
    /// [`Interconnect::for_device_name`]). The objective sees the global batch
    /// (`[objective] gather`, on by default), so N replicas train what one device with the whole
    /// batch would. Rank 0 alone writes the run directory.
    Replicas {
        /// One device per replica; the experiment's own model lives on `devices[0]`.
        devices: Vec<Device>,
        /// How device tensors are summed.
        interconnect: Interconnect,
    },
    /// This process is rank `collective.rank()` of a group formed outside (e.g. MPI, one process
    /// per rank); rank 0 alone writes the run directory.
    Rank {
        /// This rank's device.
        device: Device,
        /// The group.
        collective: Box<dyn Collective>,
    },
}

impl std::fmt::Debug for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Device(device) => f.debug_tuple("Device").field(device).finish(),
            Self::Replicas {
                devices,
                interconnect,
            } => f
                .debug_struct("Replicas")
                .field("devices", devices)
                .field("interconnect", interconnect)
                .finish(),
            Self::Rank { device, collective } => f
                .debug_struct("Rank")
                .field("device", device)
                .field("rank", &collective.rank())
                .field("world_size", &collective.world_size())
                .finish(),
        }
    }
}

impl From<&Device> for Launcher {
    fn from(device: &Device) -> Self {
        Self::Device(device.clone())
    }
}

impl From<Device> for Launcher {
    fn from(device: Device) -> Self {
        Self::Device(device)
    }
}

impl Launcher {
    /// Replicas on `devices`, gradients summed through the host.
    pub fn replicas(devices: Vec<Device>) -> Self {
        Self::Replicas {
            devices,
            interconnect: Interconnect::Host,
        }
    }

    /// The device of this process's own model (rank 0's for in-process replicas).
    pub(crate) fn device(&self) -> Result<&Device> {
        match self {
            Self::Device(device) | Self::Rank { device, .. } => Ok(device),
            Self::Replicas { devices, .. } => devices.first().ok_or_else(|| {
                CleftError::Invalid("data-parallel training needs at least one device".into())
            }),
        }
    }

    /// This process's rank.
    pub(crate) fn rank(&self) -> usize {
        match self {
            Self::Rank { collective, .. } => collective.rank(),
            _ => 0,
        }
    }
}

/// Runs `leader` (rank 0) on this thread and `replica` on one thread per other rank of a new
/// group over `devices`; when any fails, every replica stops and the error names the rank that
/// failed first and why.
pub(crate) fn run_replicas<T>(
    devices: &[Device],
    interconnect: Interconnect,
    leader: impl FnOnce(Box<dyn Collective>) -> Result<T>,
    replica: impl Fn(&Device, Box<dyn Collective>) -> Result<()> + Sync,
) -> Result<T> {
    let group = LocalGroup::new(devices.len());
    let mut ranks = interconnect.ranks(&group, devices)?.into_iter();
    let first = ranks
        .next()
        .ok_or_else(|| CleftError::Invalid("data-parallel training needs a device".into()))?;
    let (outcome, others) = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(devices.len() - 1);
        for (collective, device) in ranks.zip(&devices[1..]) {
            let index = collective.rank();
            let replica = &replica;
            let spawned = std::thread::Builder::new()
                .name(format!("cleft-replica-{index}"))
                .spawn_scoped(scope, move || replica(device, collective));
            // A thread that cannot start drops its rank: the others stop at their first
            // collective operation.
            handles.push((index, spawned));
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| leader(first)));
        let others: Vec<(usize, std::thread::Result<Result<()>>)> = handles
            .into_iter()
            .map(|(index, handle)| match handle {
                Ok(handle) => (index, handle.join()),
                Err(error) => (
                    index,
                    Ok(Err(CleftError::Training(format!(
                        "cannot start replica {index}: {error}"
                    )))),
                ),
            })
            .collect();
        (outcome, others)
    });
    let mut panics = Vec::new();
    let mut errors = Vec::new();
    let mut result = None;
    let all = std::iter::once((0, outcome.map(|r| r.map(Some)))).chain(
        others
            .into_iter()
            .map(|(i, o)| (i, o.map(|r| r.map(|()| None)))),
    );
    for (rank, outcome) in all {
        match outcome {
            Ok(Ok(Some(value))) => result = Some(value),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => errors.push((rank, error)),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panicked".into());
                panics.push((rank, message));
            }
        }
    }
    if errors.is_empty() && panics.is_empty() {
        return result.ok_or_else(|| CleftError::Training("rank 0 returned no run".into()));
    }
    // The first failure the group saw is the cause; the other replicas' errors only echo it.
    let (rank, error) = match group.failure() {
        Some((rank, error)) => match panics.iter().find(|(r, _)| *r == rank) {
            Some((_, message)) => (rank, format!("panicked: {message}")),
            None => (rank, error),
        },
        None => match errors.into_iter().next() {
            Some((rank, error)) => (rank, error.to_string()),
            None => (panics[0].0, format!("panicked: {}", panics[0].1)),
        },
    };
    Err(CleftError::Training(format!(
        "data-parallel training stopped: replica rank {rank} of {} failed: {error}",
        devices.len()
    )))
}
