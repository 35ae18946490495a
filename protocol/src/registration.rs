//! The HTTP exchange that turns a registration token into a runner identity.
//!
//! `POST /v1/runners/register` with `Authorization: Bearer <registration token>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::RunnerId;

/// Body of a registration request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// Human name of the runner, such as its hostname.
    pub name: String,
    /// Capabilities the runner offers; tasks may require them.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Free-form key/value labels; tasks may select on them.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How many tasks the runner runs at once.
    pub max_concurrent: u32,
}

/// Answer to a successful registration. The token is shown only this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The runner's new id.
    pub runner_id: RunnerId,
    /// The runner's long-lived token (`kiln_rnr_...`).
    pub runner_token: String,
}
