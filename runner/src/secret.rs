//! A secret string (a token) that never shows itself in `Debug` or logs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A token or other secret. Only `expose` reveals it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The runner's token as of now: shared by the connection and uploads, replaced in place
/// when the control plane rotates it.
#[derive(Clone, Debug)]
pub struct CurrentToken(std::sync::Arc<std::sync::RwLock<Secret>>);

impl CurrentToken {
    /// Starts with `token`.
    pub fn new(token: Secret) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(token)))
    }

    /// The token to present now.
    pub fn get(&self) -> Secret {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the token.
    pub fn set(&self, token: Secret) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = token;
    }
}
