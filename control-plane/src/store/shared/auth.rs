//! Token and runner queries written once for both backends (`$N` placeholders;
//! `ON CONFLICT DO NOTHING`, which both accept); registering a runner stays in each backend,
//! which locks the registration token its own way.

/// The shared token and runner queries over the pool type `$pool`.
macro_rules! auth_queries {
    ($pool:ty) => {
        pub async fn has_admin_token(pool: &$pool) -> Result<bool, crate::store::StoreError> {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_tokens")
                .fetch_one(pool)
                .await?;
            Ok(count > 0)
        }

        pub async fn add_admin_token(
            pool: &$pool,
            hash: &crate::tokens::TokenHash,
            now: kiln_protocol::UnixMillis,
        ) -> Result<(), crate::store::StoreError> {
            sqlx::query(
                "INSERT INTO admin_tokens (token_hash, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&hash.0)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        }

        pub async fn is_admin_token(pool: &$pool, hash: &crate::tokens::TokenHash) -> Result<bool, crate::store::StoreError> {
            let found: Option<String> =
                sqlx::query_scalar("SELECT token_hash FROM admin_tokens WHERE token_hash = $1")
                    .bind(&hash.0)
                    .fetch_optional(pool)
                    .await?;
            Ok(found.is_some_and(|stored| crate::tokens::TokenHash(stored).matches(hash)))
        }

        pub async fn create_registration_token(
            pool: &$pool,
            record: &crate::model::RegistrationTokenRecord,
            hash: &crate::tokens::TokenHash,
        ) -> Result<(), crate::store::StoreError> {
            sqlx::query(
                "INSERT INTO registration_tokens (id, token_hash, uses_left, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5)
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

        pub async fn runner_by_token(
            pool: &$pool,
            hash: &crate::tokens::TokenHash,
        ) -> Result<Option<crate::model::RunnerRecord>, crate::store::StoreError> {
            let row =
                sqlx::query("SELECT * FROM runners WHERE token_hash = $1 OR previous_token_hash = $1")
                    .bind(&hash.0)
                    .fetch_optional(pool)
                    .await?;
            row.as_ref().map(crate::store::rows::runner).transpose()
        }

        pub async fn announce_runner(
            pool: &$pool,
            id: kiln_protocol::RunnerId,
            announcement: &crate::model::RunnerAnnouncement,
            now: kiln_protocol::UnixMillis,
        ) -> Result<(), crate::store::StoreError> {
            sqlx::query(
                "UPDATE runners SET name = $1, max_concurrent = $2, version = $3, last_seen_at = $4
                 WHERE id = $5",
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

        pub async fn runners(pool: &$pool) -> Result<Vec<crate::model::RunnerRecord>, crate::store::StoreError> {
            let found = sqlx::query("SELECT * FROM runners ORDER BY created_at, id")
                .fetch_all(pool)
                .await?;
            found.iter().map(crate::store::rows::runner).collect()
        }
    };
}

pub(crate) use auth_queries;
