//! Fleet-control queries (one runner, pause, pending drain, revoke, token rotation, tags)
//! written once for both backends: the SQL uses `$N` placeholders, which SQLite reads as
//! numbered parameters too, and each backend expands [`fleet_queries`] over its pool.

/// The fleet-control queries over the pool type `$pool`.
macro_rules! fleet_queries {
    ($pool:ty) => {
        pub async fn runner(pool: &$pool, id: kiln_protocol::RunnerId) -> Result<Option<crate::model::RunnerRecord>, crate::store::StoreError> {
            let row = sqlx::query("SELECT * FROM runners WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(crate::store::rows::runner).transpose()
        }

        pub async fn set_paused(
            pool: &$pool,
            id: kiln_protocol::RunnerId,
            paused_at: Option<kiln_protocol::UnixMillis>,
        ) -> Result<bool, crate::store::StoreError> {
            let updated = sqlx::query("UPDATE runners SET paused_at = $1 WHERE id = $2")
                .bind(paused_at)
                .bind(id.to_string())
                .execute(pool)
                .await?;
            Ok(updated.rows_affected() == 1)
        }

        pub async fn set_drain_requested(
            pool: &$pool,
            id: kiln_protocol::RunnerId,
            at: Option<kiln_protocol::UnixMillis>,
        ) -> Result<bool, crate::store::StoreError> {
            let updated = sqlx::query("UPDATE runners SET drain_requested_at = $1 WHERE id = $2")
                .bind(at)
                .bind(id.to_string())
                .execute(pool)
                .await?;
            Ok(updated.rows_affected() == 1)
        }

        pub async fn revoke_runner(
            pool: &$pool,
            id: kiln_protocol::RunnerId,
            now: kiln_protocol::UnixMillis,
        ) -> Result<bool, crate::store::StoreError> {
            let updated =
                sqlx::query("UPDATE runners SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                    .bind(now)
                    .bind(id.to_string())
                    .execute(pool)
                    .await?;
            Ok(updated.rows_affected() == 1)
        }

        pub async fn request_rotation(
            pool: &$pool,
            id: kiln_protocol::RunnerId,
            now: kiln_protocol::UnixMillis,
        ) -> Result<bool, crate::store::StoreError> {
            let updated = sqlx::query(
                "UPDATE runners SET rotation_requested_at = COALESCE(rotation_requested_at, $1) WHERE id = $2",
            )
            .bind(now)
            .bind(id.to_string())
            .execute(pool)
            .await?;
            Ok(updated.rows_affected() == 1)
        }

        pub async fn rotate_token(
            pool: &$pool,
            id: kiln_protocol::RunnerId,
            new_hash: &crate::tokens::TokenHash,
        ) -> Result<(), crate::store::StoreError> {
            // The token the runner held before the first unconfirmed rotation stays valid.
            sqlx::query(
                "UPDATE runners SET previous_token_hash = COALESCE(previous_token_hash, token_hash), token_hash = $1
                 WHERE id = $2",
            )
            .bind(&new_hash.0)
            .bind(id.to_string())
            .execute(pool)
            .await?;
            Ok(())
        }

        pub async fn confirm_rotation(pool: &$pool, id: kiln_protocol::RunnerId) -> Result<(), crate::store::StoreError> {
            sqlx::query(
                "UPDATE runners SET previous_token_hash = NULL, rotation_requested_at = NULL WHERE id = $1",
            )
            .bind(id.to_string())
            .execute(pool)
            .await?;
            Ok(())
        }

        pub async fn runners_under_control(
            pool: &$pool,
            revoked_since: kiln_protocol::UnixMillis,
        ) -> Result<Vec<crate::model::RunnerRecord>, crate::store::StoreError> {
            let found = sqlx::query(
                "SELECT * FROM runners
                 WHERE drain_requested_at IS NOT NULL OR paused_at IS NOT NULL OR revoked_at > $1
                 ORDER BY id",
            )
            .bind(revoked_since)
            .fetch_all(pool)
            .await?;
            found.iter().map(crate::store::rows::runner).collect()
        }

        pub async fn set_runner_tags(
            pool: &$pool,
            id: kiln_protocol::RunnerId,
            capabilities: &[String],
            labels: &std::collections::BTreeMap<String, String>,
        ) -> Result<bool, crate::store::StoreError> {
            let updated = sqlx::query("UPDATE runners SET capabilities = $1, labels = $2 WHERE id = $3")
                .bind(crate::store::rows::to_json(&capabilities))
                .bind(crate::store::rows::to_json(labels))
                .bind(id.to_string())
                .execute(pool)
                .await?;
            Ok(updated.rows_affected() == 1)
        }
    };
}

pub(crate) use fleet_queries;
