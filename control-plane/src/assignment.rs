//! What a runner is told about a task (the `assign` frame), and the check that it fits one
//! frame: a task whose assignment no runner could read would be handed out forever.

use kiln_protocol::limits::MAX_FRAME_BYTES;
use kiln_protocol::{ServerMessage, TaskSpec, WorkspaceSpec};

use crate::model::{NewTask, WorkspaceRecord};
use crate::task_input::{InvalidField, MAX_ATTEMPTS_LIMIT};

/// What the runner is told about a task (run in `workspace`, if it has one).
pub fn spec(task: &NewTask, workspace: Option<&WorkspaceRecord>) -> TaskSpec {
    TaskSpec {
        task_id: task.id,
        repo: task.repo.clone(),
        base_ref: task.base_ref.clone(),
        branch: task.branch.clone(),
        prompt: task.prompt.clone(),
        command: task.command.clone(),
        env: task.env.clone(),
        secret_env: task.secret_env.0.clone(),
        timeout_ms: task.timeout_ms,
        idle_timeout_ms: task.idle_timeout_ms,
        agent: task.options.agent.clone(),
        max_iterations: task.options.max_iterations,
        completion_signal: task.options.completion_signal.clone(),
        completion_grace_ms: task.options.completion_grace_ms,
        max_turns: task.options.max_turns,
        max_cost_usd: task.options.max_cost_usd,
        push: task.options.push,
        container: task.options.container.clone(),
        workspace: workspace.map(|w| WorkspaceSpec {
            workspace_id: w.id,
            setup: w.setup.clone(),
        }),
    }
}

fn encoded_len(value: &impl serde::Serialize) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

/// Refuses a task whose `assign` frame (its latest attempt, as JSON) would be larger than a
/// frame may be, naming the field that takes the most room.
pub fn check_fits(task: &NewTask, workspace: Option<&WorkspaceRecord>) -> Result<(), InvalidField> {
    let spec = spec(task, workspace);
    let frame = ServerMessage::Assign {
        task: Box::new(spec.clone()),
        attempt: MAX_ATTEMPTS_LIMIT,
    };
    let total = encoded_len(&frame);
    if total <= MAX_FRAME_BYTES {
        return Ok(());
    }
    let fields = [
        ("prompt", encoded_len(&spec.prompt)),
        ("env", encoded_len(&spec.env)),
        ("secret_env", encoded_len(&spec.secret_env)),
        ("command", encoded_len(&spec.command)),
        ("setup", encoded_len(&spec.workspace)),
        ("container", encoded_len(&spec.container)),
    ];
    let (field, size) = fields
        .iter()
        .max_by_key(|(_, size)| *size)
        .copied()
        .unwrap_or(("task", total));
    Err(InvalidField {
        field: field.to_owned(),
        reason: format!(
            "takes {size} bytes encoded, which makes the task's assignment {total} bytes: \
             over the {MAX_FRAME_BYTES}-byte frame limit a runner reads"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_whose_assignment_cannot_fit_a_frame_is_refused_naming_the_field() {
        let mut task = crate::testing::new_task();
        assert_eq!(check_fits(&task, None), Ok(()));
        task.env.insert("BIG".into(), "x".repeat(MAX_FRAME_BYTES));
        let refusal = check_fits(&task, None).unwrap_err();
        assert_eq!(refusal.field, "env");
        assert!(refusal.reason.contains("frame limit"), "{refusal}");
        // JSON escaping counts: control characters take six bytes each.
        let mut escaped = crate::testing::new_task();
        escaped.prompt = "\u{1}".repeat(MAX_FRAME_BYTES / 5);
        assert_eq!(check_fits(&escaped, None).unwrap_err().field, "prompt");
    }
}
