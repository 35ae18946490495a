//! Cases for an agent's rate-limit wait: the runner's status events set and clear when the
//! attempt's agent waits, so `kiln task` can say so.

use kiln_control_plane::store::Store;
use kiln_protocol::{Event, EventBody, Phase};

use super::fixtures::{finished, line, runner, task};

fn status(seq: u64, phase: Phase, until: Option<i64>) -> Event {
    Event {
        seq,
        ts: 10,
        body: EventBody::Status { phase, until },
    }
}

pub async fn a_rate_limit_wait_is_kept_on_the_attempt_until_the_agent_runs_again(
    store: &dyn Store,
) {
    let worker = runner(store, "worker").await;
    let t = task("r", 100);
    store.insert_task(&t).await.unwrap();
    store.assign(&[(t.id, worker.id)], 110).await.unwrap();
    store.start_attempt(t.id, 1, worker.id, 120).await.unwrap();
    let waiting = vec![
        status(1, Phase::Running, None),
        status(2, Phase::RateLimited, Some(90_000)),
        line(3, "waiting"),
    ];
    store
        .append_events(t.id, 1, worker.id, waiting, 1 << 20, 130)
        .await
        .unwrap();
    assert_eq!(until(store, t.id).await, Some(90_000));
    store
        .append_events(t.id, 1, worker.id, vec![line(4, "still")], 1 << 20, 131)
        .await
        .unwrap();
    assert_eq!(
        until(store, t.id).await,
        Some(90_000),
        "a log line changes nothing"
    );
    let resumed = vec![status(5, Phase::Running, None)];
    store
        .append_events(t.id, 1, worker.id, resumed, 1 << 20, 132)
        .await
        .unwrap();
    assert_eq!(until(store, t.id).await, None);
    let again = vec![status(6, Phase::RateLimited, Some(95_000)), finished(7)];
    store
        .append_events(t.id, 1, worker.id, again, 1 << 20, 133)
        .await
        .unwrap();
    assert_eq!(
        until(store, t.id).await,
        None,
        "a finished attempt waits for nothing"
    );
}

async fn until(store: &dyn Store, task: kiln_protocol::TaskId) -> Option<i64> {
    store.attempts(task).await.unwrap()[0].rate_limited_until
}
