//! Workspace-session queries written once for both backends (`$N` placeholders); ending a
//! session stays in each backend, which locks and notifies its own way.

/// The shared workspace-session queries over the pool type `$pool`.
macro_rules! workspace_queries {
    ($pool:ty) => {
        pub async fn create_workspace(pool: &$pool, record: &crate::model::WorkspaceRecord) -> Result<(), crate::store::StoreError> {
            sqlx::query(
                "INSERT INTO workspaces (id, repo, base_ref, branch, setup, runner_id, state, created_at, closed_at)
                 VALUES ($1, $2, $3, $4, $5, NULL, 'open', $6, NULL)",
            )
            .bind(record.id.to_string())
            .bind(&record.repo)
            .bind(&record.base_ref)
            .bind(&record.branch)
            .bind(crate::store::rows::to_json(&record.setup))
            .bind(record.created_at)
            .execute(pool)
            .await?;
            Ok(())
        }

        pub async fn workspace(
            pool: &$pool,
            id: kiln_protocol::WorkspaceId,
        ) -> Result<Option<crate::model::WorkspaceRecord>, crate::store::StoreError> {
            let row = sqlx::query("SELECT * FROM workspaces WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(crate::store::rows::workspace).transpose()
        }

        pub async fn open_workspaces_of(
            pool: &$pool,
            runner: kiln_protocol::RunnerId,
        ) -> Result<Vec<crate::model::WorkspaceRecord>, crate::store::StoreError> {
            let found = sqlx::query("SELECT * FROM workspaces WHERE runner_id = $1 AND state = 'open'")
                .bind(runner.to_string())
                .fetch_all(pool)
                .await?;
            found.iter().map(crate::store::rows::workspace).collect()
        }

        pub async fn busy_workspaces(pool: &$pool) -> Result<Vec<kiln_protocol::WorkspaceId>, crate::store::StoreError> {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT workspace_id FROM tasks
                 WHERE workspace_id IS NOT NULL AND state IN ('assigned', 'running')",
            )
            .fetch_all(pool)
            .await?;
            ids.iter()
                .map(|id| {
                    id.parse().map_err(|e: uuid::Error| crate::store::StoreError::Corrupt {
                        table: "tasks",
                        detail: format!("workspace_id {id:?}: {e}"),
                    })
                })
                .collect()
        }
    };
}

pub(crate) use workspace_queries;
