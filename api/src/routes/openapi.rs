//! `GET /openapi.json`: the OpenAPI 3.1 document of every JSON endpoint, Workfront's
//! and the operators'. Derived by utoipa from the handlers' `#[utoipa::path]`
//! attributes and the types they return; the routes are registered through
//! [`utoipa_axum::router::OpenApiRouter`], so a route in the router is a path in the
//! document. What serde cannot say (patterns, "empty means any") is said here once.

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::state::AppState;

/// 1–255 characters without control characters (Unicode category Cc) or the format
/// characters that [`docket::domain::check_text`] refuses, as validated.
/// Attributes cannot name a constant, so the `#[utoipa::path]`s spell it out; a unit
/// test checks that every copy in the document is this one.
pub const TEXT_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]+$";
/// The same, or empty: a filter (an empty value, as HTML forms send, means "any").
pub const FILTER_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*$";

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

fn empty_string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).max_length(Some(0))
}

fn empty_or(schema: impl Into<RefOr<Schema>>) -> RefOr<Schema> {
    OneOfBuilder::new().item(schema).item(empty_string()).into()
}

/// A text filter: a value Docket could have stored, or empty for "any".
pub struct Filter;

impl PartialSchema for Filter {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).max_length(Some(255)).pattern(Some(FILTER_PATTERN)).into()
    }
}
impl ToSchema for Filter {}

/// A state filter: a job state, or empty for "any".
pub struct StateFilter;

impl PartialSchema for StateFilter {
    fn schema() -> RefOr<Schema> {
        empty_or(docket::domain::JobState::schema())
    }
}
impl ToSchema for StateFilter {}

/// A moment (RFC 3339), or empty for "not given".
pub struct EmptyOrDateTime;

impl PartialSchema for EmptyOrDateTime {
    fn schema() -> RefOr<Schema> {
        empty_or(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
    }
}
impl ToSchema for EmptyOrDateTime {}

/// A job id, or empty for "not given".
pub struct EmptyOrUuid;

impl PartialSchema for EmptyOrUuid {
    fn schema() -> RefOr<Schema> {
        empty_or(
            ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        )
    }
}
impl ToSchema for EmptyOrUuid {}

/// A 64-bit integer, its bounds stated: what lies outside is refused with 400.
pub struct Int64;

impl PartialSchema for Int64 {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(i64::MIN as isize))
            .maximum(Some(i64::MAX as isize))
            .into()
    }
}
impl ToSchema for Int64 {}

/// A 64-bit integer, or empty for "not given".
pub struct EmptyOrInt64;

impl PartialSchema for EmptyOrInt64 {
    fn schema() -> RefOr<Schema> {
        empty_or(Int64::schema())
    }
}
impl ToSchema for EmptyOrInt64 {}

#[cfg(test)]
mod tests {
    use super::*;

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
