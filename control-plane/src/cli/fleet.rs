//! `kiln runners` and `kiln token create`.

use std::process::ExitCode;

use super::client::ApiClient;
use super::{render, TokenCreateArgs};
use crate::api_types::{CreateRegistrationToken, RegistrationTokenCreated, RunnerView};

/// `kiln runners`.
pub async fn runners(client: &ApiClient, json: bool) -> anyhow::Result<ExitCode> {
    let runners: Vec<RunnerView> = client.get("/v1/runners").await?;
    if json {
        println!("{}", serde_json::to_string(&runners)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = runners
        .iter()
        .map(|r| {
            vec![
                r.runner.id.to_string(),
                r.runner.name.clone(),
                serde_json::to_value(r.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                format!("{}/{}", r.running, r.runner.max_concurrent),
                r.runner.capabilities.join(","),
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
