//! Notifications between replicas: a write that another replica must act on sends a
//! PostgreSQL NOTIFY inside its transaction, so it is delivered exactly when (and only if)
//! the write commits. Each replica LISTENs (see `crate::replicas`).

use kiln_protocol::TaskId;
use sqlx::PgConnection;

use crate::store::StoreError;

/// A task was queued (submitted, retried, or given back by a runner): dispatchers look at
/// the queue. No payload: identical notifications of one transaction are merged.
pub const QUEUE: &str = "kiln_queue";

/// A task changed: events were stored, or its state or attempt changed. The payload is
/// `ORIGIN TASK_ID`: log followers on every other replica read on from the store (this
/// replica's followers were told from memory already).
pub const TASK: &str = "kiln_task";

/// This process's name in notifications, so that it can skip its own.
static ORIGIN: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| uuid::Uuid::now_v7().simple().to_string());

/// This process's name in notifications.
pub fn origin() -> &'static str {
    &ORIGIN
}

/// An operator's control of a runner that may be connected to another replica; the
/// payload is a `replicas::RunnerControl` as JSON. The replica holding the runner's socket
/// carries it out.
pub const RUNNER: &str = "kiln_runner";

/// Tells every replica, when the transaction commits, that the queue changed.
pub async fn queue_changed(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(QUEUE)
        .execute(conn)
        .await?;
    Ok(())
}

/// Tells every replica, when the transaction commits, that a task changed.
pub async fn task_changed(conn: &mut PgConnection, task: TaskId) -> Result<(), StoreError> {
    tasks_changed(conn, &[task.to_string()]).await
}

/// Tells every replica, when the transaction commits, that these tasks changed.
pub async fn tasks_changed(conn: &mut PgConnection, tasks: &[String]) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2 || ' ' || id) FROM unnest($3::TEXT[]) AS id")
        .bind(TASK)
        .bind(origin())
        .bind(tasks)
        .execute(conn)
        .await?;
    Ok(())
}
