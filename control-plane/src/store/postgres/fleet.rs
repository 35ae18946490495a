//! PostgreSQL's fleet-control queries: the shared ones (`store/shared/fleet.rs`).

crate::store::shared::fleet::fleet_queries!(sqlx::PgPool);
