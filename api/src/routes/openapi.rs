//! `GET /openapi.json`: the OpenAPI 3.1 document of every JSON endpoint, Workfront's
//! and the operators'. Derived by utoipa from the handlers' `#[utoipa::path]`
//! attributes and the types they return; the routes are registered through
//! [`utoipa_axum::router::OpenApiRouter`], so a route in the router is a path in the
//! document. What serde cannot say (patterns, "empty means any") is said once, in
//! [`crate::schema`].

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Docket",
        description = "Workfront document webhook provider that runs custom actions as durable jobs."
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "workfront", description = "What Workfront calls"),
        (name = "probes", description = "Health, readiness and metrics"),
        (name = "ops", description = "Operators: jobs, actions, figures, audit, dashboard sessions (admin token)")
    )
)]
struct Base;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("apiKey", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("apiKey"))));
        components.add_security_scheme(
            "adminToken",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Workfront sends the subscription's authToken bare or as `Bearer <token>`.
        components.add_security_scheme(
            "eventToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("Authorization"))),
        );
    }
}

/// The document's frame (info, tags, security schemes) the routers add paths to.
pub fn base() -> utoipa::openapi::OpenApi {
    let mut document = Base::openapi();
    document.info.version = docket::VERSION.to_owned();
    document
}

/// What the routers' paths need after they are collected: utoipa documents an
/// optional body (`Option<T>`) as `null` or `T`; Docket's optional bodies are absent
/// or `T`, and `null` is refused, so the `null` branch goes.
pub fn finish(document: &mut utoipa::openapi::OpenApi) {
    for item in document.paths.paths.values_mut() {
        for operation in [&mut item.post, &mut item.put, &mut item.patch].into_iter().flatten() {
            let Some(body) = operation.request_body.as_mut() else { continue };
            if body.required == Some(utoipa::openapi::Required::True) {
                continue;
            }
            for content in body.content.values_mut() {
                if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
                    let mut rest = one_of.items.iter().filter(|item| !is_null(item));
                    if let (Some(only), None) = (rest.next(), rest.next()) {
                        content.schema = Some(only.clone());
                    }
                }
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object)) if object.schema_type == SchemaType::Type(Type::Null))
}

/// Serves the finished document.
pub fn router(document: utoipa::openapi::OpenApi) -> Router<AppState> {
    let document = Arc::new(document);
    Router::new().route("/openapi.json", get(move || async move { Json(document.as_ref().clone()) }))
}

#[cfg(test)]
mod tests {
    use crate::schema::{FILTER_PATTERN, TEXT_PATTERN};

    fn document() -> serde_json::Value {
        serde_json::to_value(crate::routes::document()).unwrap()
    }

    fn patterns(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    match (key.as_str(), inner) {
                        ("pattern", serde_json::Value::String(p)) => found.push(p.clone()),
                        _ => patterns(inner, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| patterns(i, found)),
            _ => {}
        }
    }

    #[test]
    fn an_optional_body_is_absent_or_an_object_never_null() {
        let document = document();
        let body = &document["paths"]["/ops/actions/{action}/pause"]["post"]["requestBody"];
        assert_eq!(body["required"], serde_json::Value::Null, "{body}");
        assert_eq!(
            body["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/PauseRequest",
            "{body}"
        );
    }

    /// The document lists exactly what serde writes and what is stored, for each
    /// enum stored as text (schemathesis found `retry_failed` listed as `RetryFailed`).
    #[test]
    fn every_text_enum_schema_lists_the_values_written() {
        use docket::domain::{AuditAction, CircuitState};
        let document = document();
        let check = |name: &str, written: Vec<serde_json::Value>, stored: Vec<&str>| {
            let schema = &document["components"]["schemas"][name];
            assert_eq!(schema["enum"], serde_json::Value::Array(written.clone()), "{name}: {schema}");
            assert_eq!(written, stored.iter().map(|s| serde_json::json!(s)).collect::<Vec<_>>(), "{name}");
        };
        check(
            "AuditAction",
            AuditAction::ALL.iter().map(|a| serde_json::to_value(a).unwrap()).collect(),
            AuditAction::ALL.iter().map(|a| a.as_str()).collect(),
        );
        check(
            "CircuitState",
            CircuitState::ALL.iter().map(|c| serde_json::to_value(c).unwrap()).collect(),
            CircuitState::ALL.iter().map(|c| c.as_str()).collect(),
        );
    }

    #[test]
    fn every_control_character_pattern_is_one_of_the_two() {
        let mut found = vec![];
        patterns(&document(), &mut found);
        found.retain(|p| p.contains("u0000"));
        assert!(found.len() >= 5, "{found:?}");
        assert!(TEXT_PATTERN.contains(docket::domain::FORMAT_CHARACTERS));
        assert!(FILTER_PATTERN.contains(docket::domain::FORMAT_CHARACTERS));
        for pattern in found {
            assert!(pattern == TEXT_PATTERN || pattern == FILTER_PATTERN, "{pattern}");
        }
    }
}
