//! Decoding frames from the network: size limit, JSON, and the structural checks that do
//! not need any state. Both sides decode every frame through here, so a hostile frame is a
//! `FrameError`, never a panic; the fuzz targets in `fuzz/` hammer exactly these functions.

use std::borrow::Cow;

use serde::Deserialize;

use crate::event::Event;
use crate::ids::TaskId;
use crate::limits::{MAX_EVENTS_PER_BATCH, MAX_FRAME_BYTES, MAX_NAME_BYTES};
use crate::messages::{RunnerMessage, ServerMessage};

/// Why a frame was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Longer than [`MAX_FRAME_BYTES`].
    TooLarge(usize),
    /// Not JSON of any known message.
    Malformed(String),
    /// Well-formed but breaks a protocol rule.
    Invalid(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(size) => write!(f, "frame of {size} bytes exceeds {MAX_FRAME_BYTES}"),
            Self::Malformed(why) => write!(f, "malformed frame: {why}"),
            Self::Invalid(why) => write!(f, "invalid frame: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

fn parse<'a, T: Deserialize<'a>>(frame: &'a [u8]) -> Result<T, FrameError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(frame.len()));
    }
    serde_json::from_slice(frame).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// The tag of a message, read alone.
#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

/// The fields of [`RunnerMessage::Events`] (its tag is skipped as an unknown field).
#[derive(Deserialize)]
struct EventsFrame {
    task_id: TaskId,
    attempt: u32,
    events: Vec<Event>,
}

/// Decodes a runner's message. The derived decoder of an internally tagged enum first
/// buffers the whole message into an intermediate tree; for event batches, the bulk of
/// the traffic, the tag is read alone (a scan that allocates nothing) and the batch is
/// then decoded as a plain struct. Anything else, a message in array form included, goes
/// to the derived decoder.
fn runner_message(frame: &[u8]) -> Result<RunnerMessage, FrameError> {
    match parse::<Tag<'_>>(frame) {
        Ok(tag) if tag.kind == "events" => {}
        _ => return parse(frame),
    }
    let batch: EventsFrame = parse(frame)?;
    Ok(RunnerMessage::Events {
        task_id: batch.task_id,
        attempt: batch.attempt,
        events: batch.events,
    })
}

/// Decodes a frame a runner sent.
pub fn runner_frame(frame: &[u8]) -> Result<RunnerMessage, FrameError> {
    let message = runner_message(frame)?;
    match &message {
        RunnerMessage::Events { events, .. } => {
            if events.len() > MAX_EVENTS_PER_BATCH {
                return Err(FrameError::Invalid(format!(
                    "events batch of {} exceeds {MAX_EVENTS_PER_BATCH}",
                    events.len()
                )));
            }
            let ascending = events.windows(2).all(|w| w[1].seq == w[0].seq + 1);
            if !ascending || events.first().is_some_and(|e| e.seq == 0) {
                return Err(FrameError::Invalid(
                    "event seqs must be consecutive and start at 1 or later".into(),
                ));
            }
        }
        RunnerMessage::Rejected { reason, .. } if reason.len() > MAX_NAME_BYTES * 10 => {
            return Err(FrameError::Invalid("rejection reason is too long".into()));
        }
        RunnerMessage::Mirrored { repo } if crate::validate::repo(repo).is_err() => {
            return Err(FrameError::Invalid(
                "mirrored repo is not a valid repository".into(),
            ));
        }
        _ => {}
    }
    Ok(message)
}

/// Decodes a frame the control plane sent.
pub fn server_frame(frame: &[u8]) -> Result<ServerMessage, FrameError> {
    parse(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_frames_are_errors() {
        assert!(matches!(runner_frame(b"{"), Err(FrameError::Malformed(_))));
        assert!(matches!(
            runner_frame(br#"{"type":"nope"}"#),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            runner_frame(&vec![b' '; MAX_FRAME_BYTES + 1]),
            Err(FrameError::TooLarge(_))
        ));
        let gap = br#"{"type":"events","task_id":"01930000-0000-7000-8000-000000000001","attempt":1,"events":[
            {"seq":1,"ts":0,"kind":"status","phase":"running"},{"seq":3,"ts":0,"kind":"status","phase":"running"}]}"#;
        assert!(matches!(runner_frame(gap), Err(FrameError::Invalid(_))));
        let zero = br#"{"type":"events","task_id":"01930000-0000-7000-8000-000000000001","attempt":1,"events":[
            {"seq":0,"ts":0,"kind":"status","phase":"running"}]}"#;
        assert!(matches!(runner_frame(zero), Err(FrameError::Invalid(_))));
    }

    #[test]
    fn event_batches_decode_as_the_derived_decoder_does_wherever_the_tag_is() {
        let first = br#"{"type":"events","task_id":"01930000-0000-7000-8000-000000000001","attempt":2,"events":[
            {"seq":1,"ts":3,"kind":"log","stream":"stdout","line":"a"},{"seq":2,"ts":4,"kind":"status","phase":"running"}]}"#;
        let last = br#"{"task_id":"01930000-0000-7000-8000-000000000001","attempt":2,"events":[
            {"seq":1,"ts":3,"kind":"log","stream":"stdout","line":"a"},{"seq":2,"ts":4,"kind":"status","phase":"running"}],"type":"events"}"#;
        for frame in [&first[..], &last[..]] {
            let derived: RunnerMessage = serde_json::from_slice(frame).expect("derived");
            assert_eq!(runner_frame(frame), Ok(derived));
        }
        let array = br#"["heartbeat",1,2]"#;
        let derived: RunnerMessage = serde_json::from_slice(array).expect("derived");
        assert_eq!(runner_frame(array), Ok(derived));
        let no_attempt =
            br#"{"type":"events","task_id":"01930000-0000-7000-8000-000000000001","events":[]}"#;
        assert!(
            matches!(runner_frame(no_attempt), Err(FrameError::Malformed(why)) if why.contains("attempt"))
        );
    }

    #[test]
    fn good_frames_decode() {
        assert_eq!(
            runner_frame(br#"{"type":"draining"}"#),
            Ok(RunnerMessage::Draining)
        );
        assert_eq!(
            server_frame(br#"{"type":"drain"}"#),
            Ok(ServerMessage::Drain)
        );
    }
}
