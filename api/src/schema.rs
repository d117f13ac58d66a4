//! What serde cannot say about the values Docket reads, said once for the OpenAPI
//! document: the text patterns Docket validates, and "empty means not given" for the
//! query values HTML forms send.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// 1–255 characters without control characters (Unicode category Cc) or the format
/// characters that [`docket::domain::check_text`] refuses, as validated.
/// Attributes cannot name a constant, so the `#[utoipa::path]`s spell it out; a unit
/// test checks that every copy in the document is this one.
pub const TEXT_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]+$";
/// The same, or empty: a filter (an empty value, as HTML forms send, means "any").
pub const FILTER_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*$";

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
