//! `[[trigger]]`: which Workfront events start which actions.
//!
//! ```toml
//! [[trigger]]
//! name = "archive-approved"
//! obj_code = "DOCU"
//! event_type = "UPDATE"
//! run = ["archive", "tell-owner"]
//! filters = [{ field = "status", comparison = "changed" },
//!            { field = "status", comparison = "eq", value = "APR" }]
//! ```

use std::collections::HashSet;

use serde::Deserialize;

use crate::domain::check_text;
use crate::events::{passes, Comparison, Connector, Event, EventType, Filter, FilterValue, StateSide};

use crate::domain::MAX_NAME_CHARS;

/// Most filters a trigger may hold (Workfront allows 10 groups of 5).
pub const MAX_FILTERS: usize = 50;

/// A validated trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub name: String,
    /// Workfront object code: `DOCU`, `DOCV`, `TASK`, `PROJ`, `OPTASK`, …
    pub obj_code: String,
    pub event_type: EventType,
    /// The actions it starts, one job each.
    pub run: Vec<String>,
    pub filters: Vec<Filter>,
    pub connector: Connector,
}

impl Trigger {
    /// Whether this trigger wants the event: same object code and event type, and the
    /// filters pass.
    pub fn matches(&self, event: &Event) -> bool {
        self.obj_code == event.obj_code
            && self.event_type == event.event_type
            && passes(&self.filters, self.connector, event)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrigger {
    name: Option<String>,
    obj_code: Option<String>,
    event_type: Option<String>,
    run: Option<toml::Value>,
    filters: Option<Vec<RawFilter>>,
    filter_connector: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    field: Option<String>,
    value: Option<toml::Value>,
    comparison: Option<String>,
    state: Option<String>,
}

type FieldError = (String, &'static str, String);

impl RawTrigger {
    pub(super) fn validate(self, index: usize, is_action: impl Fn(&str) -> bool) -> Result<Trigger, FieldError> {
        let unnamed = format!("#{}", index + 1);
        let name = self.name.ok_or((unnamed.clone(), "name", "is missing".to_owned()))?;
        check_text(&name, MAX_NAME_CHARS).map_err(|e| (unnamed, "name", e.to_string()))?;
        let fail = |field: &'static str, message: String| (name.clone(), field, message);
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Err(fail("name", "may hold only ASCII letters, digits, '_', '-' and '.'".into()));
        }
        let obj_code = self.obj_code.ok_or_else(|| fail("obj_code", "is missing (e.g. \"DOCU\", \"TASK\")".into()))?;
        let code_ok = (2..=16).contains(&obj_code.len())
            && obj_code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !code_ok {
            return Err(fail(
                "obj_code",
                format!("{obj_code:?} is not a Workfront object code (upper-case, e.g. \"DOCU\", \"DOCV\", \"TASK\", \"PROJ\")"),
            ));
        }
        let event_type = match self.event_type {
            None => return Err(fail("event_type", "is missing; use \"CREATE\", \"UPDATE\" or \"DELETE\"".into())),
            Some(text) => EventType::parse(&text)
                .ok_or_else(|| fail("event_type", format!("{text:?} is not \"CREATE\", \"UPDATE\" or \"DELETE\"")))?,
        };
        let run = match self.run {
            None => return Err(fail("run", "is missing: name the action (or a list of actions) to start".into())),
            Some(toml::Value::String(one)) => vec![one],
            Some(toml::Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(name) => Ok(name),
                    other => Err(fail("run", format!("{other} is not an action name"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => return Err(fail("run", format!("{other} is neither an action name nor a list of them"))),
        };
        if run.is_empty() {
            return Err(fail("run", "is empty: name at least one action".into()));
        }
        let mut seen = HashSet::new();
        for action in &run {
            if !is_action(action) {
                return Err(fail("run", format!("{action:?} is not an action of the catalog")));
            }
            if !seen.insert(action) {
                return Err(fail("run", format!("names {action:?} twice")));
            }
        }
        let connector = match self.filter_connector.as_deref() {
            None | Some("AND") => Connector::And,
            Some("OR") => Connector::Or,
            Some(other) => return Err(fail("filter_connector", format!("{other:?} is neither \"AND\" nor \"OR\""))),
        };
        let raw_filters = self.filters.unwrap_or_default();
        if raw_filters.len() > MAX_FILTERS {
            return Err(fail("filters", format!("holds {} filters; at most {MAX_FILTERS}", raw_filters.len())));
        }
        let filters = raw_filters
            .into_iter()
            .enumerate()
            .map(|(n, raw)| raw.validate().map_err(|m| fail("filters", format!("filter {}: {m}", n + 1))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Trigger { name, obj_code, event_type, run, filters, connector })
    }
}

impl RawFilter {
    fn validate(self) -> Result<Filter, String> {
        let field = self.field.ok_or("`field` is missing")?;
        check_text(&field, 255).map_err(|e| format!("`field` {e}"))?;
        let comparisons = Comparison::ALL.map(Comparison::as_str).join(" ");
        let comparison = match self.comparison {
            None => return Err(format!("`comparison` is missing; use one of: {comparisons}")),
            Some(text) => {
                Comparison::parse(&text).ok_or_else(|| format!("`comparison` {text:?} is not one of: {comparisons}"))?
            }
        };
        let state = match self.state.as_deref() {
            None => StateSide::NewState,
            Some(text) => StateSide::parse(text)
                .ok_or_else(|| format!("`state` {text:?} is neither \"newState\" nor \"oldState\""))?,
        };
        let value = match (self.value, comparison) {
            (None, Comparison::Changed) => None,
            (Some(_), Comparison::Changed) => {
                return Err("`value` is not used with \"changed\" (it compares the old and new state)".into())
            }
            (None, _) => return Err(format!("`value` is missing (needed by {:?})", comparison.as_str())),
            (Some(value), _) => Some(filter_value(value, comparison)?),
        };
        Ok(Filter { field, value, comparison, state })
    }
}

fn scalar(value: toml::Value) -> Result<String, String> {
    let text = match value {
        toml::Value::String(s) => s,
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => return Err(format!("`value` {other} is not a string, number or boolean")),
    };
    check_text(&text, 255).map_err(|e| format!("`value` {e}"))?;
    Ok(text)
}

fn filter_value(value: toml::Value, comparison: Comparison) -> Result<FilterValue, String> {
    match value {
        toml::Value::Array(items) => {
            if !matches!(comparison, Comparison::Contains | Comparison::NotContains | Comparison::ContainsOnly) {
                return Err(format!(
                    "a list of values works only with contains, notContains and containsOnly, not {:?}",
                    comparison.as_str()
                ));
            }
            if items.is_empty() {
                return Err("`value` is an empty list".into());
            }
            Ok(FilterValue::Many(items.into_iter().map(scalar).collect::<Result<_, _>>()?))
        }
        other => Ok(FilterValue::One(scalar(other)?)),
    }
}
