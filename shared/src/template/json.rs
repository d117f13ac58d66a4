//! JSON values as templates see them.

use std::collections::BTreeMap;

use minijinja::Value;

/// A JSON value as a template value (a captured result).
pub(super) fn json_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(f)) => Value::from(f),
            _ => Value::from(n.to_string()),
        },
        serde_json::Value::String(s) => Value::from(s.clone()),
        serde_json::Value::Array(items) => Value::from(items.iter().map(json_value).collect::<Vec<_>>()),
        serde_json::Value::Object(fields) => {
            Value::from(fields.iter().map(|(k, v)| (k.clone(), json_value(v))).collect::<BTreeMap<String, Value>>())
        }
    }
}
