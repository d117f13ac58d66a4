//! Workfront event subscriptions: the message Workfront POSTs when an object is
//! created, updated or deleted, decoded and checked, and the filters a trigger
//! applies to it (Workfront's own comparisons, evaluated here on every delivery).
//!
//! The message (version 2): `{"eventType", "subscriptionId", "eventTime": {"epochSecond",
//! "nano"}, "eventVersion", "newState", "oldState"}`; each state is a JSON object, a
//! JSON-encoded string or a base64-encoded string of one (`base64Encoding`).

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::domain::check_text;

/// Largest delivery accepted (Workfront sends at most about 1 MB).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Deepest nesting of arrays and objects accepted in a message or a decoded state.
pub const MAX_DEPTH: usize = 32;
/// Longest subscription id, object code or object id accepted.
pub const MAX_ID_CHARS: usize = 255;

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Create,
    Update,
    Delete,
}

impl EventType {
    pub const ALL: [Self; 3] = [Self::Create, Self::Update, Self::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// A delivery, decoded and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_type: EventType,
    pub subscription_id: String,
    /// `eventTime` as Workfront sends it (seconds and nanoseconds since the epoch):
    /// part of the delivery's identity, so kept to the nanosecond.
    pub epoch_second: i64,
    pub nano: u32,
    /// The object's code and id, from the state that holds the object (`oldState` on
    /// DELETE, `newState` otherwise).
    pub obj_code: String,
    pub obj_id: String,
    pub new_state: Map<String, Value>,
    pub old_state: Map<String, Value>,
}

/// Why a message was refused (always the sender's mistake: a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a JSON object")]
    NotObject,
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`{field}` {message}")]
    Invalid { field: &'static str, message: String },
    #[error("nesting deeper than {MAX_DEPTH} levels is refused")]
    TooDeep,
}

impl Event {
    /// Decodes a delivery's body.
    pub fn from_body(body: &[u8]) -> Result<Self, EventError> {
        let message: Value = serde_json::from_slice(body).map_err(|e| EventError::NotJson(e.to_string()))?;
        if depth(&message) > MAX_DEPTH {
            return Err(EventError::TooDeep);
        }
        let Value::Object(mut message) = message else {
            return Err(EventError::NotObject);
        };
        let invalid = |field: &'static str, message: &str| EventError::Invalid { field, message: message.to_owned() };
        let event_type = match message.get("eventType") {
            None | Some(Value::Null) => return Err(EventError::Missing("eventType")),
            Some(Value::String(text)) => EventType::parse(text).ok_or_else(|| EventError::Invalid {
                field: "eventType",
                message: format!("{text:?} is not CREATE, UPDATE or DELETE"),
            })?,
            Some(_) => return Err(invalid("eventType", "must be a string")),
        };
        match message.get("eventVersion") {
            None | Some(Value::Null) => {}
            Some(Value::String(v)) if v.eq_ignore_ascii_case("v2") => {}
            Some(other) => {
                return Err(EventError::Invalid {
                    field: "eventVersion",
                    message: format!("{other} is not supported (Docket reads version \"v2\")"),
                })
            }
        }
        let subscription_id = match message.get("subscriptionId") {
            None | Some(Value::Null) => return Err(EventError::Missing("subscriptionId")),
            Some(Value::String(id)) => {
                check_text(id, MAX_ID_CHARS).map_err(|e| invalid("subscriptionId", &e.to_string()))?;
                id.clone()
            }
            Some(_) => return Err(invalid("subscriptionId", "must be a string")),
        };
        let (epoch_second, nano) = event_time(message.get("eventTime"))?;
        let new_state = state(message.remove(StateSide::NewState.as_str()), StateSide::NewState.as_str())?;
        let old_state = state(message.remove(StateSide::OldState.as_str()), StateSide::OldState.as_str())?;
        let holder = match event_type {
            EventType::Delete if !old_state.is_empty() => &old_state,
            _ if !new_state.is_empty() => &new_state,
            _ => &old_state,
        };
        let id_field = |name: &'static str| -> Result<String, EventError> {
            match holder.get(name) {
                Some(Value::String(text)) => {
                    check_text(text, MAX_ID_CHARS)
                        .map_err(|e| EventError::Invalid { field: name, message: format!("(in the state) {e}") })?;
                    Ok(text.clone())
                }
                Some(_) => Err(EventError::Invalid { field: name, message: "(in the state) must be a string".into() }),
                None => Err(EventError::Invalid {
                    field: name,
                    message: "is missing from the state: the object is named by `objCode` and `ID` in `newState` \
                              (in `oldState` on DELETE)"
                        .into(),
                }),
            }
        };
        let obj_code = id_field("objCode")?;
        let obj_id = id_field("ID")?;
        Ok(Self { event_type, subscription_id, epoch_second, nano, obj_code, obj_id, new_state, old_state })
    }

    /// `eventTime` as a timestamp (to the microsecond; the identity keeps nanoseconds).
    pub fn event_time(&self) -> DateTime<Utc> {
        event_time_of(self.epoch_second, self.nano)
    }

    /// For a document (`DOCU`) or document version (`DOCV`) event: the document's id
    /// and version id as a menu click would give them (`currentVersionID` and
    /// `documentID` are the Workfront fields that name the other half; missing ones
    /// are empty).
    pub fn document(&self) -> Option<(String, String)> {
        let holder = if self.event_type == EventType::Delete { &self.old_state } else { &self.new_state };
        let text = |name: &str| holder.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        match self.obj_code.as_str() {
            "DOCU" => Some((self.obj_id.clone(), text("currentVersionID"))),
            "DOCV" => Some((text("documentID"), self.obj_id.clone())),
            _ => None,
        }
    }
}

/// `eventTime` as stored (seconds and nanoseconds since the epoch) as a timestamp; the
/// intake accepts only times Postgres and chrono can hold.
pub fn event_time_of(epoch_second: i64, nano: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(epoch_second, nano).unwrap_or_default()
}

/// RFC 3339 to the millisecond (to the nanosecond when finer digits are set), as
/// templates and the ops API show `eventTime`.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    let nanos = time.timestamp_subsec_nanos();
    // (`is_multiple_of` is newer than the workspace's rust-version.)
    let whole_millis = nanos / 1_000_000 * 1_000_000 == nanos;
    let format = if whole_millis { SecondsFormat::Millis } else { SecondsFormat::Nanos };
    time.to_rfc3339_opts(format, true)
}

fn event_time(value: Option<&Value>) -> Result<(i64, u32), EventError> {
    let invalid = |message: String| EventError::Invalid { field: "eventTime", message };
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Err(EventError::Missing("eventTime"));
    };
    let Value::Object(time) = value else {
        return Err(invalid("must be an object {\"epochSecond\": …, \"nano\": …}".into()));
    };
    let second = time
        .get("epochSecond")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("needs an integer `epochSecond`".into()))?;
    let nano = match time.get("nano") {
        None | Some(Value::Null) => 0,
        Some(n) => n
            .as_u64()
            .filter(|n| *n < 1_000_000_000)
            .ok_or_else(|| invalid("`nano` must be an integer from 0 to 999999999".into()))? as u32,
    };
    // Timestamps Postgres can hold, with room: years 1970 to 9999.
    if !(0..=253_402_300_799).contains(&second) {
        return Err(invalid(format!("`epochSecond` {second} is not a time between 1970 and 9999")));
    }
    Ok((second, nano))
}

/// A state as a JSON object, from an object, a JSON-encoded string or base64.
fn state(value: Option<Value>, field: &'static str) -> Result<Map<String, Value>, EventError> {
    let invalid = |message: &str| EventError::Invalid { field, message: message.to_owned() };
    let decoded = match value {
        None | Some(Value::Null) => return Err(EventError::Missing(field)),
        Some(Value::Object(map)) => {
            let map = Value::Object(map);
            check_nul(&map, field)?;
            let Value::Object(map) = map else { unreachable!("an object") };
            return Ok(map);
        }
        Some(Value::String(text)) => {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return Ok(Map::new());
            }
            if trimmed.starts_with('{') {
                serde_json::from_str::<Value>(trimmed)
                    .map_err(|e| invalid(&format!("is a string but not JSON ({e})")))?
            } else {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(trimmed)
                    .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(trimmed))
                    .map_err(|_| invalid("is a string that is neither a JSON object nor base64"))?;
                serde_json::from_slice::<Value>(&bytes)
                    .map_err(|e| invalid(&format!("is base64 of something that is not JSON ({e})")))?
            }
        }
        Some(_) => return Err(invalid("must be an object (or a JSON or base64 string of one)")),
    };
    if depth(&decoded) > MAX_DEPTH {
        return Err(EventError::TooDeep);
    }
    check_nul(&decoded, field)?;
    match decoded {
        Value::Object(map) => Ok(map),
        _ => Err(invalid("does not hold a JSON object")),
    }
}

/// Refuses a NUL character in any text or key: Postgres cannot store one in `jsonb`,
/// and it is a sender's mistake (a 400), not a storage failure.
fn check_nul(value: &Value, field: &'static str) -> Result<(), EventError> {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        let nul = match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => {
                stack.extend(items);
                false
            }
            Value::Object(fields) => {
                stack.extend(fields.values());
                fields.keys().any(|k| k.contains('\0'))
            }
            _ => false,
        };
        if nul {
            return Err(EventError::Invalid {
                field,
                message: "holds a NUL character (\\u0000), which is refused".into(),
            });
        }
    }
    Ok(())
}

/// How deeply arrays and objects nest (a scalar is 0), without recursion.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, level + 1))),
            Value::Object(fields) => stack.extend(fields.values().map(|v| (v, level + 1))),
            _ => deepest = deepest.max(level),
        }
        deepest = deepest.max(level);
    }
    deepest
}

/// Workfront's filter comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Contains,
    NotContains,
    ContainsOnly,
    Changed,
}

impl Comparison {
    pub const ALL: [Self; 10] = [
        Self::Eq,
        Self::Ne,
        Self::Gt,
        Self::Gte,
        Self::Lt,
        Self::Lte,
        Self::Contains,
        Self::NotContains,
        Self::ContainsOnly,
        Self::Changed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::Contains => "contains",
            Self::NotContains => "notContains",
            Self::ContainsOnly => "containsOnly",
            Self::Changed => "changed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// Which state a filter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateSide {
    NewState,
    OldState,
}

impl StateSide {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewState => "newState",
            Self::OldState => "oldState",
        }
    }

    /// As Workfront and the catalog spell it.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::NewState, Self::OldState].into_iter().find(|side| side.as_str() == text)
    }
}

/// How a trigger's filters combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Connector {
    #[default]
    And,
    Or,
}

impl Connector {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::And => "AND",
            Self::Or => "OR",
        }
    }
}

/// A filter's value: one text, or several (for `contains`/`containsOnly` on
/// multi-value fields).
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    One(String),
    Many(Vec<String>),
}

impl FilterValue {
    /// As Workfront's subscription API takes it (`fieldValue`).
    pub fn to_json(&self) -> Value {
        match self {
            Self::One(text) => Value::String(text.clone()),
            Self::Many(items) => Value::Array(items.iter().cloned().map(Value::String).collect()),
        }
    }

    fn items(&self) -> Vec<&str> {
        match self {
            Self::One(text) => vec![text.as_str()],
            Self::Many(items) => items.iter().map(String::as_str).collect(),
        }
    }
}

/// One filter: `{ field = "status", value = "APR", comparison = "eq", state = "newState" }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// A field of the object; `DE:` names are custom fields, read from
    /// `parameterValues`.
    pub field: String,
    /// `None` only for `changed`.
    pub value: Option<FilterValue>,
    pub comparison: Comparison,
    pub state: StateSide,
}

impl Filter {
    /// Whether the event passes this filter, as Workfront documents the comparison.
    /// A field the state does not hold passes only `ne` and `notContains` (and
    /// `changed`, when the other state holds it).
    pub fn matches(&self, event: &Event) -> bool {
        if self.comparison == Comparison::Changed {
            let new = field(&event.new_state, &self.field).unwrap_or(&Value::Null);
            let old = field(&event.old_state, &self.field).unwrap_or(&Value::Null);
            return new != old;
        }
        let state = match self.state {
            StateSide::NewState => &event.new_state,
            StateSide::OldState => &event.old_state,
        };
        let found = field(state, &self.field).filter(|v| !v.is_null());
        let Some(value) = &self.value else {
            return false;
        };
        match self.comparison {
            Comparison::Eq => found.is_some_and(|f| equal(f, value)),
            Comparison::Ne => !found.is_some_and(|f| equal(f, value)),
            Comparison::Gt => order(found, value).is_some_and(std::cmp::Ordering::is_gt),
            Comparison::Gte => order(found, value).is_some_and(std::cmp::Ordering::is_ge),
            Comparison::Lt => order(found, value).is_some_and(std::cmp::Ordering::is_lt),
            Comparison::Lte => order(found, value).is_some_and(std::cmp::Ordering::is_le),
            Comparison::Contains => found.is_some_and(|f| contains(f, value)),
            Comparison::NotContains => !found.is_some_and(|f| contains(f, value)),
            Comparison::ContainsOnly => found.is_some_and(|f| contains_only(f, value)),
            Comparison::Changed => unreachable!("handled above"),
        }
    }
}

/// Whether an event passes a set of filters joined by `connector` (no filters: yes).
pub fn passes(filters: &[Filter], connector: Connector, event: &Event) -> bool {
    match connector {
        Connector::And => filters.iter().all(|f| f.matches(event)),
        Connector::Or => filters.is_empty() || filters.iter().any(|f| f.matches(event)),
    }
}

/// A field of a state; custom fields (`DE:…`) also under `parameterValues`.
fn field<'a>(state: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    state
        .get(name)
        .or_else(|| name.starts_with("DE:").then(|| state.get("parameterValues")?.as_object()?.get(name)).flatten())
}

/// A scalar as the text Workfront compares (`null`, arrays and objects have none).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Equal as numbers when both are numbers, else as texts.
fn same(found: &str, wanted: &str) -> bool {
    match (number(found), number(wanted)) {
        (Some(a), Some(b)) => a == b,
        _ => found == wanted,
    }
}

fn equal(found: &Value, wanted: &FilterValue) -> bool {
    match (text(found), wanted) {
        (Some(found), FilterValue::One(wanted)) => same(&found, wanted),
        _ => false,
    }
}

/// Ordered as numbers when both are numbers, else as texts (ISO dates order so).
fn order(found: Option<&Value>, wanted: &FilterValue) -> Option<std::cmp::Ordering> {
    let found = text(found?)?;
    let FilterValue::One(wanted) = wanted else {
        return None;
    };
    match (number(&found), number(wanted)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => Some(found.as_str().cmp(wanted.as_str())),
    }
}

/// A text contains the value; a list holds every one of the values.
fn contains(found: &Value, wanted: &FilterValue) -> bool {
    match found {
        Value::Array(items) => {
            let held: Vec<String> = items.iter().filter_map(text).collect();
            wanted.items().iter().all(|w| held.iter().any(|h| same(h, w)))
        }
        other => match (text(other), wanted) {
            (Some(found), FilterValue::One(wanted)) => found.contains(wanted.as_str()),
            _ => false,
        },
    }
}

/// The field's values are exactly the given ones (order and repeats aside).
fn contains_only(found: &Value, wanted: &FilterValue) -> bool {
    let held: Vec<String> = match found {
        Value::Array(items) => items.iter().filter_map(text).collect(),
        other => text(other).into_iter().collect(),
    };
    let wanted = wanted.items();
    held.iter().all(|h| wanted.iter().any(|w| same(h, w))) && wanted.iter().all(|w| held.iter().any(|h| same(h, w)))
}

#[cfg(test)]
mod tests;
