//! PostgreSQL's retention query (`store/shared/retention.rs`): rows another replica holds
//! are skipped.

crate::store::shared::retention::retention_queries!(
    sqlx::PgPool,
    skip_locked: "FOR UPDATE SKIP LOCKED",
    total_size: "SUM(octet_length(data))::BIGINT"
);
