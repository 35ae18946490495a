//! The engine's error: a request it refuses, or the store failing. The web layer maps it to
//! `ApiError` (a refusal is a bad request; store errors keep their own mapping).

/// Why the engine did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request cannot be carried out as asked; the text names the field or value.
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
