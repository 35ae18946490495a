//! The dashboard's pages, rendered on the server from the same store and hub reads as the
//! API: the fleet, the tasks (filtered by state) and one task with its live log.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::response::Html;
use serde::Deserialize;

use super::html::{escape, page, time};
use super::Operator;
use crate::model::TaskState;
use crate::server::api::tasks::{parse_task_id, state_param};
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::store::TaskFilter;

/// Tasks listed on one page.
const TASKS_PER_PAGE: u32 = 100;

/// `/`: every runner, its state, load, capabilities and when it was last seen.
pub async fn fleet(_: Operator, State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let runners = state.engine.store.runners().await?;
    let mut body = format!("<h1>Fleet</h1><p>{} runners</p>", runners.len());
    body.push_str(
        "<table id=runners><tr><th>Name</th><th>State</th><th>Load</th>\
         <th>Capabilities</th><th>Labels</th><th>Last seen</th><th>Id</th></tr>",
    );
    for runner in &runners {
        let live = state.engine.hub.live(runner.id);
        let runner_state = state.engine.runner_state(runner, live.as_ref());
        let running = live.as_ref().map_or(0, |l| l.running);
        let labels: Vec<String> = runner
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=state>{}</td><td>{running}/{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            escape(&runner.name),
            runner_state.as_str(),
            runner.max_concurrent,
            escape(&runner.capabilities.join(", ")),
            escape(&labels.join(", ")),
            time(runner.last_seen_at),
            runner.id,
        );
    }
    body.push_str("</table>");
    Ok(Html(page("Fleet", &body)))
}

#[derive(Debug, Deserialize)]
pub struct TasksQuery {
    state: Option<String>,
    /// Only tasks older than this one: the previous page's last.
    before: Option<String>,
}

/// `/tasks[?state=S]`: the newest tasks, filtered by state.
pub async fn tasks(
    _: Operator,
    State(state): State<AppState>,
    Query(query): Query<TasksQuery>,
) -> Result<Html<String>, ApiError> {
    let wanted = query
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(state_param)
        .transpose()?;
    let before = query
        .before
        .as_deref()
        .filter(|b| !b.is_empty())
        .map(parse_task_id)
        .transpose()?;
    let filter = TaskFilter {
        state: wanted,
        before,
        limit: TASKS_PER_PAGE,
        ..TaskFilter::default()
    };
    let tasks = state.engine.store.tasks(&filter).await?;
    let mut body = String::from("<h1>Tasks</h1><p class=filters>State: <a href='/tasks'>all</a>");
    for filter in TaskState::ALL {
        let _ = write!(body, "<a href='/tasks?state={filter}'>{filter}</a>");
    }
    body.push_str(
        "</p><table id=tasks><tr><th>Task</th><th>State</th><th>Repository</th>\
         <th>Attempt</th><th>Submitted</th><th>Finished</th></tr>",
    );
    for task in &tasks {
        let _ = write!(
            body,
            "<tr><td><a href='/tasks/{id}'><code>{id}</code></a></td><td class=state>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            task.state,
            escape(&task.spec.repo),
            task.attempt,
            time(Some(task.spec.created_at)),
            time(task.finished_at),
            id = task.spec.id,
        );
    }
    body.push_str("</table>");
    if let Some(last) = tasks
        .last()
        .filter(|_| tasks.len() == TASKS_PER_PAGE as usize)
    {
        let state = wanted.map(|s| format!("state={s}&")).unwrap_or_default();
        let href = format!("/tasks?{state}before={}", last.spec.id);
        let _ = write!(
            body,
            "<p><a id=older href='{}'>Older tasks</a></p>",
            escape(&href)
        );
    }
    Ok(Html(page("Tasks", &body)))
}

/// `/tasks/{id}`: the task, its attempts, its result and its log, following live.
pub async fn task(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let id = parse_task_id(&id)?;
    let task = crate::server::api::tasks::load(&state, id).await?;
    let attempts = state.engine.store.attempts(id).await?;
    let mut body = format!(
        "<h1>Task <code>{id}</code></h1><table><tr><th>State</th><td class=state id=state>{}</td></tr>\
         <tr><th>Repository</th><td>{}</td></tr><tr><th>Branch</th><td>{}</td></tr>\
         <tr><th>Command</th><td><code>{}</code></td></tr><tr><th>Submitted</th><td>{}</td></tr>\
         <tr><th>Finished</th><td>{}</td></tr></table>",
        task.state,
        escape(&task.spec.repo),
        escape(&task.spec.branch),
        escape(&task.spec.command.join(" ")),
        time(Some(task.spec.created_at)),
        time(task.finished_at),
    );
    if let Some(outcome) = &task.outcome {
        let _ = write!(
            body,
            "<h2>Result</h2><p id=result>{}: {}</p>",
            outcome.status.as_str(),
            escape(&outcome.message)
        );
        if let Some(result) = &outcome.result {
            let stat = result.diffstat;
            let _ = write!(
                body,
                "<p id=diffstat>{} files changed, {} insertions(+), {} deletions(-); {} commits on \
                 <code>{}</code></p>",
                stat.files_changed,
                stat.insertions,
                stat.deletions,
                result.commits.len(),
                escape(&result.branch)
            );
        }
    }
    let mut history = String::from(
        "<h2>Attempts</h2><table id=attempts><tr><th>#</th><th>Runner</th><th>State</th>\
         <th>Assigned</th><th>Started</th><th>Finished</th><th>Outcome</th></tr>",
    );
    for attempt in &attempts {
        let outcome = attempt
            .outcome
            .as_ref()
            .map(|o| escape(&o.message))
            .unwrap_or_default();
        let _ = write!(
            history,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{outcome}</td></tr>",
            attempt.attempt,
            attempt.runner_id,
            attempt.state.as_str(),
            time(Some(attempt.assigned_at)),
            time(attempt.started_at),
            time(attempt.finished_at),
        );
    }
    history.push_str("</table>");
    let _ = write!(
        history,
        "<h2>Prompt</h2><pre id=prompt>{}</pre>",
        escape(&task.spec.prompt)
    );
    body.push_str("<h2>Log</h2>");
    if task.pruned_at.is_some() {
        let _ = write!(
            body,
            "<p class=error>This task's log was pruned by retention at {}.</p>",
            time(task.pruned_at)
        );
    } else {
        let _ = write!(
            body,
            "<pre id=log data-task='{id}' data-attempt='{}'></pre><script src='{}'></script>",
            task.attempt.max(1),
            super::assets::LIVE_LOG_PATH,
        );
    }
    body.push_str(&history);
    Ok(Html(page(&format!("Task {id}"), &body)))
}
