//! Queries written once for both backends, where their SQL dialects agree. Each backend
//! expands them over its own pool; what really differs (row locks, NOTIFY, the SQLite
//! writer thread and its hot writes) stays in the backend.

pub mod auth;
pub mod fleet;
pub mod retention;
pub mod workspaces;
