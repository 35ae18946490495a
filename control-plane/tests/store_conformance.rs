//! The store conformance suite: every case in `store/cases.rs` runs against each backend
//! (SQLite here; a new backend adds one `backend!` line).

#![expect(
    clippy::unwrap_used,
    reason = "conformance cases are test code outside #[test] fns: a failed call fails the case"
)]

#[path = "store/cases.rs"]
mod cases;
#[path = "store/fixtures.rs"]
mod fixtures;

use kiln_control_plane::store::SqliteStore;

/// A fresh SQLite store in a temp dir (kept alive by the returned guard).
async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("kiln.db"))
        .await
        .unwrap();
    (dir, store)
}

macro_rules! backend {
    ($backend:ident, $open:path: $($case:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let (_guard, store) = $open().await;
                    super::cases::$case(&store).await;
                }
            )+
        }
    };
}

backend!(sqlite_backend, super::sqlite:
    tasks_round_trip_and_list_newest_first_with_filters,
    the_queue_is_by_priority_then_age,
    registration_tokens_spend_their_uses_and_expire,
    an_attempt_runs_streams_idempotently_and_finishes_the_task,
    rejected_and_lost_attempts_requeue_until_attempts_run_out,
    cancel_and_retry_follow_the_task_state,
    retention_prunes_only_old_finished_tasks,
    runners_are_touched_paused_and_revoked,
    a_batch_of_tasks_is_stored_all_or_none,
);
