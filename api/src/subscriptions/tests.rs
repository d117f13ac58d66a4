//! The plan, without Workfront: wanted subscriptions from a catalog against listed ones.

use std::path::Path;

use docket::catalog::Catalog;
use serde_json::json;

use super::*;

const INTAKE: &str = "https://docket.example.com/workfront/events";

fn catalog() -> Catalog {
    let text = r#"
[[action]]
name = "a"
kind = "noop"

[[trigger]]
name = "approved"
obj_code = "DOCU"
event_type = "UPDATE"
run = "a"
filters = [{ field = "status", comparison = "changed" }, { field = "status", comparison = "eq", value = "APR" }]

[[trigger]]
name = "approved-again"
obj_code = "DOCU"
event_type = "UPDATE"
run = "a"
filters = [{ field = "status", comparison = "eq", value = "APR" }, { field = "status", comparison = "changed" }]

[[trigger]]
name = "sized"
obj_code = "DOCV"
event_type = "CREATE"
run = "a"
filters = [{ field = "size", comparison = "gt", value = 1000 }]
"#;
    Catalog::parse(text, Path::new("actions.toml")).unwrap()
}

fn listed(id: &str, item: serde_json::Value) -> Listed {
    let mut item = item;
    item["id"] = json!(id);
    Listed::from_json(&item).unwrap()
}

#[test]
fn the_intake_url_has_no_double_slash() {
    for (public, intake) in [
        ("https://docket.example.com", INTAKE),
        ("https://docket.example.com/", INTAKE),
        ("https://example.com/docket/", "https://example.com/docket/workfront/events"),
    ] {
        assert_eq!(intake_url(&url::Url::parse(public).unwrap()), intake);
    }
}

#[test]
fn triggers_wanting_the_same_subscription_share_it() {
    let wanted = wanted(&catalog(), INTAKE);
    assert_eq!(wanted.len(), 2);
    assert_eq!(wanted[0].triggers, ["approved", "approved-again"]);
    assert_eq!(
        wanted[0].shape.to_json()["filters"],
        json!([{"fieldName": "status", "comparison": "changed", "state": "newState"},
               {"fieldName": "status", "comparison": "eq", "fieldValue": "APR", "state": "newState"}])
    );
    assert_eq!(wanted[1].shape.text(), r#"DOCV CREATE size gt "1000""#);
}

#[test]
fn listed_subscriptions_compare_with_workfront_defaults_and_filters_as_a_set() {
    let existing = [
        // Filters in another order, no state, no connector, a number for a value.
        listed(
            "1",
            json!({"objCode": "DOCV", "eventType": "CREATE", "url": INTAKE,
                           "filters": [{"fieldName": "size", "comparison": "gt", "fieldValue": 1000}]}),
        ),
        listed(
            "2",
            json!({"objCode": "DOCU", "eventType": "UPDATE", "url": INTAKE, "filterConnector": "AND",
                           "filters": [{"fieldName": "status", "comparison": "eq", "fieldValue": "APR"},
                                       {"fieldName": "status", "comparison": "changed", "fieldValue": null}]}),
        ),
        // The same again: a duplicate.
        listed(
            "3",
            json!({"objCode": "DOCV", "eventType": "CREATE", "url": INTAKE,
                           "filters": [{"fieldName": "size", "comparison": "gt", "fieldValue": "1000"}]}),
        ),
        // Docket's, but with another connector: nobody wants it.
        listed(
            "4",
            json!({"objCode": "DOCV", "eventType": "CREATE", "url": INTAKE, "filterConnector": "OR",
                           "filters": [{"fieldName": "size", "comparison": "gt", "fieldValue": "1000"}]}),
        ),
        // Someone else's, nobody wants it either: left alone.
        listed("5", json!({"objCode": "PROJ", "eventType": "DELETE", "url": "https://elsewhere.example.com/"})),
    ];
    let plan = plan(wanted(&catalog(), INTAKE), &existing, INTAKE);
    assert!(plan.create.is_empty(), "{:?}", plan.create);
    let deleted: Vec<(&str, &str)> = plan.delete.iter().map(|(l, why)| (l.id.as_str(), *why)).collect();
    assert_eq!(deleted, [("3", "a duplicate"), ("4", "no trigger wants it")]);
    assert_eq!((plan.unchanged, plan.elsewhere), (2, 1));
}

#[test]
fn a_subscription_without_an_id_is_refused() {
    assert!(Listed::from_json(&json!({"objCode": "DOCU"})).is_none());
    assert_eq!(Listed::from_json(&json!({"id": 7})).unwrap().id, "7");
}

#[test]
fn errors_have_exit_codes_and_never_hold_the_session() {
    assert_eq!(SubscriptionsError::Settings("x".into()).exit_code(), 2);
    assert_eq!(SubscriptionsError::Workfront(WorkfrontError::Unauthorized).exit_code(), 1);
    let command = <Command as clap::Parser>::try_parse_from([
        "docket-api workfront-subscriptions",
        "plan",
        "--workfront-session-id",
        "very-secret-session",
        "--event-tokens",
        "token-one,token-two",
    ])
    .unwrap();
    let printed = format!("{command:?}");
    assert!(!printed.contains("very-secret-session") && !printed.contains("token-one"), "{printed}");
    assert_eq!(command.event_tokens.len(), 2);
}
