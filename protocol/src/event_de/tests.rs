//! The hand-written decoder against the derived one it replaces, on every kind, on fields
//! in any order, and on broken events.

use serde::Deserialize;

use crate::event::{Event, EventBody};

/// What the derived decoder made of an event before: the same struct, derived.
#[derive(Debug, Deserialize)]
struct Derived {
    seq: u64,
    ts: i64,
    #[serde(flatten)]
    body: EventBody,
}

fn both(json: &str) -> (Result<Event, String>, Result<Event, String>) {
    let by_hand = serde_json::from_str::<Event>(json).map_err(|e| e.to_string());
    let derived = serde_json::from_str::<Derived>(json)
        .map(|d| Event {
            seq: d.seq,
            ts: d.ts,
            body: d.body,
        })
        .map_err(|e| e.to_string());
    (by_hand, derived)
}

const GOOD: &[&str] = &[
    r#"{"seq":1,"ts":5,"kind":"log","stream":"stdout","line":"hello"}"#,
    r#"{"seq":2,"ts":5,"kind":"log","stream":"stderr","line":"/w==","encoding":"base64","truncated":true}"#,
    r#"{"line":"order does not matter","stream":"system","kind":"log","ts":-1,"seq":3}"#,
    r#"{"seq":4,"ts":5,"kind":"log","stream":"stdout","line":"x","unknown":{"a":[1,2]}}"#,
    r#"{"seq":5,"ts":5,"kind":"log","stream":"stdout","line":"esc \"q\" \u00e9 \n"}"#,
    r#"{"seq":6,"ts":5,"kind":"status","phase":"checking_out"}"#,
    r#"{"seq":7,"ts":5,"kind":"status","phase":"running","line":5}"#,
    r#"{"seq":8,"ts":5,"kind":"agent","event":"text","text":"hi"}"#,
    r#"{"seq":9,"ts":5,"kind":"agent","event":"tool_call","id":"a","name":"Bash","input":{"command":"ls"}}"#,
    r#"{"seq":10,"ts":5,"kind":"agent","event":"tool_result","output":"ok","is_error":true}"#,
    r#"{"seq":11,"ts":5,"kind":"agent","event":"result","usage":{"input_tokens":3,"output_tokens":4}}"#,
    r#"{"seq":12,"ts":5,"kind":"finished","outcome":{"status":"failed","exit_code":3,"message":"agent exited with code 3"}}"#,
];

const BAD: &[&str] = &[
    r#"{"ts":5,"kind":"log","stream":"stdout","line":"no seq"}"#,
    r#"{"seq":1,"kind":"log","stream":"stdout","line":"no ts"}"#,
    r#"{"seq":1,"ts":5,"stream":"stdout","line":"no kind"}"#,
    r#"{"seq":1,"ts":5,"kind":"log","line":"no stream"}"#,
    r#"{"seq":1,"ts":5,"kind":"log","stream":"stdout"}"#,
    r#"{"seq":1,"ts":5,"kind":"log","stream":"stdout","line":7}"#,
    r#"{"seq":1,"ts":5,"kind":"log","stream":"pipe","line":"x"}"#,
    r#"{"seq":1,"ts":5,"kind":"log","stream":"stdout","line":"x","encoding":"rot13"}"#,
    r#"{"seq":1,"ts":5,"kind":"log","stream":"stdout","line":"x","truncated":"yes"}"#,
    r#"{"seq":-1,"ts":5,"kind":"log","stream":"stdout","line":"x"}"#,
    r#"{"seq":1,"seq":2,"ts":5,"kind":"log","stream":"stdout","line":"x"}"#,
    r#"{"seq":1,"ts":5,"kind":"log","stream":"stdout","line":"x","line":"y"}"#,
    r#"{"seq":1,"ts":5,"kind":"gossip"}"#,
    r#"{"seq":1,"ts":5,"kind":"status"}"#,
    r#"{"seq":1,"ts":5,"kind":"finished","outcome":{"status":"failed"}}"#,
    r#"[1,5,"log"]"#,
    r#""event""#,
];

#[test]
fn decodes_every_kind_as_the_derived_decoder_did() {
    for json in GOOD {
        let (by_hand, derived) = both(json);
        assert!(
            derived.is_ok(),
            "{json}: the derived decoder refused it: {derived:?}"
        );
        assert_eq!(by_hand, derived, "{json}");
    }
}

#[test]
fn refuses_what_the_derived_decoder_refused_and_names_the_field() {
    for json in BAD {
        let (by_hand, derived) = both(json);
        assert!(derived.is_err(), "{json}: the derived decoder took it");
        let error = by_hand.expect_err(json);
        assert!(!error.is_empty(), "{json}");
    }
    let (missing, _) = both(BAD[0]);
    assert!(missing.unwrap_err().contains("missing field `seq`"));
    let (twice, _) = both(BAD[10]);
    assert!(twice.unwrap_err().contains("duplicate field `seq`"));
    let (wrong, _) = both(BAD[5]);
    assert!(wrong.unwrap_err().contains("invalid type"));
}

#[test]
fn a_repeated_unknown_field_is_ignored_and_a_numeric_kind_refused_on_purpose() {
    let repeated = r#"{"seq":1,"ts":5,"kind":"log","stream":"stdout","line":"x","x":1,"x":2}"#;
    let (by_hand, derived) = both(repeated);
    assert!(derived.is_ok());
    assert_eq!(by_hand, derived);
    let numeric = r#"{"seq":1,"ts":5,"kind":0,"stream":"stdout","line":"x"}"#;
    let (by_hand, derived) = both(numeric);
    assert!(derived.is_ok(), "the derived decoder took a variant index");
    assert!(by_hand.expect_err(numeric).contains("invalid type"));
}

#[test]
fn every_event_round_trips() {
    for json in GOOD {
        let event: Event = serde_json::from_str(json).expect(json);
        let again = serde_json::to_string(&event).expect("encode");
        let back: Event = serde_json::from_str(&again).expect(&again);
        assert_eq!(back, event, "{json}");
        assert!(matches!(back.body, EventBody::Log(_)) == json.contains(r#""kind":"log""#));
    }
}
