//! Which interconnect in-process replicas sum device tensors through.

use burn::prelude::*;

use cleft_core::error::Result;

use crate::collective::Collective;
use crate::local::LocalGroup;
use crate::nccl::NcclCollective;

/// How in-process replicas sum device tensors (gradients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interconnect {
    /// Through the host, [`LocalGroup`] (any backend).
    Host,
    /// On the GPUs, burn's NCCL all-reduce ([`crate::nccl`]; burn's CUDA backend, feature `cuda`).
    Nccl,
}

impl Interconnect {
    /// The interconnect for replicas on devices named from `name`: NCCL for burn's CUDA devices
    /// (`cuda`, `cuda:N`), the host otherwise (CPU replicas; libtorch's GPUs, whose backend has
    /// no collectives in burn).
    pub fn for_device_name(name: &str) -> Self {
        match name.split(':').next() {
            Some("cuda") => Self::Nccl,
            _ => Self::Host,
        }
    }

    /// One handle per rank of `group`, rank `r` driving `devices[r]`.
    ///
    /// # Errors
    /// NCCL in a build without the `cuda` feature, or a device count other than the group's.
    pub fn ranks(self, group: &LocalGroup, devices: &[Device]) -> Result<Vec<Box<dyn Collective>>> {
        let ranks = group.ranks();
        match self {
            Self::Host => Ok(ranks
                .into_iter()
                .map(|rank| Box::new(rank) as Box<dyn Collective>)
                .collect()),
            Self::Nccl => ranks
                .into_iter()
                .map(|rank| {
                    NcclCollective::new(rank, devices.to_vec())
                        .map(|rank| Box::new(rank) as Box<dyn Collective>)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_cuda_devices_sum_over_nccl_and_the_others_through_the_host() {
        assert_eq!(Interconnect::for_device_name("cuda"), Interconnect::Nccl);
        assert_eq!(Interconnect::for_device_name("cuda:3"), Interconnect::Nccl);
        for name in ["flex", "cpu", "tch", "tch-cuda:0"] {
            assert_eq!(
                Interconnect::for_device_name(name),
                Interconnect::Host,
                "{name}"
            );
        }
        let group = LocalGroup::new(3);
        let ranks = Interconnect::Host.ranks(&group, &[]).unwrap();
        let numbers: Vec<usize> = ranks.iter().map(|rank| rank.rank()).collect();
        assert_eq!(numbers, [0, 1, 2]);
        for mut rank in ranks {
            rank.finish();
        }
    }
}
