//! The jobs list's query (`GET /ops/jobs`, the dashboard's jobs page and its bulk
//! form): read leniently as HTML forms send it (an empty value means "not given"),
//! checked, and turned into the service's [`JobSearch`].

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use docket::db::ops::JobFilter;
use docket::domain::{JobId, JobState};

use crate::schema::{EmptyOrDateTime, EmptyOrInt64, EmptyOrUuid, Filter, StateFilter};
use crate::service::jobs::{JobSearch, PAGE_CAP};
use crate::service::OpsError;

/// The list's query parameters (all optional; an empty value means "not given").
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    #[param(inline, value_type = Option<StateFilter>)]
    pub state: Option<String>,
    #[param(inline, value_type = Option<Filter>)]
    pub action: Option<String>,
    #[param(inline, value_type = Option<Filter>)]
    pub document_id: Option<String>,
    #[param(inline, value_type = Option<Filter>)]
    pub requested_by: Option<String>,
    /// Jobs a trigger (a Workfront event) started.
    #[param(inline, value_type = Option<Filter>)]
    pub trigger: Option<String>,
    /// One box for the dashboard: a job id, else a document id, else who asked.
    #[param(inline, value_type = Option<Filter>)]
    pub q: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(inline, value_type = Option<EmptyOrDateTime>)]
    pub created_since: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(inline, value_type = Option<EmptyOrDateTime>)]
    pub created_until: Option<DateTime<Utc>>,
    /// The `nextCursor` of the page before.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(inline, value_type = Option<EmptyOrUuid>)]
    pub cursor: Option<uuid::Uuid>,
    /// Page size (default 50), clamped to 1..200.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(inline, value_type = Option<EmptyOrInt64>)]
    pub limit: Option<i64>,
}

/// An empty query value (as HTML forms send for empty fields) means "not given".
fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text: Option<String> = Option::deserialize(deserializer)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => value.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

impl ListQuery {
    pub fn filter(&self) -> Result<JobFilter, OpsError> {
        let state = match self.state.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(parse_state(text)?),
        };
        let search = text_filter("q", &self.q)?;
        let id = search.as_deref().and_then(|q| q.parse::<uuid::Uuid>().ok()).map(JobId);
        // Checked even when the search text takes its place, so that a bad value is a
        // 400 whatever else the query holds.
        let document_filter = text_filter("documentId", &self.document_id)?;
        let document_id = match (&search, id) {
            (Some(q), None) => Some(q.clone()),
            _ => document_filter,
        };
        Ok(JobFilter {
            id,
            state,
            action: text_filter("action", &self.action)?,
            document_id,
            requested_by: text_filter("requestedBy", &self.requested_by)?,
            trigger: text_filter("trigger", &self.trigger)?,
            created_since: self.created_since,
            created_until: self.created_until,
        })
    }

    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(50).clamp(1, PAGE_CAP)
    }

    /// The list this query asks for.
    pub fn search(&self) -> Result<JobSearch, OpsError> {
        let filter = self.filter()?;
        let requester_fallback = match filter.id {
            None => self.q.clone().filter(|q| !q.is_empty()),
            Some(_) => None,
        };
        Ok(JobSearch {
            requester_fallback,
            document_filter: text_filter("documentId", &self.document_id)?,
            filter,
            cursor: self.cursor.map(JobId),
            limit: self.limit(),
        })
    }
}

/// An optional text filter: empty means not given; otherwise it must be a value Docket
/// could have stored (1–255 characters, no control characters).
fn text_filter(name: &str, value: &Option<String>) -> Result<Option<String>, OpsError> {
    match value.as_deref().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => docket::domain::check_text(v, docket::domain::MAX_ID_CHARS)
            .map(|()| Some(v.to_owned()))
            .map_err(|e| OpsError::BadRequest(format!("the {name} filter {e}"))),
    }
}

fn parse_state(text: &str) -> Result<JobState, OpsError> {
    text.parse().map_err(OpsError::BadRequest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_is_checked_even_when_the_search_box_replaces_it() {
        // Found by schemathesis: with `q`, a documentId with control characters was
        // not looked at (the search text takes its place) and the list answered 200.
        let query = ListQuery { q: Some("abc".into()), document_id: Some("a\u{8}b".into()), ..Default::default() };
        assert!(matches!(query.filter(), Err(OpsError::BadRequest(m)) if m.contains("documentId")));
    }
}
