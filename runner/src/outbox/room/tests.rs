//! Room: agents wait on a connected control plane's acks, never on an absent one.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use kiln_protocol::{EventBody, LogLine, TaskId};
use tokio::task::JoinHandle;

use super::*;

/// Longest wait for a wake-up that must come.
const WAKE_DEADLINE: Duration = Duration::from_secs(5);

fn fill(outbox: &Outbox, key: AttemptKey, count: usize) {
    for i in 0..count {
        outbox.push(key, EventBody::Log(LogLine::system(format!("line {i}"))));
    }
}

#[test]
fn while_connected_an_attempt_at_the_bound_has_no_room_until_an_ack() {
    let outbox = Outbox::default();
    let _link = outbox.link_up();
    let key = (TaskId::new(), 1);
    fill(&outbox, key, ROOM_EVENTS - 1);
    assert!(outbox.has_room(key));
    fill(&outbox, key, 1);
    assert!(!outbox.has_room(key));
    assert!(
        outbox.has_room((TaskId::new(), 1)),
        "other attempts are not held"
    );
    assert!(outbox.room(key).now_or_never().is_none());

    let sent = outbox.take_unsent(1);
    let last = sent[0].events.last().expect("a batch").seq;
    outbox.ack(key, last);
    assert!(outbox.has_room(key));
    assert!(outbox.room(key).now_or_never().is_some());
}

#[test]
fn while_disconnected_nothing_waits() {
    let outbox = Outbox::default();
    let key = (TaskId::new(), 1);
    fill(&outbox, key, ROOM_EVENTS + 10);
    assert!(outbox.has_room(key));
    let link = outbox.link_up();
    assert!(!outbox.has_room(key));
    drop(link);
    assert!(outbox.has_room(key));
}

/// An agent waiting for room in `outbox`, checked to be blocked.
async fn blocked_waiter(outbox: &Arc<Outbox>, key: AttemptKey) -> JoinHandle<()> {
    let waiting = tokio::spawn({
        let outbox = Arc::clone(outbox);
        async move { outbox.room(key).await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "no room: the agent waits");
    waiting
}

async fn wait_woken(waiting: JoinHandle<()>, by: &str) {
    tokio::time::timeout(WAKE_DEADLINE, waiting)
        .await
        .unwrap_or_else(|_| panic!("not woken by {by}"))
        .expect("joined");
}

#[tokio::test]
async fn a_waiting_agent_wakes_when_an_ack_makes_room_or_the_link_drops() {
    let outbox = Arc::new(Outbox::default());
    let key = (TaskId::new(), 1);
    let link = outbox.link_up();
    fill(&outbox, key, ROOM_EVENTS);
    let waiting = blocked_waiter(&outbox, key).await;
    let last = outbox.take_unsent(1)[0].events.last().expect("a batch").seq;
    outbox.ack(key, last);
    wait_woken(waiting, "the ack").await;

    fill(&outbox, key, ROOM_EVENTS);
    let waiting = blocked_waiter(&outbox, key).await;
    drop(link);
    wait_woken(waiting, "the link going down").await;
}
