//! Request templates of `http` actions: the method, the URL, the headers and the body,
//! rendered per attempt with minijinja (Jinja syntax, strict undefined, a fuel limit).
//!
//! Rendering is safe by construction: every value a URL template inserts is
//! percent-encoded (all but RFC 3986's unreserved characters, which is right in a
//! path segment and in a query alike), so an id cannot change the URL's shape; a JSON
//! body is a tree whose string leaves are templates rendered to strings and put into
//! JSON by a serializer, so it is valid JSON whatever the values hold; a header value
//! with a line break fails the attempt. Templates see only the job's context: no
//! environment variable, no file.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use minijinja::{Environment, UndefinedBehavior, Value};

mod event;
mod json;
pub use event::{EventContext, SampleTrigger, State};
use json::json_value;

/// Most template instructions one rendering may run (loops included).
pub const FUEL: u64 = 50_000;

/// The HTTP methods an action may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Get,
    Delete,
}

impl Method {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "POST" => Some(Self::Post),
            "PUT" => Some(Self::Put),
            "PATCH" => Some(Self::Patch),
            "GET" => Some(Self::Get),
            "DELETE" => Some(Self::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Get => "GET",
            Self::Delete => "DELETE",
        }
    }
}

/// What a template may read about the job.
#[derive(Debug, Clone)]
pub struct TemplateContext {
    pub job_id: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub action: String,
    pub created_at: DateTime<Utc>,
    pub document_id: String,
    pub document_version_id: String,
    pub username: Option<String>,
    pub now: DateTime<Utc>,
    /// For a follow-up: the job whose end queued it.
    pub parent: Option<ParentContext>,
    /// For a job a Workfront event started (or a follow-up of one): the event.
    pub event: Option<EventContext>,
}

/// What a follow-up's templates read about its parent (`parent.*`).
#[derive(Debug, Clone)]
pub struct ParentContext {
    pub id: String,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// What the parent's target said (its `result` pointer), if captured.
    pub result: Option<serde_json::Value>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl TemplateContext {
    /// The context start-up renders every template against.
    /// Another sample in which every value differs from [`TemplateContext::sample`]'s,
    /// to find which parts of a rendering follow the values.
    pub fn other_sample(action: &str) -> Self {
        let mut other = Self::sample(action);
        other.job_id = "0190b8f2-6d3e-7c3a-9f5e-3b2a1c0d9e00".into();
        other.attempt = 2;
        other.max_attempts = 9;
        other.created_at = DateTime::from_timestamp(86_400, 0).unwrap_or_default();
        other.now = other.created_at;
        other.document_id = "other-document".into();
        other.document_version_id = "other-version".into();
        other.username = Some("other.user@example.net".into());
        if let Some(parent) = &mut other.parent {
            parent.id = "0190b8f2-6d3e-7c3a-9f5e-3b2a1c0d9e01".into();
            parent.state = "succeeded".into();
            parent.attempts = 1;
            parent.last_error = Some("other error".into());
        }
        other
    }

    pub fn sample(action: &str) -> Self {
        Self {
            job_id: "0190b8f2-6d3e-7c3a-9f5e-3b2a1c0d9e8f".into(),
            attempt: 1,
            max_attempts: 8,
            action: action.into(),
            created_at: DateTime::UNIX_EPOCH,
            document_id: "sample-document".into(),
            document_version_id: "sample-version".into(),
            username: Some("sample.user@example.com".into()),
            now: DateTime::UNIX_EPOCH,
            parent: Some(ParentContext {
                id: "0190b8f2-6d3e-7c3a-9f5e-3b2a1c0d9e80".into(),
                state: "failed".into(),
                attempts: 8,
                last_error: Some("target answered HTTP 503 Service Unavailable (gave up after 8 attempts)".into()),
                result: None,
                finished_at: Some(DateTime::UNIX_EPOCH),
            }),
            event: None,
        }
    }

    /// The context start-up renders an action against for an event of a trigger.
    pub fn event_sample(action: &str, trigger: &SampleTrigger) -> Self {
        Self::for_event(Self::sample(action), EventContext::sample(trigger, "sample"))
    }

    /// [`TemplateContext::event_sample`] with every value changed.
    pub fn other_event_sample(action: &str, trigger: &SampleTrigger) -> Self {
        Self::for_event(Self::other_sample(action), EventContext::sample(trigger, "other"))
    }

    /// A sample for an event: no user, and a document only for document events.
    fn for_event(mut context: Self, event: EventContext) -> Self {
        if !matches!(event.obj_code.as_str(), "DOCU" | "DOCV") {
            context.document_id = String::new();
            context.document_version_id = String::new();
        }
        context.username = None;
        context.event = Some(event);
        context
    }

    fn to_value(&self) -> Value {
        let map = |pairs: Vec<(&str, Value)>| -> Value {
            Value::from(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<BTreeMap<String, Value>>())
        };
        map(vec![
            (
                "job",
                map(vec![
                    ("id", Value::from(self.job_id.clone())),
                    ("attempt", Value::from(self.attempt)),
                    ("max_attempts", Value::from(self.max_attempts)),
                    ("action", Value::from(self.action.clone())),
                    ("created_at", Value::from(self.created_at.to_rfc3339())),
                ]),
            ),
            (
                "document",
                map(vec![
                    ("id", Value::from(self.document_id.clone())),
                    ("version_id", Value::from(self.document_version_id.clone())),
                ]),
            ),
            ("user", map(vec![("username", self.username.clone().map(Value::from).unwrap_or(Value::from(())))])),
            ("now", Value::from(self.now.to_rfc3339())),
            // Every key exists for every job (none outside a follow-up), so that a
            // template using them renders for both.
            (
                "parent",
                map(match &self.parent {
                    Some(p) => vec![
                        ("id", Value::from(p.id.clone())),
                        ("state", Value::from(p.state.clone())),
                        ("attempts", Value::from(p.attempts)),
                        ("last_error", p.last_error.clone().map(Value::from).unwrap_or(Value::from(()))),
                        ("result", p.result.as_ref().map(json_value).unwrap_or(Value::from(()))),
                        ("finished_at", p.finished_at.map(|t| Value::from(t.to_rfc3339())).unwrap_or(Value::from(()))),
                    ],
                    None => ["id", "state", "attempts", "last_error", "result", "finished_at"]
                        .into_iter()
                        .map(|k| (k, Value::from(())))
                        .collect(),
                }),
            ),
            // `none` for a menu click: an action that is also a trigger's target
            // guards its event fields with `{% if event %}`.
            ("event", self.event.as_ref().map(EventContext::to_value).unwrap_or(Value::from(()))),
            (
                "trigger",
                self.event
                    .as_ref()
                    .map(|e| map(vec![("name", Value::from(e.trigger.clone()))]))
                    .unwrap_or(Value::from(())),
            ),
        ])
    }
}

/// A JSON body whose string leaves are templates.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonShape {
    /// A template (the name it is registered under).
    Template(String),
    /// A number, boolean or date from the catalog, kept as it is.
    Literal(serde_json::Value),
    Array(Vec<JsonShape>),
    Object(Vec<(String, JsonShape)>),
}

/// The body of a templated request.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyTemplate {
    /// No body.
    Empty,
    /// JSON built from a tree of templates (`body = { … }`).
    Json(JsonShape),
    /// A raw template with its content type (`body_template`, `content_type`).
    Raw { template: String, content_type: String },
}

/// A compiled, start-up-checked request template.
#[derive(Clone)]
pub struct RequestTemplate {
    pub method: Method,
    env: Arc<Environment<'static>>,
    headers: Vec<(String, String)>,
    body: BodyTemplate,
}

impl std::fmt::Debug for RequestTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTemplate").field("method", &self.method).field("body", &self.body).finish()
    }
}

impl PartialEq for RequestTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.method == other.method
            && self.headers == other.headers
            && self.body == other.body
            && self.env.get_template(URL).map(|t| t.source().to_owned()).ok()
                == other.env.get_template(URL).map(|t| t.source().to_owned()).ok()
    }
}

/// The name the URL template is registered under; the formatter percent-encodes
/// every value printed in it.
const URL: &str = "url";
/// The name a `body_template` with a JSON content type is registered under.
const JSON_BODY: &str = "body_template (json)";

/// A request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The body and its content type.
    pub body: Option<(Vec<u8>, String)>,
}

/// A template that does not compile or render; says which key and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TemplateError {
    /// The catalog key: `url`, `headers.X-Api-Key`, `body.data.title`, `body_template`.
    pub key: String,
    pub message: String,
}

/// Builds a [`RequestTemplate`] key by key.
pub struct Builder {
    env: Environment<'static>,
    headers: Vec<(String, String)>,
}

impl Builder {
    pub fn new(url: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_formatter(|out, state, value| {
            if value.is_none() || value.is_undefined() {
                return Ok(());
            }
            let cannot_write = |_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write");
            if state.name() == URL {
                let text = value.to_string();
                write!(out, "{}", percent_encoding::utf8_percent_encode(&text, NOT_UNRESERVED)).map_err(cannot_write)
            } else if state.name() == JSON_BODY && !value.is_safe() {
                // Inside a JSON document a value is the contents of a string: escaped
                // so that it cannot end the string (`tojson` gives a whole value).
                let quoted = serde_json::to_string(&value.to_string()).expect("a string serializes");
                write!(out, "{}", &quoted[1..quoted.len() - 1]).map_err(cannot_write)
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        let mut builder = Self { env, headers: Vec::new() };
        builder.add("url", URL, url)?;
        Ok(builder)
    }

    /// Registers a header value template.
    pub fn header(&mut self, name: &str, template: &str) -> Result<(), TemplateError> {
        let key = format!("headers.{name}");
        let registered = format!("header:{name}");
        self.add(&key, &registered, template)?;
        self.headers.push((name.to_owned(), registered));
        Ok(())
    }

    /// Turns a TOML body table into a JSON shape, registering its string leaves.
    pub fn json_body(&mut self, table: &toml::Table) -> Result<JsonShape, TemplateError> {
        self.shape("body", &toml::Value::Table(table.clone()))
    }

    /// Registers a raw body template.
    /// With a JSON content type (`application/json`, `…+json`), every value inserted
    /// is escaped as the contents of a JSON string; `| tojson` inserts a whole JSON
    /// value instead.
    pub fn raw_body(&mut self, template: &str, content_type: &str) -> Result<String, TemplateError> {
        let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let name = if media == "application/json" || media.ends_with("+json") { JSON_BODY } else { "body_template" };
        self.add("body_template", name, template)?;
        Ok(name.to_owned())
    }

    /// Finishes the template; [`RequestTemplate::check`] renders it at start-up.
    pub fn finish(self, method: Method, body: BodyTemplate) -> RequestTemplate {
        RequestTemplate { method, env: Arc::new(self.env), headers: self.headers, body }
    }

    fn shape(&mut self, key: &str, value: &toml::Value) -> Result<JsonShape, TemplateError> {
        Ok(match value {
            toml::Value::String(text) => {
                let name = format!("{key}#{}", self.env.templates().count());
                self.add(key, &name, text)?;
                JsonShape::Template(name)
            }
            toml::Value::Integer(n) => JsonShape::Literal(serde_json::Value::from(*n)),
            toml::Value::Float(f) => {
                JsonShape::Literal(serde_json::Number::from_f64(*f).map(serde_json::Value::Number).ok_or_else(
                    || TemplateError { key: key.to_owned(), message: format!("{f} is not a number JSON can hold") },
                )?)
            }
            toml::Value::Boolean(b) => JsonShape::Literal(serde_json::Value::Bool(*b)),
            toml::Value::Datetime(d) => JsonShape::Literal(serde_json::Value::String(d.to_string())),
            toml::Value::Array(items) => JsonShape::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(n, item)| self.shape(&format!("{key}[{n}]"), item))
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Table(table) => JsonShape::Object(
                table
                    .iter()
                    .map(|(name, item)| Ok((name.clone(), self.shape(&format!("{key}.{name}"), item)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
        })
    }

    fn add(&mut self, key: &str, name: &str, source: &str) -> Result<(), TemplateError> {
        self.env
            .add_template_owned(name.to_owned(), source.to_owned())
            .map_err(|e| TemplateError { key: key.to_owned(), message: describe(&e, source) })
    }
}

/// Refuses a rendered URL with a `.` or `..` path segment (a value such as a document
/// id `..` would otherwise climb the target's path: `.` is unreserved, so it is not
/// encoded, and HTTP clients resolve dot segments), and, as a second line, one whose
/// parsed path differs from what was rendered.
fn check_path(url: &str) -> Result<(), TemplateError> {
    let refused = |message: &str| TemplateError { key: "url".into(), message: message.into() };
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |at| &after_scheme[at..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return Err(refused("a value made a path segment '.' or '..' (refused: it would climb the target's path)"));
    }
    match url::Url::parse(url) {
        Ok(parsed) if parsed.path() == path || (path.is_empty() && parsed.path() == "/") => Ok(()),
        _ => Err(refused("the rendered URL's path is not what was rendered (refused)")),
    }
}

/// Every character but RFC 3986's unreserved ones (`A-Z a-z 0-9 - . _ ~`).
const NOT_UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

impl RequestTemplate {
    /// Renders the whole request against `sample`, so that unknown variables and
    /// filters stop start-up, and the URL also against `other`, a context whose every
    /// value differs: a URL whose scheme, host or port would follow a value is refused
    /// (a document id must not choose where the credentials go). Returns the sample's
    /// URL.
    pub fn check(&self, sample: &TemplateContext, other: &TemplateContext) -> Result<String, TemplateError> {
        let url = |context: &TemplateContext| self.render_one("url", URL, &context.to_value());
        let (first, second) = (url(sample)?, url(other)?);
        let origin = |url: &str| {
            let url = url::Url::parse(url).ok()?;
            Some((url.scheme().to_owned(), url.host_str()?.to_owned(), url.port_or_known_default()))
        };
        match (origin(&first), origin(&second)) {
            (Some(a), Some(b)) if a == b => Ok(self.render(sample)?.url),
            _ => Err(TemplateError {
                key: "url".into(),
                message: "the scheme, host and port must not depend on a template value (only the path and \
                          query may hold {{ … }})"
                    .into(),
            }),
        }
    }

    /// Renders the request for one attempt. An error fails the attempt for good:
    /// rendering again would fail again.
    pub fn render(&self, context: &TemplateContext) -> Result<RenderedRequest, TemplateError> {
        let value = context.to_value();
        let url = self.render_one("url", URL, &value)?;
        check_path(&url)?;
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, registered) in &self.headers {
            let key = format!("headers.{name}");
            let rendered = self.render_one(&key, registered, &value)?;
            if rendered.contains(['\r', '\n']) {
                return Err(TemplateError {
                    key,
                    message: "would contain a line break after rendering (refused: header injection)".into(),
                });
            }
            headers.push((name.clone(), rendered));
        }
        let body = match &self.body {
            BodyTemplate::Empty => None,
            BodyTemplate::Json(shape) => {
                let json = self.render_json("body", shape, &value)?;
                let bytes = serde_json::to_vec(&json).map_err(|e| TemplateError {
                    key: "body".into(),
                    message: format!("cannot encode as JSON: {e}"),
                })?;
                Some((bytes, "application/json".to_owned()))
            }
            BodyTemplate::Raw { template, content_type } => {
                let text = self.render_one("body_template", template, &value)?;
                Some((text.into_bytes(), content_type.clone()))
            }
        };
        Ok(RenderedRequest { method: self.method, url, headers, body })
    }

    fn render_json(&self, key: &str, shape: &JsonShape, value: &Value) -> Result<serde_json::Value, TemplateError> {
        Ok(match shape {
            JsonShape::Template(name) => serde_json::Value::String(self.render_one(key, name, value)?),
            JsonShape::Literal(literal) => literal.clone(),
            JsonShape::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(n, item)| self.render_json(&format!("{key}[{n}]"), item, value))
                    .collect::<Result<_, _>>()?,
            ),
            JsonShape::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(name, item)| Ok((name.clone(), self.render_json(&format!("{key}.{name}"), item, value)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
        })
    }

    fn render_one(&self, key: &str, name: &str, value: &Value) -> Result<String, TemplateError> {
        let template =
            self.env.get_template(name).map_err(|e| TemplateError { key: key.into(), message: e.to_string() })?;
        template
            .render(value.clone())
            .map_err(|e| TemplateError { key: key.to_owned(), message: describe(&e, template.source()) })
    }
}

/// A minijinja error in words, with the line and column in the template's source.
fn describe(error: &minijinja::Error, source: &str) -> String {
    let what = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    let position = match (error.line(), error.range()) {
        (Some(line), Some(range)) => {
            let before = &source[..range.start.min(source.len())];
            let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
            format!(" (template line {line}, column {column})")
        }
        (Some(line), None) => format!(" (template line {line})"),
        _ => String::new(),
    };
    format!("{what}{position}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> TemplateContext {
        TemplateContext::sample("archive")
    }

    /// Finished and checked as start-up does for a menu action.
    fn checked(template: RequestTemplate, action: &str) -> Result<RequestTemplate, TemplateError> {
        template.check(&TemplateContext::sample(action), &TemplateContext::other_sample(action))?;
        Ok(template)
    }

    #[test]
    fn values_in_a_url_are_percent_encoded_and_cannot_change_its_shape() {
        let builder = Builder::new("https://dam.example/api/{{ document.id }}?v={{ document.version_id }}").unwrap();
        let template = checked(builder.finish(Method::Put, BodyTemplate::Empty), "archive").unwrap();
        let mut ctx = context();
        ctx.document_id = "a/b?c=d#e f".into();
        ctx.document_version_id = "ü&x=1".into();
        let rendered = template.render(&ctx).unwrap();
        assert_eq!(rendered.url, "https://dam.example/api/a%2Fb%3Fc%3Dd%23e%20f?v=%C3%BC%26x%3D1");
        assert_eq!(rendered.method, Method::Put);
    }

    #[test]
    fn json_bodies_are_valid_whatever_the_values_hold() {
        let table: toml::Table =
            toml::from_str("text = \"{{ user.username }} archived {{ document.id }}\"\ncount = 3\nok = true\n[nested]\nlist = [\"{{ job.attempt }}\", 2]\n")
                .unwrap();
        let mut builder = Builder::new("https://x.example/").unwrap();
        let shape = builder.json_body(&table).unwrap();
        let template = checked(builder.finish(Method::Post, BodyTemplate::Json(shape)), "archive").unwrap();
        let mut ctx = context();
        let hostile = "\"quote\" \\back\\ \nnew\tline </script> 🎉 مرحبا";
        ctx.username = Some(hostile.into());
        let (body, content_type) = template.render(&ctx).unwrap().body.unwrap();
        assert_eq!(content_type, "application/json");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["text"], format!("{hostile} archived sample-document"));
        assert_eq!((json["count"].clone(), json["ok"].clone()), (serde_json::json!(3), serde_json::json!(true)));
        assert_eq!(json["nested"]["list"], serde_json::json!(["1", 2]));
    }

    #[test]
    fn a_json_body_template_escapes_values_for_json_and_has_tojson() {
        let mut builder = Builder::new("https://x.example/").unwrap();
        let template =
            r#"{"text": "{{ user.username }} archived", "raw": {{ user.username | tojson }}, "n": {{ job.attempt }}}"#;
        let name = builder.raw_body(template, "application/json; charset=utf-8").unwrap();
        let body = BodyTemplate::Raw { template: name, content_type: "application/json; charset=utf-8".into() };
        let template = checked(builder.finish(Method::Post, body), "archive").unwrap();
        let mut ctx = context();
        let hostile = "\"}, \"admin\": true, \"x\": {\"y\": \"\\ \n </script>";
        ctx.username = Some(hostile.into());
        let (body, _) = template.render(&ctx).unwrap().body.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(json["text"], format!("{hostile} archived"));
        assert_eq!(json["raw"], hostile);
        assert_eq!(json["n"], 1);
        assert!(json.get("admin").is_none());

        // Other content types get the values as they are.
        let mut builder = Builder::new("https://x.example/").unwrap();
        let name = builder.raw_body("user={{ user.username }}", "text/plain").unwrap();
        let body = BodyTemplate::Raw { template: name, content_type: "text/plain".into() };
        let template = checked(builder.finish(Method::Post, body), "archive").unwrap();
        let (body, _) = template.render(&ctx).unwrap().body.unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), format!("user={hostile}"));
    }

    #[test]
    fn a_template_value_cannot_choose_the_scheme_host_or_port() {
        for url in [
            "http://{{ document.id }}/hook",
            "https://dam-{{ user.username }}.example/x",
            "https://dam.example:{{ job.attempt }}/x",
            "{{ document.id }}://dam.example/x",
        ] {
            let builder = Builder::new(url).unwrap();
            let error = checked(builder.finish(Method::Post, BodyTemplate::Empty), "a")
                .err()
                .unwrap_or_else(|| panic!("{url} loaded"));
            assert_eq!(error.key, "url");
            assert!(error.message.contains("scheme, host and port"), "{url}: {}", error.message);
        }
        let builder =
            Builder::new("https://dam.example/documents/{{ document.id }}?v={{ document.version_id }}").unwrap();
        assert!(
            checked(builder.finish(Method::Post, BodyTemplate::Empty), "a").is_ok(),
            "a templated path and query load"
        );
    }

    #[test]
    fn a_value_cannot_climb_the_targets_path() {
        let builder = Builder::new("https://dam.example/documents/{{ document.id }}/archive").unwrap();
        let template = checked(builder.finish(Method::Post, BodyTemplate::Empty), "a").unwrap();
        for id in ["..", "."] {
            let mut ctx = context();
            ctx.document_id = id.into();
            let error = template.render(&ctx).err().unwrap_or_else(|| panic!("{id:?} rendered"));
            assert_eq!(error.key, "url");
            assert!(error.message.contains("'.' or '..'"), "{}", error.message);
        }
        let mut ctx = context();
        ctx.document_id = "..a.b..".into();
        assert_eq!(template.render(&ctx).unwrap().url, "https://dam.example/documents/..a.b../archive");
    }

    #[test]
    fn errors_name_the_key_and_the_position() {
        let error = Builder::new("https://x.example/{{ document.id").err().unwrap();
        assert_eq!(error.key, "url");
        assert!(error.message.contains("line 1"), "{}", error.message);

        let mut builder = Builder::new("https://x.example/").unwrap();
        builder.header("X-Trace", "a\n{{ job.nope }}").unwrap();
        let error = checked(builder.finish(Method::Post, BodyTemplate::Empty), "archive").unwrap_err();
        assert_eq!(error.key, "headers.X-Trace");
        assert!(error.message.contains("undefined") && error.message.contains("line 2"), "{}", error.message);

        let mut builder = Builder::new("https://x.example/").unwrap();
        builder.raw_body("{{ document.id | no_such_filter }}", "text/plain").unwrap();
        let body = BodyTemplate::Raw { template: "body_template".into(), content_type: "text/plain".into() };
        let error = checked(builder.finish(Method::Post, body), "archive").unwrap_err();
        assert!(error.message.contains("no_such_filter"), "{}", error.message);
    }

    #[test]
    fn templates_cannot_read_the_environment_or_run_long() {
        std::env::set_var("DOCKET_TEMPLATE_SECRET", "s3cret");
        for probe in ["{{ env }}", "{{ env.DOCKET_TEMPLATE_SECRET }}", "{{ environ }}", "{{ config }}"] {
            let mut builder = Builder::new("https://x.example/").unwrap();
            builder.raw_body(probe, "text/plain").unwrap();
            let body = BodyTemplate::Raw { template: "body_template".into(), content_type: "text/plain".into() };
            assert!(checked(builder.finish(Method::Post, body), "a").is_err(), "{probe} rendered");
        }
        let mut builder = Builder::new("https://x.example/").unwrap();
        builder
            .raw_body("{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}", "text/plain")
            .unwrap();
        let body = BodyTemplate::Raw { template: "body_template".into(), content_type: "text/plain".into() };
        let error = checked(builder.finish(Method::Post, body), "a").unwrap_err();
        assert!(error.message.contains("fuel"), "{}", error.message);
    }

    #[test]
    fn a_header_that_would_hold_a_line_break_is_refused() {
        let mut builder = Builder::new("https://x.example/").unwrap();
        builder.header("X-User", "{{ user.username }}").unwrap();
        let template = checked(builder.finish(Method::Post, BodyTemplate::Empty), "a").unwrap();
        let mut ctx = context();
        ctx.username = Some("eve\r\nX-Admin: yes".into());
        let error = template.render(&ctx).unwrap_err();
        assert_eq!(error.key, "headers.X-User");
        assert!(error.message.contains("line break"));
    }
}
