use base64::Engine;
use serde_json::json;

use super::*;

fn body(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

fn update(old_status: &str, new_status: &str) -> Event {
    Event::from_body(&body(json!({
        "eventType": "UPDATE", "subscriptionId": "sub-1", "eventVersion": "v2",
        "eventTime": {"epochSecond": 1_507_319_788, "nano": 941_000_000},
        "newState": {"ID": "doc-1", "objCode": "DOCU", "status": new_status, "name": "Brief.pdf",
                     "parameterValues": {"DE:Region": "EMEA", "DE:Channels": ["web", "print"]}},
        "oldState": {"ID": "doc-1", "objCode": "DOCU", "status": old_status, "name": "Brief.pdf"}
    })))
    .unwrap()
}

fn filter(field: &str, comparison: Comparison, value: Option<FilterValue>) -> Filter {
    Filter { field: field.into(), value, comparison, state: StateSide::NewState }
}

fn one(text: &str) -> Option<FilterValue> {
    Some(FilterValue::One(text.into()))
}

#[test]
fn a_v2_message_decodes_with_its_object_and_time() {
    let event = update("CUR", "APR");
    assert_eq!(event.event_type, EventType::Update);
    assert_eq!((event.obj_code.as_str(), event.obj_id.as_str()), ("DOCU", "doc-1"));
    assert_eq!((event.epoch_second, event.nano), (1_507_319_788, 941_000_000));
    assert_eq!(rfc3339(event.event_time()), "2017-10-06T19:56:28.941Z");
    assert_eq!(event.document(), Some(("doc-1".to_owned(), String::new())));
}

#[test]
fn states_arrive_as_objects_json_strings_or_base64() {
    let state = json!({"ID": "t-1", "objCode": "TASK", "name": "Draft"});
    let encoded = base64::engine::general_purpose::STANDARD.encode(state.to_string());
    for new_state in [state.clone(), json!(state.to_string()), json!(encoded)] {
        let event = Event::from_body(&body(json!({
            "eventType": "CREATE", "subscriptionId": "s", "eventTime": {"epochSecond": 1, "nano": 0},
            "newState": new_state, "oldState": {}
        })))
        .unwrap();
        assert_eq!(event.obj_id, "t-1");
        assert_eq!(event.new_state.get("name"), Some(&json!("Draft")));
        assert!(event.old_state.is_empty());
    }
}

#[test]
fn a_delete_names_the_object_from_the_old_state() {
    let event = Event::from_body(&body(json!({
        "eventType": "DELETE", "subscriptionId": "s", "eventTime": {"epochSecond": 1, "nano": 5},
        "newState": {}, "oldState": {"ID": "v-9", "objCode": "DOCV", "documentID": "doc-3"}
    })))
    .unwrap();
    assert_eq!(event.obj_id, "v-9");
    assert_eq!(event.document(), Some(("doc-3".to_owned(), "v-9".to_owned())));
    assert_eq!(rfc3339(event.event_time()), "1970-01-01T00:00:01.000000005Z");
}

#[test]
fn bad_messages_are_refused_with_the_field_named() {
    let good = json!({"eventType": "UPDATE", "subscriptionId": "s", "eventTime": {"epochSecond": 1, "nano": 0},
                      "newState": {"ID": "a", "objCode": "TASK"}, "oldState": {}});
    let without = |key: &str| {
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove(key);
        Event::from_body(&body(v)).unwrap_err().to_string()
    };
    let with = |key: &str, value: serde_json::Value| {
        let mut v = good.clone();
        v[key] = value;
        Event::from_body(&body(v)).unwrap_err().to_string()
    };
    assert!(Event::from_body(b"not json").unwrap_err().to_string().contains("not JSON"));
    assert_eq!(Event::from_body(b"[]").unwrap_err(), EventError::NotObject);
    for key in ["eventType", "eventTime", "newState", "oldState", "subscriptionId"] {
        assert!(without(key).contains(key), "{key}: {}", without(key));
    }
    assert!(with("eventType", json!("MERGE")).contains("MERGE"));
    assert!(with("eventTime", json!("yesterday")).contains("eventTime"));
    assert!(with("eventTime", json!({"epochSecond": 1, "nano": 2_000_000_000})).contains("nano"));
    assert!(with("newState", json!("!!!not base64")).contains("newState"));
    assert!(with("newState", json!("aGVsbG8=")).contains("not JSON"));
    assert!(with("newState", json!({"objCode": "TASK"})).contains("ID"));
    assert!(with("newState", json!({"ID": "a\u{202e}b", "objCode": "TASK"})).contains("ID"));
    assert!(with("eventVersion", json!("v1")).contains("v2"));
    assert!(with("newState", json!({"ID": "a", "objCode": "TASK", "name": "a\u{0}b"})).contains("NUL"));
    assert!(with("oldState", json!({"x\u{0}": 1})).contains("NUL"));
    assert!(with("newState", json!(json!({"ID": "a", "objCode": "TASK", "n": ["\u{0}"]}).to_string())).contains("NUL"));
    let mut deep = json!("leaf");
    for _ in 0..40 {
        deep = json!([deep]);
    }
    assert_eq!(Event::from_body(&body(json!({"x": deep}))).unwrap_err(), EventError::TooDeep);
    let nested = json!({"ID": "a", "objCode": "TASK", "deep": deep}).to_string();
    assert_eq!(with("newState", json!(nested)), EventError::TooDeep.to_string());
}

#[test]
fn comparisons_follow_workfront() {
    let event = update("CUR", "APR");
    assert!(filter("status", Comparison::Eq, one("APR")).matches(&event));
    assert!(!filter("status", Comparison::Ne, one("APR")).matches(&event));
    assert!(filter("missing", Comparison::Ne, one("APR")).matches(&event));
    assert!(!filter("missing", Comparison::Eq, one("APR")).matches(&event));
    assert!(filter("name", Comparison::Contains, one("Brief")).matches(&event));
    assert!(filter("name", Comparison::NotContains, one("Final")).matches(&event));
    assert!(filter("DE:Region", Comparison::Eq, one("EMEA")).matches(&event));
    assert!(filter("DE:Channels", Comparison::Contains, one("web")).matches(&event));
    assert!(filter(
        "DE:Channels",
        Comparison::ContainsOnly,
        Some(FilterValue::Many(vec!["print".into(), "web".into()]))
    )
    .matches(&event));
    assert!(!filter("DE:Channels", Comparison::ContainsOnly, one("web")).matches(&event));
    assert!(filter("status", Comparison::Changed, None).matches(&event));
    assert!(!filter("name", Comparison::Changed, None).matches(&event));
    let mut old = filter("status", Comparison::Eq, one("CUR"));
    old.state = StateSide::OldState;
    assert!(old.matches(&event));
}

#[test]
fn numbers_compare_as_numbers_and_dates_as_text() {
    let event = Event::from_body(&body(json!({
        "eventType": "UPDATE", "subscriptionId": "s", "eventTime": {"epochSecond": 1},
        "newState": {"ID": "a", "objCode": "TASK", "percentComplete": 100, "plannedCompletionDate": "2026-12-04T10:00:00:000-0800"},
        "oldState": {}
    })))
    .unwrap();
    assert!(filter("percentComplete", Comparison::Gt, one("99.5")).matches(&event));
    assert!(filter("percentComplete", Comparison::Gte, one("100")).matches(&event));
    assert!(filter("percentComplete", Comparison::Eq, one("100.0")).matches(&event));
    assert!(!filter("percentComplete", Comparison::Lt, one("20")).matches(&event), "100 < 20 as text, not as numbers");
    assert!(filter("plannedCompletionDate", Comparison::Lt, one("2027")).matches(&event));
    assert!(!filter("missing", Comparison::Lte, one("5")).matches(&event));
}

#[test]
fn filters_join_with_and_or_or() {
    let event = update("CUR", "APR");
    let yes = filter("status", Comparison::Eq, one("APR"));
    let no = filter("status", Comparison::Eq, one("REJ"));
    assert!(passes(&[], Connector::And, &event));
    assert!(passes(&[], Connector::Or, &event));
    assert!(!passes(&[yes.clone(), no.clone()], Connector::And, &event));
    assert!(passes(&[yes, no.clone()], Connector::Or, &event));
    assert!(!passes(&[no], Connector::Or, &event));
}

/// The trap: `status eq APR` alone fires again on every later edit of an approved
/// document; `changed` + `eq` fires once, when it becomes approved.
#[test]
fn became_approved_fires_once_where_eq_alone_fires_on_every_edit() {
    let approve = update("CUR", "APR");
    let later_edit = update("APR", "APR");
    let eq_alone = [filter("status", Comparison::Eq, one("APR"))];
    let became = [filter("status", Comparison::Changed, None), filter("status", Comparison::Eq, one("APR"))];
    assert!(passes(&eq_alone, Connector::And, &approve) && passes(&eq_alone, Connector::And, &later_edit));
    assert!(passes(&became, Connector::And, &approve));
    assert!(!passes(&became, Connector::And, &later_edit));
}
