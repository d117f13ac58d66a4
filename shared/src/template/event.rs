//! What templates read about the Workfront event that started a job: `event.*` and
//! `trigger.name`.
//!
//! The states are read leniently: a field the object does not carry renders empty
//! (Workfront sends only some fields, and which ones depends on the object), so
//! `{{ event.newState.status }}` never fails an attempt. At start-up the states are
//! samples in which every field holds a text naming its path, so that a URL whose
//! host would follow a field is still found.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::Value;

use crate::events::{rfc3339, Event};

/// The event a job was started by, as its templates see it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventContext {
    pub trigger: String,
    pub event_type: String,
    pub obj_code: String,
    pub obj_id: String,
    pub subscription_id: String,
    pub event_time: DateTime<Utc>,
    pub new_state: State,
    pub old_state: State,
}

/// What a start-up sample of a trigger's events needs to know about the trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleTrigger {
    pub name: String,
    pub obj_code: String,
    /// As Workfront spells it (`CREATE`, `UPDATE`, `DELETE`).
    pub event_type: String,
}

/// A state: the decoded object, or a start-up sample.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Json(serde_json::Map<String, serde_json::Value>),
    /// Every field renders as `<prefix>.<field>`.
    Sample(String),
}

impl EventContext {
    pub fn new(trigger: &str, event: &Event) -> Self {
        Self {
            trigger: trigger.to_owned(),
            event_type: event.event_type.as_str().to_owned(),
            obj_code: event.obj_code.clone(),
            obj_id: event.obj_id.clone(),
            subscription_id: event.subscription_id.clone(),
            event_time: event.event_time(),
            new_state: State::Json(event.new_state.clone()),
            old_state: State::Json(event.old_state.clone()),
        }
    }

    /// A sample of `trigger`'s events; `tag` ("sample", "other") sets every value.
    pub fn sample(trigger: &SampleTrigger, tag: &str) -> Self {
        Self {
            trigger: trigger.name.clone(),
            event_type: trigger.event_type.clone(),
            obj_code: trigger.obj_code.clone(),
            obj_id: format!("{tag}-object"),
            subscription_id: format!("{tag}-subscription"),
            event_time: if tag == "sample" {
                DateTime::UNIX_EPOCH
            } else {
                DateTime::from_timestamp_nanos(86_400_123_000_000)
            },
            new_state: State::Sample(format!("{tag}-newState")),
            old_state: State::Sample(format!("{tag}-oldState")),
        }
    }

    pub(super) fn to_value(&self) -> Value {
        let fields: BTreeMap<&str, Value> = [
            ("eventType", Value::from(self.event_type.clone())),
            ("objCode", Value::from(self.obj_code.clone())),
            ("objID", Value::from(self.obj_id.clone())),
            ("subscriptionId", Value::from(self.subscription_id.clone())),
            ("eventTime", Value::from(rfc3339(self.event_time))),
            ("newState", self.new_state.to_value()),
            ("oldState", self.old_state.to_value()),
        ]
        .into_iter()
        .collect();
        Value::from(fields)
    }
}

impl State {
    fn to_value(&self) -> Value {
        match self {
            Self::Json(map) => lenient_object(map),
            Self::Sample(prefix) => Value::from_object(SampleField(prefix.clone())),
        }
    }
}

fn lenient(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Object(map) => lenient_object(map),
        serde_json::Value::Array(items) => Value::from(items.iter().map(lenient).collect::<Vec<_>>()),
        other => super::json::json_value(other),
    }
}

fn lenient_object(map: &serde_json::Map<String, serde_json::Value>) -> Value {
    Value::from_object(Lenient(map.iter().map(|(k, v)| (k.clone(), lenient(v))).collect()))
}

/// A JSON object whose missing fields are `none` instead of undefined.
#[derive(Debug)]
struct Lenient(BTreeMap<String, Value>);

impl Object for Lenient {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(key.as_str().and_then(|k| self.0.get(k).cloned()).unwrap_or(Value::from(())))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.keys().map(|k| Value::from(k.clone())).collect())
    }
}

/// A start-up sample field: renders as its path, and has every field.
#[derive(Debug)]
struct SampleField(String);

impl Object for SampleField {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from_object(SampleField(format!("{}.{key}", self.0))))
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
