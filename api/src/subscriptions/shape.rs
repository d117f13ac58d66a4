//! Subscriptions as Docket compares them: what the catalog wants, what the tenant
//! holds, and the plan that makes the second follow the first.

use std::collections::BTreeSet;

use docket::catalog::{Catalog, Trigger};
use docket::events::StateSide;
use serde_json::{json, Value};

/// Docket's intake path, under DOCKET_PUBLIC_URL.
pub const INTAKE_PATH: &str = "/workfront/events";

/// One filter as Workfront's API spells it; `field_value` is compact JSON text (so
/// that filters order and compare as a set).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FilterShape {
    pub field_name: String,
    pub comparison: String,
    pub field_value: Option<String>,
    pub state: String,
}

/// What a subscription is, apart from its id and `authToken`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub obj_code: String,
    pub event_type: String,
    pub url: String,
    pub filters: Vec<FilterShape>,
    pub connector: String,
}

/// A subscription the tenant holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    pub shape: Shape,
}

/// A subscription the catalog wants, and the triggers that want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub shape: Shape,
    pub triggers: Vec<String>,
}

/// What `apply` would do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub create: Vec<Wanted>,
    /// Docket's subscriptions to delete, each with the reason.
    pub delete: Vec<(Listed, &'static str)>,
    pub unchanged: usize,
    /// Subscriptions pointing elsewhere (left alone).
    pub elsewhere: usize,
}

type Key = (String, String, String, BTreeSet<FilterShape>, String);

impl Shape {
    /// The subscription a trigger wants.
    pub fn of_trigger(trigger: &Trigger, intake: &str) -> Self {
        let filters = trigger
            .filters
            .iter()
            .map(|f| FilterShape {
                field_name: f.field.clone(),
                comparison: f.comparison.as_str().to_owned(),
                field_value: f.value.as_ref().map(|v| v.to_json().to_string()),
                state: f.state.as_str().to_owned(),
            })
            .collect();
        Self {
            obj_code: trigger.obj_code.clone(),
            event_type: trigger.event_type.as_str().to_owned(),
            url: intake.to_owned(),
            filters,
            connector: trigger.connector.as_str().to_owned(),
        }
    }

    /// Identity for comparing: filters as a set.
    fn key(&self) -> Key {
        let filters = self.filters.iter().cloned().collect();
        (self.obj_code.clone(), self.event_type.clone(), self.url.clone(), filters, self.connector.clone())
    }

    /// The create request's body, without `authToken`.
    pub fn to_json(&self) -> Value {
        let filters: Vec<Value> = self
            .filters
            .iter()
            .map(|f| {
                let mut filter = json!({"fieldName": f.field_name, "comparison": f.comparison, "state": f.state});
                if let Some(value) = &f.field_value {
                    filter["fieldValue"] = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.clone()));
                }
                filter
            })
            .collect();
        json!({"objCode": self.obj_code, "eventType": self.event_type, "url": self.url,
               "filters": filters, "filterConnector": self.connector})
    }

    /// `status changed AND status eq "APR"`, or `(no filters)`.
    pub fn filters_text(&self) -> String {
        if self.filters.is_empty() {
            return "(no filters)".into();
        }
        let one = |f: &FilterShape| {
            let mut text = format!("{} {}", f.field_name, f.comparison);
            if let Some(value) = &f.field_value {
                text = format!("{text} {value}");
            }
            if f.state != StateSide::NewState.as_str() {
                text = format!("{text} ({})", f.state);
            }
            text
        };
        self.filters.iter().map(one).collect::<Vec<_>>().join(&format!(" {} ", self.connector))
    }

    /// `DOCU UPDATE status changed AND status eq "APR"`.
    pub fn text(&self) -> String {
        format!("{} {} {}", self.obj_code, self.event_type, self.filters_text())
    }
}

impl Listed {
    /// A subscription from Workfront's JSON; `None` without an id. Missing fields are
    /// empty, a missing `state` is `newState`, a missing connector `AND`; scalar filter
    /// values compare as the texts Docket sends.
    pub fn from_json(item: &Value) -> Option<Self> {
        let id = item.get("id").and_then(id_text)?;
        let text = |name: &str, default: &str| item.get(name).and_then(Value::as_str).unwrap_or(default).to_owned();
        let filters = item
            .get("filters")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|f| FilterShape {
                field_name: f.get("fieldName").and_then(Value::as_str).unwrap_or_default().to_owned(),
                comparison: f.get("comparison").and_then(Value::as_str).unwrap_or_default().to_owned(),
                field_value: f.get("fieldValue").filter(|v| !v.is_null()).map(|v| as_texts(v).to_string()),
                state: f.get("state").and_then(Value::as_str).unwrap_or(StateSide::NewState.as_str()).to_owned(),
            })
            .collect();
        let shape = Shape {
            obj_code: text("objCode", ""),
            event_type: text("eventType", ""),
            url: text("url", ""),
            filters,
            connector: text("filterConnector", "AND"),
        };
        Some(Self { id, shape })
    }
}

/// An id given as a string or a number.
pub(super) fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Numbers and booleans as strings, in lists too (Docket sends every value as text).
fn as_texts(value: &Value) -> Value {
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Array(items) => Value::Array(items.iter().map(as_texts).collect()),
        other => other.clone(),
    }
}

/// Docket's intake URL under its public base: `{public}/workfront/events`.
pub fn intake_url(public: &url::Url) -> String {
    format!("{}{INTAKE_PATH}", public.as_str().trim_end_matches('/'))
}

/// The subscriptions the catalog wants (triggers that want the same one share it).
pub fn wanted(catalog: &Catalog, intake: &str) -> Vec<Wanted> {
    let mut wanted: Vec<Wanted> = Vec::new();
    for trigger in catalog.triggers() {
        let shape = Shape::of_trigger(trigger, intake);
        match wanted.iter_mut().find(|w| w.shape.key() == shape.key()) {
            Some(same) => same.triggers.push(trigger.name.clone()),
            None => wanted.push(Wanted { shape, triggers: vec![trigger.name.clone()] }),
        }
    }
    wanted
}

/// Compares what is wanted with what the tenant holds. Only subscriptions whose url
/// is `intake` may be deleted: those no trigger wants, and duplicates.
pub fn plan(wanted: Vec<Wanted>, listed: &[Listed], intake: &str) -> Plan {
    let mut result = Plan::default();
    let mut found = vec![false; wanted.len()];
    for subscription in listed {
        if subscription.shape.url != intake {
            result.elsewhere += 1;
            continue;
        }
        let key = subscription.shape.key();
        match wanted.iter().position(|w| w.shape.key() == key) {
            Some(at) if !found[at] => {
                found[at] = true;
                result.unchanged += 1;
            }
            Some(_) => result.delete.push((subscription.clone(), "a duplicate")),
            None => result.delete.push((subscription.clone(), "no trigger wants it")),
        }
    }
    result.create = wanted.into_iter().zip(found).filter(|(_, found)| !found).map(|(w, _)| w).collect();
    result
}
