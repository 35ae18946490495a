//! Pins the JSON of every protocol message, so a wire change is always a visible diff.
//!
//! Run with `UPDATE_SNAPSHOTS=1` to rewrite the files after an intended change, and update
//! docs/protocol.md in the same commit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_protocol::*;
use uuid::Uuid;

fn task_id() -> TaskId {
    TaskId(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001))
}

fn runner_id() -> RunnerId {
    RunnerId(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0002))
}

fn usage() -> Usage {
    Usage {
        turns: Some(3),
        input_tokens: 400,
        cache_read_tokens: 800,
        cache_write_tokens: 150,
        output_tokens: 300,
        reasoning_tokens: Some(120),
        cost_usd: Some(0.0125),
    }
}

fn outcome() -> Outcome {
    Outcome {
        status: OutcomeStatus::Succeeded,
        exit_code: Some(0),
        signal: None,
        message: "agent exited with code 0".into(),
        result: Some(TaskResult {
            branch: format!("kiln/{}", task_id()),
            base_commit: "1111111111111111111111111111111111111111".into(),
            head_commit: "2222222222222222222222222222222222222222".into(),
            commits: vec!["2222222222222222222222222222222222222222".into()],
            diffstat: DiffStat {
                files_changed: 1,
                insertions: 3,
                deletions: 1,
            },
            bundle_uploaded: true,
            pushed: false,
            skipped_files: vec![],
        }),
        stop: Some(StopReason::Completed),
        iterations: Some(2),
        usage: Some(usage()),
        agent_session: Some("8f2c2a8e-5f5e-4f6a-9d64-2b0d1c2f6e1a".into()),
    }
}

/// The name of each runner message's snapshot. Exhaustive, so a new variant fails to
/// compile until it is named here and given a sample below.
fn runner_name(message: &RunnerMessage) -> &'static str {
    match message {
        RunnerMessage::Hello(_) => "runner_hello",
        RunnerMessage::Heartbeat { .. } => "runner_heartbeat",
        RunnerMessage::Accepted { .. } => "runner_accepted",
        RunnerMessage::Rejected { .. } => "runner_rejected",
        RunnerMessage::Draining => "runner_draining",
        RunnerMessage::Mirrored { .. } => "runner_mirrored",
        RunnerMessage::Rotated => "runner_rotated",
        RunnerMessage::FileResponse { .. } => "runner_file_response",
        RunnerMessage::Events { .. } => "runner_events",
    }
}

fn server_name(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::Welcome(_) => "server_welcome",
        ServerMessage::Assign { .. } => "server_assign",
        ServerMessage::Cancel { .. } => "server_cancel",
        ServerMessage::Ack { .. } => "server_ack",
        ServerMessage::Drain => "server_drain",
        ServerMessage::Error { .. } => "server_error",
        ServerMessage::Rotate { .. } => "server_rotate",
        ServerMessage::CloseWorkspace { .. } => "server_close_workspace",
        ServerMessage::FileRequest { .. } => "server_file_request",
    }
}

fn runner_samples() -> Vec<RunnerMessage> {
    vec![
        RunnerMessage::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            version: "0.1.0".into(),
            name: "build-box-1".into(),
            capabilities: vec!["docker".into(), "git".into()],
            labels: BTreeMap::from([("zone".into(), "eu-1".into())]),
            max_concurrent: 2,
            sandbox_id: None,
            cached_projects: vec!["https://example.com/acme/app.git".into()],
            running: vec![RunningAttempt {
                task_id: task_id(),
                attempt: 1,
                last_seq: 1,
                state: HeldState::Running,
            }],
            workspaces: vec![WorkspaceId(Uuid::from_u128(5))],
        }),
        RunnerMessage::Heartbeat {
            running: 1,
            free_slots: 1,
        },
        RunnerMessage::Accepted {
            task_id: task_id(),
            attempt: 1,
        },
        RunnerMessage::Rejected {
            task_id: task_id(),
            attempt: 1,
            reason: "no free slot".into(),
        },
        RunnerMessage::Draining,
        RunnerMessage::Rotated,
        RunnerMessage::FileResponse {
            request_id: 7,
            result: FileResult::Listed {
                entries: vec![FileEntry {
                    name: "src".into(),
                    kind: "dir".into(),
                    size: 0,
                }],
            },
        },
        RunnerMessage::Mirrored {
            repo: "https://example.com/acme/app.git".into(),
        },
        RunnerMessage::Events {
            task_id: task_id(),
            attempt: 1,
            events: vec![
                Event {
                    seq: 2,
                    ts: 1_700_000_000_000,
                    body: EventBody::Status {
                        phase: Phase::Running,
                        until: None,
                    },
                },
                Event {
                    seq: 3,
                    ts: 1_700_000_000_001,
                    body: EventBody::Agent(AgentEvent::Session {
                        id: "8f2c2a8e-5f5e-4f6a-9d64-2b0d1c2f6e1a".into(),
                    }),
                },
                Event {
                    seq: 4,
                    ts: 1_700_000_000_002,
                    body: EventBody::Agent(AgentEvent::Warning {
                        message: "Reconnecting... 1/5".into(),
                    }),
                },
                Event {
                    seq: 5,
                    ts: 1_700_000_000_003,
                    body: EventBody::Status {
                        phase: Phase::RateLimited,
                        until: Some(1_700_000_360_000),
                    },
                },
                Event {
                    seq: 6,
                    ts: 1_700_000_000_004,
                    body: EventBody::Log(LogLine::from_bytes(Stream::Stdout, b"hello")),
                },
                Event {
                    seq: 7,
                    ts: 1_700_000_000_005,
                    body: EventBody::Log(LogLine::from_bytes(Stream::Stderr, &[0xff, 0x00])),
                },
                Event {
                    seq: 8,
                    ts: 1_700_000_000_006,
                    body: EventBody::Agent(AgentEvent::ToolCall {
                        id: Some("toolu_1".into()),
                        name: "Bash".into(),
                        input: serde_json::json!({ "command": "cargo test" }),
                    }),
                },
                Event {
                    seq: 9,
                    ts: 1_700_000_000_007,
                    body: EventBody::Agent(AgentEvent::Result {
                        text: Some("All tests pass.".into()),
                        is_error: false,
                        usage: usage(),
                    }),
                },
                Event {
                    seq: 10,
                    ts: 1_700_000_000_008,
                    body: EventBody::Finished { outcome: outcome() },
                },
            ],
        },
    ]
}

fn server_samples() -> Vec<ServerMessage> {
    vec![
        ServerMessage::Welcome(Welcome {
            runner_id: runner_id(),
            connection_id: ConnectionId(Uuid::from_u128(3)),
            heartbeat_interval_ms: 5_000,
            acked: vec![AckedSeq {
                task_id: task_id(),
                attempt: 1,
                seq: 40,
            }],
            unknown: vec![AttemptRef {
                task_id: TaskId(Uuid::from_u128(9)),
                attempt: 3,
            }],
        }),
        ServerMessage::Assign {
            task: Box::new(TaskSpec {
                task_id: task_id(),
                repo: "https://example.com/acme/app.git".into(),
                base_ref: Some("main".into()),
                branch: format!("kiln/{}", task_id()),
                prompt: "Fix the failing test.".into(),
                command: vec![],
                agent: Some(AgentSpec {
                    preset: "claude-code".into(),
                    model: Some("sonnet".into()),
                    args: vec!["--max-turns".into(), "20".into()],
                    autonomy: Some(Autonomy::Full),
                    continue_conversation: true,
                }),
                env: BTreeMap::from([("RUST_LOG".into(), "info".into())]),
                secret_env: BTreeMap::from([("API_KEY".into(), "s3cr3t-value".into())]),
                timeout_ms: Some(3_600_000),
                idle_timeout_ms: Some(600_000),
                max_iterations: Some(5),
                completion_signal: Some("<promise>COMPLETE</promise>".into()),
                completion_grace_ms: Some(30_000),
                max_turns: Some(50),
                max_cost_usd: Some(2.5),
                push: true,
                workspace: Some(WorkspaceSpec {
                    workspace_id: WorkspaceId(Uuid::from_u128(5)),
                    setup: vec![vec!["npm".into(), "ci".into()]],
                }),
                container: Some(ContainerSpec {
                    image: "kiln-sandbox:latest".into(),
                }),
            }),
            attempt: 1,
        },
        ServerMessage::Cancel {
            task_id: task_id(),
            attempt: 1,
            reason: "cancelled by operator".into(),
        },
        ServerMessage::Ack {
            task_id: task_id(),
            attempt: 1,
            seq: 4,
        },
        ServerMessage::Drain,
        ServerMessage::CloseWorkspace {
            workspace_id: WorkspaceId(Uuid::from_u128(5)),
        },
        ServerMessage::FileRequest {
            request_id: 7,
            target: FileTarget::Task {
                task_id: task_id(),
                attempt: 1,
            },
            op: FileOp::Write {
                path: "notes/todo.md".into(),
                data: "aGVsbG8K".into(),
            },
        },
        ServerMessage::Rotate {
            runner_token:
                "kiln_rnr_0000000000000000000000000000000000000000000000000000000000000000".into(),
        },
        ServerMessage::Error {
            message: "malformed frame: expected value at line 1 column 1".into(),
        },
    ]
}

fn snapshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

fn check(name: &str, json: String) {
    let path = snapshot_dir().join(format!("{name}.json"));
    let json = json + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &json).expect("write snapshot");
        return;
    }
    let pinned = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("missing snapshot {}: {e}", path.display()));
    assert_eq!(pinned, json, "wire format of {name} changed");
}

#[test]
fn every_runner_message_matches_its_snapshot_and_round_trips() {
    for message in runner_samples() {
        let json = serde_json::to_string_pretty(&message).unwrap();
        check(runner_name(&message), json.clone());
        let decoded: RunnerMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(decoded, message);
    }
}

#[test]
fn every_server_message_matches_its_snapshot_and_round_trips() {
    for message in server_samples() {
        let json = serde_json::to_string_pretty(&message).unwrap();
        check(server_name(&message), json.clone());
        let decoded: ServerMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(decoded, message);
    }
}

#[test]
fn every_snapshot_file_has_a_sample() {
    let mut names: Vec<String> = runner_samples()
        .iter()
        .map(|m| runner_name(m).to_owned())
        .chain(server_samples().iter().map(|m| server_name(m).to_owned()))
        .collect();
    names.sort();
    let mut files: Vec<String> = std::fs::read_dir(snapshot_dir())
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .replace(".json", "")
        })
        .collect();
    files.sort();
    assert_eq!(names, files);
}

#[test]
fn unknown_message_type_is_an_error_not_a_panic() {
    let err = serde_json::from_str::<RunnerMessage>(r#"{"type":"launch_missiles"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown variant"), "{err}");
}

#[test]
fn close_codes_round_trip_and_only_auth_and_version_are_fatal() {
    for code in CloseCode::ALL {
        assert_eq!(CloseCode::from_code(code.code()), Some(code));
    }
    let fatal: Vec<_> = CloseCode::ALL
        .into_iter()
        .filter(|c| c.is_fatal())
        .collect();
    assert_eq!(fatal, [CloseCode::UnsupportedProtocol, CloseCode::Revoked]);
}
