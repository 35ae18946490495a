//! kiln's control plane: the task queue and record, the runner fleet, and the operator CLI.

pub mod api_types;
pub mod assignment;
pub mod cli;
pub mod data_dir;
pub mod dev;
pub mod dispatcher;
pub mod engine;
pub mod file_requests;
pub mod hub;
pub mod liveness;
pub mod metrics;
pub mod model;
pub mod overdue;
pub mod placing;
pub mod replicas;
pub mod retention;
pub mod sandbox;
pub mod scheduler;
pub mod serve;
pub mod server;
pub mod store;
pub mod task_input;
#[doc(hidden)]
pub mod testing;
pub mod tokens;
pub mod watchers;
