//! SQLite queries for tokens and runners: the shared ones (`store/shared/auth.rs`) and
//! registering a runner, which is SQLite's own.

use kiln_protocol::UnixMillis;
use sqlx::SqlitePool;

use crate::model::RunnerRecord;
use crate::store::rows::to_json;
use crate::store::{NewRunner, RegistrationRefusal, StoreError};
use crate::tokens::TokenHash;

crate::store::shared::auth::auth_queries!(sqlx::SqlitePool);

pub async fn register_runner(
    pool: &SqlitePool,
    registration: &TokenHash,
    runner: NewRunner,
    now: UnixMillis,
) -> Result<Result<RunnerRecord, RegistrationRefusal>, StoreError> {
    let mut tx = pool.begin().await?;
    let token: Option<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT id, uses_left, expires_at FROM registration_tokens WHERE token_hash = ?",
    )
    .bind(&registration.0)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((token_id, uses_left, expires_at)) = token else {
        return Ok(Err(RegistrationRefusal::Unknown));
    };
    if expires_at.is_some_and(|at| at <= now) {
        return Ok(Err(RegistrationRefusal::Expired));
    }
    match uses_left {
        Some(uses) if uses <= 0 => return Ok(Err(RegistrationRefusal::UsedUp)),
        Some(_) => {
            sqlx::query("UPDATE registration_tokens SET uses_left = uses_left - 1 WHERE id = ?")
                .bind(&token_id)
                .execute(&mut *tx)
                .await?;
        }
        None => {}
    }
    let record = runner.record;
    sqlx::query(
        "INSERT INTO runners (id, name, token_hash, capabilities, labels, max_concurrent,
                              version, created_at, last_seen_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
    )
    .bind(record.id.to_string())
    .bind(&record.name)
    .bind(&runner.token_hash.0)
    .bind(to_json(&record.capabilities))
    .bind(to_json(&record.labels))
    .bind(i64::from(record.max_concurrent))
    .bind(&record.version)
    .bind(record.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Ok(record))
}
