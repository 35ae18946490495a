//! The store conformance suite: every case in `store/cases.rs` runs against each backend,
//! SQLite and a real PostgreSQL server (a new backend adds one `backend!` line).

#![expect(
    clippy::unwrap_used,
    reason = "conformance cases are test code outside #[test] fns: a failed call fails the case"
)]

#[path = "store/cases.rs"]
mod cases;
#[path = "store/ended.rs"]
mod ended;
#[path = "store/fixtures.rs"]
mod fixtures;
#[path = "store/placing.rs"]
mod placing;
#[path = "store/races.rs"]
mod races;
#[path = "store/rate_limits.rs"]
mod rate_limits;
#[path = "store/sessions.rs"]
mod sessions;

use kiln_control_plane::store::{PostgresStore, SqliteStore};
use kiln_control_plane::testing::postgres::TestPostgres;

/// A fresh SQLite store in a temp dir (kept alive by the returned guard).
async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("kiln.db"))
        .await
        .unwrap();
    (dir, store)
}

/// A fresh database on a throwaway PostgreSQL server (stopped when the guard drops).
async fn postgres() -> (TestPostgres, PostgresStore) {
    let server = TestPostgres::start();
    let store = PostgresStore::open(&server.fresh_database().await)
        .await
        .unwrap();
    (server, store)
}

/// Every case, whichever file holds it.
mod all {
    pub use super::cases::*;
    pub use super::ended::*;
    pub use super::placing::*;
    pub use super::races::*;
    pub use super::rate_limits::*;
    pub use super::sessions::*;
}

/// Runs every case against the backend that `$open` makes, in module `$backend`.
macro_rules! backend {
    ($backend:ident, $open:path) => {
        mod $backend {
            cases!($open:
                tasks_round_trip_and_list_newest_first_with_filters,
                the_queue_is_by_priority_then_age,
                registration_tokens_spend_their_uses_and_expire,
                an_attempt_runs_streams_idempotently_and_finishes_the_task,
                rejected_and_lost_attempts_requeue_until_attempts_run_out,
                cancel_and_retry_follow_the_task_state,
                retention_prunes_only_old_finished_tasks,
                runners_are_touched_paused_and_revoked,
                a_batch_of_tasks_is_stored_all_or_none,
                workspaces_bind_to_their_first_runner_and_end_their_queue,
                sandboxes_forge_and_burn_with_their_runner,
                racing_assignments_give_each_task_once,
                racing_appends_store_each_event_once,
                racing_placements_in_one_session_assign_one_task,
                ending_a_task_as_its_runner_finishes_it_ends_it_once,
                a_task_is_assigned_as_it_is_stored_only_when_nothing_queued_goes_first,
                a_session_task_is_assigned_as_it_is_stored_only_when_its_session_is_free,
                an_attempt_that_reported_accepts_no_more_events_or_uploads,
                a_lost_attempt_keeps_its_late_lines_but_takes_no_upload_or_second_report,
                a_task_no_runner_takes_ends_after_five_untaken_assignments,
                the_write_probe_writes_again_and_again,
                a_rate_limit_wait_is_kept_on_the_attempt_until_the_agent_runs_again,
            );
        }
    };
}

/// One `#[tokio::test]` per case.
macro_rules! cases {
    ($open:path: $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (_guard, store) = $open().await;
                super::all::$case(&store).await;
            }
        )+
    };
}

backend!(sqlite_backend, super::sqlite);
backend!(postgres_backend, super::postgres);
