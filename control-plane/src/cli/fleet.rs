//! `kiln runners [drain|pause|resume|revoke|rotate|update]` and `kiln token create`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use super::client::ApiClient;
use super::{render, RunnersArgs, RunnersCommand, TokenCreateArgs};
use crate::api_types::{
    CreateRegistrationToken, DrainRequest, RegistrationTokenCreated, RunnerView, UpdateRunner,
};
use crate::model::RunnerRecord;

/// `kiln runners ...`.
pub async fn runners(
    client: &ApiClient,
    args: RunnersArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (id, action, body) = match args.action {
        None => return list(client, json).await,
        Some(RunnersCommand::Drain { id, deadline }) => {
            let deadline_ms = deadline.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            (
                id,
                "drain",
                serde_json::to_value(DrainRequest { deadline_ms })?,
            )
        }
        Some(RunnersCommand::Pause { id }) => (id, "pause", serde_json::Value::Null),
        Some(RunnersCommand::Resume { id }) => (id, "resume", serde_json::Value::Null),
        Some(RunnersCommand::Revoke { id }) => (id, "revoke", serde_json::Value::Null),
        Some(RunnersCommand::Rotate { id }) => (id, "rotate", serde_json::Value::Null),
        Some(RunnersCommand::Update {
            id,
            capabilities,
            no_capabilities,
            labels,
            no_labels,
        }) => {
            let update = UpdateRunner {
                capabilities: (no_capabilities || !capabilities.is_empty()).then_some(capabilities),
                labels: match (no_labels, labels.is_empty()) {
                    (true, _) => Some(BTreeMap::new()),
                    (false, true) => None,
                    (false, false) => Some(label_pairs(&labels)?),
                },
            };
            (id, "update", serde_json::to_value(update)?)
        }
    };
    let runner: RunnerRecord = client
        .post(&format!("/v1/runners/{id}/{action}"), &body)
        .await?;
    if json {
        println!("{}", serde_json::to_string(&runner)?);
    } else {
        let done = match action {
            "drain" => "is draining: it takes no new work and exits when its tasks end",
            "pause" => "is paused: it takes no new work",
            "resume" => "is resumed",
            "rotate" => "gets a new token (now if connected, else when it next connects)",
            "update" => "is placed by its new capabilities and labels",
            _ => "is revoked: its token is refused and its connection closed",
        };
        println!("runner {} ({}) {done}", runner.id, runner.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// `KEY=VALUE` items as a map, naming the item that has no `=`.
fn label_pairs(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
            None => Err(super::exit::Exit::with(
                super::exit::USAGE,
                format!("--label {item:?} is not KEY=VALUE"),
            )),
        })
        .collect()
}

async fn list(client: &ApiClient, json: bool) -> anyhow::Result<ExitCode> {
    let runners: Vec<RunnerView> = client.get("/v1/runners").await?;
    if json {
        println!("{}", serde_json::to_string(&runners)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = runners
        .iter()
        .map(|r| {
            let labels: Vec<String> = r
                .runner
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            vec![
                r.runner.id.to_string(),
                r.runner.name.clone(),
                serde_json::to_value(r.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                format!("{}/{}", r.running, r.runner.max_concurrent),
                r.runner.capabilities.join(","),
                labels.join(","),
                r.cached_projects.len().to_string(),
                render::ago(r.runner.last_seen_at),
                r.runner.version.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    render::table(
        &[
            "ID",
            "NAME",
            "STATE",
            "RUNNING",
            "CAPABILITIES",
            "LABELS",
            "MIRRORS",
            "LAST SEEN",
            "VERSION",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// `kiln token create`.
pub async fn token_create(
    client: &ApiClient,
    args: TokenCreateArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let request = CreateRegistrationToken {
        uses: args.uses,
        ttl_ms: args
            .ttl
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    };
    let created: RegistrationTokenCreated =
        client.post("/v1/registration-tokens", &request).await?;
    if json {
        println!("{}", serde_json::to_string(&created)?);
    } else {
        println!("{}", created.token);
        let uses = created
            .record
            .uses_left
            .map_or("unlimited uses".to_owned(), |u| format!("{u} use(s)"));
        let expiry = created
            .record
            .expires_at
            .map_or("no expiry".to_owned(), |at| {
                format!("expires {}", render::time(Some(at)))
            });
        eprintln!(
            "registration token {} ({uses}, {expiry}); shown once, keep it secret",
            created.record.id
        );
        eprintln!(
            "register a runner with: kiln-runner register --server {} --name NAME --token TOKEN",
            client.server()
        );
    }
    Ok(ExitCode::SUCCESS)
}
