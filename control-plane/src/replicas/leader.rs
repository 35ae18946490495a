//! Leadership among replicas: the replica holding a PostgreSQL advisory lock (on a
//! connection of its own, so the lock goes when the replica dies) runs the fleet-wide
//! duties: the sweep for runners no replica has heard from, and the sandbox TTL reaper
//! (every sandbox past its TTL, whichever replica forged it, dead or alive).
//!
//! A single control plane's start-up reaper also burns sandboxes whose box it cannot find;
//! replicas do not: another replica's boxes may live on another Docker engine, out of
//! sight. A box whose replica died ends itself at its TTL, and the leader burns its record.
//!
//! Each duty's effect is also a conditional write (an attempt is lost only while open, a
//! sandbox ends only while live), so a leader that has just lost its lock and still
//! sweeps once more cannot make anything happen twice.

use std::time::Duration;

use sqlx::{Connection as _, PgConnection};

use crate::engine::Engine;
use crate::sandbox::manager::BurnReason;
use crate::store::StoreError;

/// The advisory lock's key: "kiln" in ASCII, unlikely to collide with another
/// application's lock on a shared server.
const LEADER_LOCK: i64 = 0x6b69_6c6e;

/// Time between attempts to become leader: how long the fleet goes without a leader after
/// one dies (plus the time PostgreSQL takes to notice its connection dropped).
const CAMPAIGN_EVERY: Duration = Duration::from_secs(2);

/// Fewest and most time between sweeps: a quarter of `lost_after` (so a runner is declared
/// lost at most 25% late), within these bounds; at most 5 s so that a sandbox is burned at
/// most 5 s after its TTL. A sweep is two indexed queries.
const MIN_SWEEP_EVERY: Duration = Duration::from_millis(250);
const MAX_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Campaigns until shutdown; leads while it holds the lock.
pub async fn run(state: Engine, url: String) {
    // One connection campaigns until it wins (then it holds the lock) or fails.
    let mut campaigner = None;
    loop {
        match campaign(&url, &mut campaigner).await {
            Ok(Some(conn)) => {
                tracing::info!(
                    "this replica leads: it sweeps for lost runners and reaps sandboxes"
                );
                lead(&state, conn).await;
                tracing::warn!("this replica no longer leads");
            }
            Ok(None) => {}
            Err(error) => {
                campaigner = None;
                tracing::warn!(error = %error, "cannot campaign to lead");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(CAMPAIGN_EVERY) => {}
            () = state.shutdown.cancelled() => return,
        }
    }
}

/// The connection, now holding the leader lock, or `None` if another replica holds it
/// (the connection stays in `campaigner` for the next try).
async fn campaign(
    url: &str,
    campaigner: &mut Option<PgConnection>,
) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut conn = match campaigner.take() {
        Some(conn) => conn,
        None => PgConnection::connect(url).await?,
    };
    let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LEADER_LOCK)
        .fetch_one(&mut conn)
        .await?;
    if won {
        return Ok(Some(conn));
    }
    *campaigner = Some(conn);
    Ok(None)
}

/// Runs the duties until the lock's connection fails or the server shuts down.
async fn lead(state: &Engine, mut conn: PgConnection) {
    let every = (state.settings.lost_after / 4).clamp(MIN_SWEEP_EVERY, MAX_SWEEP_EVERY);
    let mut sweeps = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = sweeps.tick() => {}
            () = state.shutdown.cancelled() => return,
        }
        // Still holding the lock is still having its connection.
        if let Err(error) = conn.ping().await {
            tracing::warn!(error = %error, "lost the leader lock's connection");
            return;
        }
        if let Err(error) = sweep(state).await {
            tracing::error!(error = %error, "sweep for lost runners failed");
        }
        if let Err(error) = expire_sandboxes(state).await {
            tracing::error!(error = %error, "sweep for expired sandboxes failed");
        }
    }
}

/// Declares lost the runners that hold open attempts and that no replica has heard from
/// for `lost_after`: those whose replica died and that did not come back to another.
async fn sweep(state: &Engine) -> Result<(), StoreError> {
    let silent_since = kiln_protocol::millis_ago(state.settings.lost_after);
    for runner in state
        .store
        .silent_runners_with_open_attempts(silent_since)
        .await?
    {
        if state.hub.live(runner).is_some() {
            continue;
        }
        tracing::warn!(%runner, "no replica has heard from this runner; its attempts are lost");
        crate::liveness::declare_lost(state, runner).await?;
    }
    Ok(())
}

/// Burns every live sandbox past its TTL. The replica that forged a sandbox burns it at its
/// TTL too; whichever is first ends it (a conditional write), the other does nothing.
async fn expire_sandboxes(state: &Engine) -> Result<(), StoreError> {
    let Some(sandboxes) = &state.sandboxes else {
        return Ok(());
    };
    let now = kiln_protocol::now_millis();
    for sandbox in state.store.live_sandboxes().await? {
        if sandbox.expires_at <= now {
            sandboxes
                .burn(state, sandbox.id, BurnReason::Expired)
                .await?;
        }
    }
    Ok(())
}
