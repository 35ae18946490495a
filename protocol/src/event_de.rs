//! Decoding an [`Event`] by hand, so that a log line (nearly every event) decodes in one
//! pass. The derived decoder of a struct with a flattened, internally tagged body buffers
//! every event into an intermediate tree first; at hundreds of thousands of lines a second
//! that was the control plane's largest cost. Other kinds keep the derived decoding of
//! [`EventBody`], so they accept what they did, with one exception on purpose: `kind` must
//! be a string (the derived decoder also took a variant's index, which no one sends).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::event::{Event, EventBody};
use crate::line::{LineEncoding, LogLine, Stream};

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

/// The keys of an event: its own, the tag, and those of a log line.
enum Key {
    Seq,
    Ts,
    Kind,
    Stream,
    Line,
    Encoding,
    Truncated,
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
        Ok(match name {
            "seq" => Key::Seq,
            "ts" => Key::Ts,
            "kind" => Key::Kind,
            "stream" => Key::Stream,
            "line" => Key::Line,
            "encoding" => Key::Encoding,
            "truncated" => Key::Truncated,
            other => Key::Other(other.to_owned()),
        })
    }
}

/// What was read of an event's map before its kind is known. The fields of a log line
/// are kept as JSON values: another kind may use the same names for something else.
#[derive(Default)]
struct Fields {
    seq: Option<u64>,
    ts: Option<i64>,
    kind: Option<String>,
    stream: Option<Value>,
    line: Option<Value>,
    encoding: Option<Value>,
    truncated: Option<Value>,
    /// Every other field.
    rest: Map<String, Value>,
}

impl Fields {
    /// The fields of a log line, taken out.
    fn log_line(&mut self) -> Result<LogLine, serde_json::Error> {
        let stream: Stream = match self.stream.take() {
            Some(value) => serde_json::from_value(value)?,
            None => return Err(de::Error::missing_field("stream")),
        };
        let line: String = match self.line.take() {
            Some(value) => serde_json::from_value(value)?,
            None => return Err(de::Error::missing_field("line")),
        };
        let encoding = match self.encoding.take() {
            Some(value) => serde_json::from_value(value)?,
            None => LineEncoding::Utf8,
        };
        let truncated = match self.truncated.take() {
            Some(value) => serde_json::from_value(value)?,
            None => false,
        };
        Ok(LogLine {
            stream,
            line,
            encoding,
            truncated,
        })
    }

    /// Every field but seq and ts as one object, for the derived decoder of other kinds.
    fn into_object(self, kind: String) -> Value {
        let mut object = self.rest;
        object.insert("kind".to_owned(), Value::String(kind));
        let log_fields = [
            ("stream", self.stream),
            ("line", self.line),
            ("encoding", self.encoding),
            ("truncated", self.truncated),
        ];
        for (name, value) in log_fields {
            if let Some(value) = value {
                object.insert(name.to_owned(), value);
            }
        }
        Value::Object(object)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Seq => set_once(&mut fields.seq, "seq", map.next_value()?)?,
                Key::Ts => set_once(&mut fields.ts, "ts", map.next_value()?)?,
                Key::Kind => set_once(&mut fields.kind, "kind", map.next_value()?)?,
                Key::Stream => set_once(&mut fields.stream, "stream", map.next_value()?)?,
                Key::Line => set_once(&mut fields.line, "line", map.next_value()?)?,
                Key::Encoding => set_once(&mut fields.encoding, "encoding", map.next_value()?)?,
                Key::Truncated => {
                    set_once(&mut fields.truncated, "truncated", map.next_value()?)?;
                }
                Key::Other(name) => {
                    // A repeated field no kind knows is ignored, as the derived decoder did.
                    let value = map.next_value()?;
                    fields.rest.insert(name, value);
                }
            }
        }
        let seq = fields
            .seq
            .take()
            .ok_or_else(|| de::Error::missing_field("seq"))?;
        let ts = fields
            .ts
            .take()
            .ok_or_else(|| de::Error::missing_field("ts"))?;
        let kind = fields
            .kind
            .take()
            .ok_or_else(|| de::Error::missing_field("kind"))?;
        let body = if kind == "log" {
            EventBody::Log(fields.log_line().map_err(de::Error::custom)?)
        } else {
            EventBody::deserialize(fields.into_object(kind)).map_err(de::Error::custom)?
        };
        Ok(Event { seq, ts, body })
    }
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests;
