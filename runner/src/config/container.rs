//! runner.yaml `container:`: the limits of agent containers (the docker executor).

use kiln_protocol::validate;
use serde::Deserialize;

use super::{values, ConfigError};
use crate::attempt::container::ContainerLimits;

/// runner.yaml `container:`: limits of agent containers (the docker executor).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSection {
    memory: Option<String>,
    cpus: Option<f64>,
    pids: Option<u32>,
    network: Option<String>,
}

/// The limits, defaults filled in; an unacceptable value names its key.
pub fn limits(section: &ContainerSection) -> Result<ContainerLimits, ConfigError> {
    let defaults = ContainerLimits::default();
    let memory_bytes = values::size("container.memory", section.memory.as_deref())?
        .unwrap_or(defaults.memory_bytes);
    let cpus = section.cpus.unwrap_or(defaults.cpus);
    if !(cpus.is_finite() && cpus > 0.0) {
        return Err(ConfigError::Invalid {
            key: "container.cpus",
            reason: format!("is {cpus}; it must be a positive number"),
        });
    }
    let pids = section.pids.unwrap_or(defaults.pids);
    if pids == 0 {
        return Err(ConfigError::Invalid {
            key: "container.pids",
            reason: "is 0; it must be at least 1".into(),
        });
    }
    let network = section.network.clone().unwrap_or(defaults.network);
    validate::image(&network).map_err(|reason| ConfigError::Invalid {
        key: "container.network",
        reason,
    })?;
    Ok(ContainerLimits {
        memory_bytes,
        cpus,
        pids,
        network,
    })
}
