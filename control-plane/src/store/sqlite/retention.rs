//! SQLite's retention query (`store/shared/retention.rs`).

crate::store::shared::retention::retention_queries!(
    sqlx::SqlitePool,
    skip_locked: "",
    total_size: "SUM(LENGTH(data))"
);
