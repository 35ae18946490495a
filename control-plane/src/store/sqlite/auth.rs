//! SQLite queries for admin tokens, registration tokens and runners.

use kiln_protocol::{RunnerId, UnixMillis};
use sqlx::SqlitePool;

use crate::model::{RegistrationTokenRecord, RunnerAnnouncement, RunnerRecord};
use crate::store::rows::{self, to_json};
use crate::store::{NewRunner, RegistrationRefusal, StoreError};
use crate::tokens::TokenHash;

pub async fn has_admin_token(pool: &SqlitePool) -> Result<bool, StoreError> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_tokens")
        .fetch_one(pool)
        .await?;
    Ok(count > 0)
}

pub async fn add_admin_token(
    pool: &SqlitePool,
    hash: &TokenHash,
    now: UnixMillis,
) -> Result<(), StoreError> {
    sqlx::query("INSERT OR IGNORE INTO admin_tokens (token_hash, created_at) VALUES (?, ?)")
        .bind(&hash.0)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn is_admin_token(pool: &SqlitePool, hash: &TokenHash) -> Result<bool, StoreError> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT token_hash FROM admin_tokens WHERE token_hash = ?")
            .bind(&hash.0)
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some_and(|stored| TokenHash(stored).matches(hash)))
}

pub async fn create_registration_token(
    pool: &SqlitePool,
    record: &RegistrationTokenRecord,
    hash: &TokenHash,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO registration_tokens (id, token_hash, uses_left, expires_at, created_at)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (token_hash) DO NOTHING",
    )
    .bind(&record.id)
    .bind(&hash.0)
    .bind(record.uses_left.map(i64::from))
    .bind(record.expires_at)
    .bind(record.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

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

pub async fn runner_by_token(
    pool: &SqlitePool,
    hash: &TokenHash,
) -> Result<Option<RunnerRecord>, StoreError> {
    let row =
        sqlx::query("SELECT * FROM runners WHERE token_hash = ?1 OR previous_token_hash = ?1")
            .bind(&hash.0)
            .fetch_optional(pool)
            .await?;
    row.as_ref().map(rows::runner).transpose()
}

pub async fn announce_runner(
    pool: &SqlitePool,
    id: RunnerId,
    announcement: &RunnerAnnouncement,
    now: UnixMillis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE runners SET name = ?, max_concurrent = ?, version = ?, last_seen_at = ?
         WHERE id = ?",
    )
    .bind(&announcement.name)
    .bind(i64::from(announcement.max_concurrent))
    .bind(&announcement.version)
    .bind(now)
    .bind(id.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn runners(pool: &SqlitePool) -> Result<Vec<RunnerRecord>, StoreError> {
    let found = sqlx::query("SELECT * FROM runners ORDER BY created_at, id")
        .fetch_all(pool)
        .await?;
    found.iter().map(rows::runner).collect()
}
