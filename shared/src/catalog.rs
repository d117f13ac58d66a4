//! The action catalog: the TOML file that names every action Docket offers.
//!
//! Both binaries load it at start-up; any mistake stops them with an error that
//! names the file, the action and the field.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::{check_text, TextError};
use crate::retry::RetryPolicy;
use crate::template::{BodyTemplate, Builder, Method, RequestTemplate, SampleTrigger, TemplateContext};

pub mod flow;
pub mod trigger;
pub use flow::{Circuit, Flow, LimitGroup, Rate};
pub use trigger::Trigger;

/// Defaults for the optional keys, documented in README.md.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(600);
/// Longest accepted action name (Workfront sends it as `?name=`).
pub use crate::domain::MAX_NAME_CHARS;
/// Most attempts an action may allow.
pub const MAX_MAX_ATTEMPTS: u32 = 1000;

/// A validated catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    actions: Vec<Action>,
    triggers: Vec<Trigger>,
    limit_groups: Vec<LimitGroup>,
}

/// One action, validated, with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub name: String,
    pub display_name: String,
    /// Offered in Workfront's document menu (`/serviceInfo`, `/customAction`);
    /// `menu = false` keeps an action that only triggers or follow-ups start out of it.
    pub menu: bool,
    pub kind: ActionKind,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// A trigger while a job of the same action, document and version is waiting or
    /// running returns that job instead of creating another.
    pub dedupe: bool,
    /// Jobs to queue when a job of this action reaches a final state.
    pub on_finish: Vec<FollowUp>,
    /// Limits, limit group and circuit breaker (see [`flow`]).
    pub flow: Flow,
}

/// `on_finish = [{ when = ["failed", "cancelled"], run = "notify-workfront" }]`: when a
/// job ends in one of `when`, a job of `run` is queued in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUp {
    pub when: Vec<crate::domain::JobState>,
    pub run: String,
}

/// What running the action does.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// Succeeds at once (demos, benchmarks).
    Noop,
    /// Calls a target over HTTP(S).
    Http(Box<HttpSpec>),
}

/// What an `http` action sends and what it counts as success.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSpec {
    /// The target (a template when `request` is set).
    pub url: String,
    /// Sign the Standard Webhooks way with the secret in this environment variable.
    pub signing_secret_env: Option<String>,
    /// The request the action's templates render (`method`, a templated `url`,
    /// `headers`, `body`, `body_template`); `None`: a POST of the job as JSON, the
    /// same bytes as before templates existed.
    pub request: Option<RequestTemplate>,
    pub auth: Option<Auth>,
    /// Statuses that count as success; `None`: any 2xx.
    pub success_status: Option<Vec<u16>>,
    /// A JSON pointer into a successful response's body; the value found is stored
    /// on the job.
    pub result: Option<String>,
    /// `allow_http = true`: credentials (`auth`) may go to an `http://` URL or token
    /// endpoint (a target on the same host, say). Otherwise they need `https://`.
    pub allow_http: bool,
}

/// How an `http` action authenticates to its target. Secrets are named by
/// environment variable, never written in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Auth {
    Bearer {
        token_env: String,
    },
    Basic {
        username: String,
        password_env: String,
    },
    Header {
        name: String,
        value_env: String,
    },
    /// RFC 6749 §4.4: a token from `token_url`, cached and shared by every action
    /// with the same credentials.
    OAuth2ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret_env: String,
        scope: Option<String>,
        audience: Option<String>,
        extra: std::collections::BTreeMap<String, String>,
        /// Send the client's credentials with HTTP Basic instead of in the form body.
        basic_client_auth: bool,
    },
}

impl Auth {
    /// The environment variables this auth reads.
    pub fn variables(&self) -> Vec<&str> {
        match self {
            Self::Bearer { token_env } => vec![token_env],
            Self::Basic { password_env, .. } => vec![password_env],
            Self::Header { value_env, .. } => vec![value_env],
            Self::OAuth2ClientCredentials { client_secret_env, .. } => vec![client_secret_env],
        }
    }
}

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read action catalog {file}: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("action catalog {file} is not valid TOML: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("action catalog {file} defines no action: add at least one [[action]] table")]
    Empty { file: PathBuf },
    #[error("action catalog {file}, action {action:?}, field `{field}`: {message}")]
    Field { file: PathBuf, action: String, field: &'static str, message: String },
    #[error("action catalog {file}, trigger {trigger:?}, field `{field}`: {message}")]
    TriggerField { file: PathBuf, trigger: String, field: &'static str, message: String },
}

impl Catalog {
    /// Reads and validates the catalog at `path`.
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| CatalogError::Read { file: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Validates catalog text; `file` is used in error messages only.
    pub fn parse(text: &str, file: &Path) -> Result<Self, CatalogError> {
        let raw: RawCatalog =
            toml::from_str(text).map_err(|e| CatalogError::Syntax { file: file.to_owned(), message: e.to_string() })?;
        if raw.action.is_empty() {
            return Err(CatalogError::Empty { file: file.to_owned() });
        }
        let actions = validate_actions(raw.action, file)?;
        check_follow_ups(&actions).map_err(|(action, message)| CatalogError::Field {
            file: file.to_owned(),
            action,
            field: "on_finish",
            message,
        })?;
        let flows: Vec<(&str, &Flow)> = actions.iter().map(|a| (a.name.as_str(), &a.flow)).collect();
        let limit_groups = flow::limit_groups(&flows).map_err(|(action, field, message)| CatalogError::Field {
            file: file.to_owned(),
            action,
            field,
            message,
        })?;
        let triggers = validate_triggers(raw.trigger, &actions, file)?;
        for action in &actions {
            check_renders(action, &actions, &triggers).map_err(|(field, message)| CatalogError::Field {
                file: file.to_owned(),
                action: action.name.clone(),
                field,
                message,
            })?;
        }
        Ok(Self { actions, triggers, limit_groups })
    }

    /// Every trigger, in catalog order.
    pub fn triggers(&self) -> &[Trigger] {
        &self.triggers
    }

    /// Whether jobs of `action` can read an event (a trigger starts it or a chain it
    /// follows): the worker then reads the event when it runs one.
    pub fn sees_events(&self, action: &str) -> bool {
        !origins(action, &self.actions, &self.triggers).1.is_empty()
    }

    /// The actions offered in Workfront's document menu (`menu` not false).
    pub fn menu(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.menu)
    }

    /// Every limit group (actions with limits or a circuit), by name.
    pub fn limit_groups(&self) -> &[LimitGroup] {
        &self.limit_groups
    }

    /// The limit group an action's jobs are claimed through, if any.
    pub fn limit_group_of(&self, action: &str) -> Option<&LimitGroup> {
        self.limit_groups.iter().find(|g| g.actions.iter().any(|a| a == action))
    }

    pub fn get(&self, name: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.name == name)
    }

    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    pub fn names(&self) -> Vec<String> {
        self.actions.iter().map(|a| a.name.clone()).collect()
    }

    /// Every follow-up rule: (parent action, final state, follow-up action, the
    /// follow-up's attempt budget).
    pub fn follow_up_rules(&self) -> Vec<(String, crate::domain::JobState, String, u32)> {
        let mut rules = Vec::new();
        for action in &self.actions {
            for follow_up in &action.on_finish {
                let budget = self.get(&follow_up.run).map_or(DEFAULT_MAX_ATTEMPTS, |a| a.retry.max_attempts);
                for state in &follow_up.when {
                    rules.push((action.name.clone(), *state, follow_up.run.clone(), budget));
                }
            }
        }
        rules
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    action: Vec<RawAction>,
    #[serde(default)]
    trigger: Vec<trigger::RawTrigger>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    name: Option<String>,
    display_name: Option<String>,
    menu: Option<bool>,
    kind: Option<String>,
    url: Option<String>,
    timeout: Option<String>,
    max_attempts: Option<i64>,
    retry_base: Option<String>,
    retry_max: Option<String>,
    dedupe: Option<bool>,
    signing_secret_env: Option<String>,
    allow_http: Option<bool>,
    method: Option<String>,
    headers: Option<toml::Table>,
    body: Option<toml::Table>,
    body_template: Option<String>,
    content_type: Option<String>,
    auth: Option<RawAuth>,
    success_status: Option<Vec<i64>>,
    result: Option<String>,
    on_finish: Option<Vec<RawFollowUp>>,
    limit_group: Option<String>,
    max_concurrency: Option<i64>,
    rate: Option<String>,
    burst: Option<i64>,
    circuit: Option<flow::RawCircuit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFollowUp {
    when: Vec<String>,
    run: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(rename = "type")]
    kind: Option<String>,
    token_env: Option<String>,
    username: Option<String>,
    password_env: Option<String>,
    name: Option<String>,
    value_env: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret_env: Option<String>,
    scope: Option<String>,
    audience: Option<String>,
    extra_params: Option<std::collections::BTreeMap<String, String>>,
    client_auth: Option<String>,
}

type FieldError = (String, &'static str, String);

/// A field and what is wrong with it (the caller adds the action's name).
type Problem = (&'static str, String);

/// The keys only `http` actions take.
struct HttpKeys {
    url: Option<String>,
    signing_secret_env: Option<String>,
    allow_http: Option<bool>,
    method: Option<String>,
    headers: Option<toml::Table>,
    body: Option<toml::Table>,
    body_template: Option<String>,
    content_type: Option<String>,
    auth: Option<RawAuth>,
    success_status: Option<Vec<i64>>,
    result: Option<String>,
}

impl RawAction {
    /// Checks an action key by key; each concern has a function of its own below.
    fn validate(self, index: usize) -> Result<Action, FieldError> {
        let RawAction {
            name,
            display_name,
            menu,
            kind,
            url,
            timeout,
            max_attempts,
            retry_base,
            retry_max,
            dedupe,
            signing_secret_env,
            allow_http,
            method,
            headers,
            body,
            body_template,
            content_type,
            auth,
            success_status,
            result,
            on_finish,
            limit_group,
            max_concurrency,
            rate,
            burst,
            circuit,
        } = self;
        let name = action_name(name, index)?;
        let fail = |(field, message): Problem| (name.clone(), field, message);
        let display_name = match display_name {
            Some(d) => {
                check_text(&d, 255).map_err(|e| fail(("display_name", text_message(e))))?;
                d
            }
            None => name.clone(),
        };
        let http = HttpKeys {
            url,
            signing_secret_env,
            allow_http,
            method,
            headers,
            body,
            body_template,
            content_type,
            auth,
            success_status,
            result,
        };
        let kind = action_kind(kind, http, &name).map_err(fail)?;
        let (timeout, retry) = retry_policy(timeout, max_attempts, retry_base, retry_max).map_err(fail)?;
        let on_finish = follow_ups(on_finish.unwrap_or_default()).map_err(fail)?;
        let flow = flow::RawFlow { limit_group, max_concurrency, rate, burst, circuit }.validate().map_err(fail)?;
        Ok(Action {
            name,
            display_name,
            menu: menu.unwrap_or(true),
            kind,
            timeout,
            retry,
            dedupe: dedupe.unwrap_or(true),
            on_finish,
            flow,
        })
    }
}

/// Every action, checked; names unique.
fn validate_actions(raw: Vec<RawAction>, file: &Path) -> Result<Vec<Action>, CatalogError> {
    let mut seen = HashSet::new();
    let mut actions = Vec::with_capacity(raw.len());
    for (index, raw_action) in raw.into_iter().enumerate() {
        let action = raw_action.validate(index).map_err(|(action, field, message)| CatalogError::Field {
            file: file.to_owned(),
            action,
            field,
            message,
        })?;
        if !seen.insert(action.name.clone()) {
            return Err(CatalogError::Field {
                file: file.to_owned(),
                action: action.name,
                field: "name",
                message: "is defined twice; action names must be unique".into(),
            });
        }
        actions.push(action);
    }
    Ok(actions)
}

/// Every trigger, checked against the actions; names unique.
fn validate_triggers(
    raw: Vec<trigger::RawTrigger>,
    actions: &[Action],
    file: &Path,
) -> Result<Vec<Trigger>, CatalogError> {
    let mut names = HashSet::new();
    let mut triggers = Vec::with_capacity(raw.len());
    for (index, raw_trigger) in raw.into_iter().enumerate() {
        let trigger = raw_trigger.validate(index, |name| actions.iter().any(|a| a.name == name)).map_err(
            |(trigger, field, message)| CatalogError::TriggerField { file: file.to_owned(), trigger, field, message },
        )?;
        if !names.insert(trigger.name.clone()) {
            return Err(CatalogError::TriggerField {
                file: file.to_owned(),
                trigger: trigger.name,
                field: "name",
                message: "is defined twice; trigger names must be unique".into(),
            });
        }
        triggers.push(trigger);
    }
    Ok(triggers)
}

fn action_name(name: Option<String>, index: usize) -> Result<String, FieldError> {
    let unnamed = format!("#{}", index + 1);
    let name = name.ok_or((unnamed.clone(), "name", "is missing".to_owned()))?;
    check_text(&name, MAX_NAME_CHARS).map_err(|e| (unnamed, "name", text_message(e)))?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return Err((name, "name", "may hold only ASCII letters, digits, '_', '-' and '.'".into()));
    }
    Ok(name)
}

fn action_kind(kind: Option<String>, http: HttpKeys, name: &str) -> Result<ActionKind, Problem> {
    match kind.as_deref() {
        None => Err(("kind", "is missing; use \"http\" or \"noop\"".into())),
        Some("noop") => match http.first_set() {
            Some(field) => Err((field, "is not used by kind \"noop\"; remove it".into())),
            None => Ok(ActionKind::Noop),
        },
        Some("http") => Ok(ActionKind::Http(Box::new(http.validate(name)?))),
        Some(other) => Err(("kind", format!("{other:?} is not a kind; use \"http\" or \"noop\""))),
    }
}

impl HttpKeys {
    /// The first key that is set (a `noop` action takes none of them).
    fn first_set(&self) -> Option<&'static str> {
        [
            ("url", self.url.is_some()),
            ("signing_secret_env", self.signing_secret_env.is_some()),
            ("allow_http", self.allow_http.is_some()),
            ("method", self.method.is_some()),
            ("headers", self.headers.is_some()),
            ("body", self.body.is_some()),
            ("body_template", self.body_template.is_some()),
            ("content_type", self.content_type.is_some()),
            ("auth", self.auth.is_some()),
            ("success_status", self.success_status.is_some()),
            ("result", self.result.is_some()),
        ]
        .into_iter()
        .find_map(|(field, set)| set.then_some(field))
    }

    fn validate(self, name: &str) -> Result<HttpSpec, Problem> {
        let url = self.url.ok_or(("url", "is missing (required for kind \"http\")".to_owned()))?;
        let signing_secret_env = match self.signing_secret_env {
            Some(variable) => Some(env_name(&variable).map_err(|m| ("signing_secret_env", m))?),
            None => None,
        };
        let templated = self.method.is_some()
            || url.contains("{{")
            || url.contains("{%")
            || self.headers.is_some()
            || self.body.is_some()
            || self.body_template.is_some();
        let request = if templated {
            let template = request_template(
                name,
                &url,
                self.method,
                self.headers,
                self.body,
                self.body_template,
                self.content_type,
            )
            .map_err(|(_, field, message)| (field, message))?;
            Some(template)
        } else if self.content_type.is_some() {
            return Err(("content_type", "is used only with body_template".into()));
        } else {
            // A templated URL is checked as rendered, once the catalog knows every way
            // the action starts (`check_renders`).
            check_url(&url).map_err(|m| ("url", m))?;
            None
        };
        let auth = match self.auth {
            Some(raw) => Some(raw.validate()?),
            None => None,
        };
        let allow_http = self.allow_http.unwrap_or(false);
        if let Some(auth) = &auth {
            if request.is_none() {
                needs_https(&url, allow_http).map_err(|m| ("url", m))?;
            }
            if let Auth::OAuth2ClientCredentials { token_url, .. } = auth {
                needs_https(token_url, allow_http).map_err(|m| ("auth", format!("`token_url`: {m}")))?;
            }
        }
        Ok(HttpSpec {
            url,
            signing_secret_env,
            request,
            auth,
            success_status: success_statuses(self.success_status)?,
            result: result_pointer(self.result)?,
            allow_http,
        })
    }
}

fn success_statuses(codes: Option<Vec<i64>>) -> Result<Option<Vec<u16>>, Problem> {
    let Some(codes) = codes else {
        return Ok(None);
    };
    if codes.is_empty() {
        return Err(("success_status", "is empty; leave it out to accept any 2xx".into()));
    }
    codes
        .into_iter()
        .map(|c| {
            u16::try_from(c)
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| ("success_status", format!("{c} is not an HTTP status")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn result_pointer(pointer: Option<String>) -> Result<Option<String>, Problem> {
    match pointer {
        Some(pointer) if pointer.is_empty() || pointer.starts_with('/') => Ok(Some(pointer)),
        Some(pointer) => Err((
            "result",
            format!("{pointer:?} is not a JSON pointer (write e.g. \"/data/url\", or \"\" for the whole body)"),
        )),
        None => Ok(None),
    }
}

/// The attempt timeout and the retry policy, defaults filled in.
fn retry_policy(
    timeout: Option<String>,
    max_attempts: Option<i64>,
    retry_base: Option<String>,
    retry_max: Option<String>,
) -> Result<(Duration, RetryPolicy), Problem> {
    let timeout = duration(timeout, DEFAULT_TIMEOUT).map_err(|m| ("timeout", m))?;
    let max_attempts = match max_attempts {
        None => DEFAULT_MAX_ATTEMPTS,
        Some(n) if (1..=i64::from(MAX_MAX_ATTEMPTS)).contains(&n) => n as u32,
        Some(n) => return Err(("max_attempts", format!("{n} is out of range 1..={MAX_MAX_ATTEMPTS}"))),
    };
    let base = duration(retry_base, DEFAULT_RETRY_BASE).map_err(|m| ("retry_base", m))?;
    let cap = duration(retry_max, DEFAULT_RETRY_MAX.max(base)).map_err(|m| ("retry_max", m))?;
    if cap < base {
        return Err((
            "retry_max",
            format!("must not be shorter than retry_base ({})", humantime::format_duration(base)),
        ));
    }
    Ok((timeout, RetryPolicy { max_attempts, base, cap }))
}

/// `on_finish`: each follow-up's `when` holds final states only.
fn follow_ups(raw: Vec<RawFollowUp>) -> Result<Vec<FollowUp>, Problem> {
    let mut on_finish = Vec::new();
    for raw in raw {
        if raw.when.is_empty() {
            return Err(("on_finish", format!("the follow-up {:?} has an empty `when`", raw.run)));
        }
        let mut when = Vec::new();
        for state in &raw.when {
            match state.parse::<crate::domain::JobState>() {
                Ok(s) if s.is_final() => when.push(s),
                _ => {
                    return Err((
                        "on_finish",
                        format!("{state:?} is not a final state; use \"succeeded\", \"failed\" or \"cancelled\""),
                    ))
                }
            }
        }
        on_finish.push(FollowUp { when, run: raw.run });
    }
    Ok(on_finish)
}

/// How jobs of an action come to be: whether a menu click can start it or a chain
/// that a menu click started, and which triggers start it or its chain. Follow-ups
/// have no cycle (checked before), so the walk ends.
pub(crate) fn origins<'a>(name: &str, actions: &[Action], triggers: &'a [Trigger]) -> (bool, Vec<&'a Trigger>) {
    let mut by_menu = false;
    let mut by_triggers: Vec<&Trigger> = Vec::new();
    let mut stack = vec![name.to_owned()];
    let mut seen = HashSet::new();
    while let Some(at) = stack.pop() {
        if !seen.insert(at.clone()) {
            continue;
        }
        let Some(action) = actions.iter().find(|a| a.name == at) else { continue };
        by_menu |= action.menu;
        for trigger in triggers.iter().filter(|t| t.run.contains(&at)) {
            if !by_triggers.iter().any(|t| t.name == trigger.name) {
                by_triggers.push(trigger);
            }
        }
        stack.extend(actions.iter().filter(|p| p.on_finish.iter().any(|f| f.run == at)).map(|p| p.name.clone()));
    }
    (by_menu, by_triggers)
}

/// Every follow-up names a known action, and no chain of follow-ups comes back to
/// where it started (a → b → a would never end).
fn check_follow_ups(actions: &[Action]) -> Result<(), (String, String)> {
    let names: HashSet<&str> = actions.iter().map(|a| a.name.as_str()).collect();
    for action in actions {
        for follow_up in &action.on_finish {
            if !names.contains(follow_up.run.as_str()) {
                return Err((
                    action.name.clone(),
                    format!("runs {:?}, which is not an action of the catalog", follow_up.run),
                ));
            }
        }
    }
    let next = |name: &str| -> Vec<&str> {
        actions.iter().filter(|a| a.name == name).flat_map(|a| a.on_finish.iter().map(|f| f.run.as_str())).collect()
    };
    for start in actions {
        // Depth first from each action, along the path taken so far.
        let mut stack: Vec<(Vec<&str>, &str)> = vec![(vec![start.name.as_str()], start.name.as_str())];
        while let Some((path, at)) = stack.pop() {
            for to in next(at) {
                if to == start.name {
                    let cycle = [path.clone(), vec![to]].concat().join(" → ");
                    return Err((start.name.clone(), format!("follow-ups form a cycle: {cycle}")));
                }
                if !path.contains(&to) {
                    stack.push(([path.clone(), vec![to]].concat(), to));
                }
            }
        }
    }
    Ok(())
}

fn text_message(error: TextError) -> String {
    error.to_string()
}

fn duration(value: Option<String>, default: Duration) -> Result<Duration, String> {
    match value {
        Some(text) => crate::duration::parse(&text),
        None => Ok(default),
    }
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn env_name(name: &str) -> Result<String, String> {
    if is_env_name(name) {
        Ok(name.to_owned())
    } else {
        Err(format!("{name:?} is not an environment variable name (A-Z, 0-9, _)"))
    }
}

/// Compiles the request keys of an `http` action and renders them once against a
/// sample context.
fn request_template(
    action: &str,
    url: &str,
    method: Option<String>,
    headers: Option<toml::Table>,
    body: Option<toml::Table>,
    body_template: Option<String>,
    content_type: Option<String>,
) -> Result<RequestTemplate, FieldError> {
    let fail = |field: &'static str, message: String| (action.to_owned(), field, message);
    let method = match method {
        None => Method::Post,
        Some(text) => Method::parse(&text)
            .ok_or_else(|| fail("method", format!("{text:?} is not a method; use POST, PUT, PATCH, GET or DELETE")))?,
    };
    let template_error = |e: crate::template::TemplateError| {
        let field = match e.key.split(['.', '[']).next().unwrap_or("") {
            "url" => "url",
            "headers" => "headers",
            "body_template" => "body_template",
            _ => "body",
        };
        (action.to_owned(), field, e.to_string())
    };
    let mut builder = Builder::new(url).map_err(template_error)?;
    for (name, value) in headers.unwrap_or_default() {
        if !is_header_name(&name) {
            return Err(fail("headers", format!("{name:?} is not a header name")));
        }
        let toml::Value::String(template) = value else {
            return Err(fail("headers", format!("{name}: the value must be a string (a template)")));
        };
        builder.header(&name, &template).map_err(template_error)?;
    }
    let body = match (body, body_template, content_type) {
        (Some(_), Some(_), _) => {
            return Err(fail("body_template", "cannot be set together with body: choose one".into()));
        }
        (Some(_), None, Some(_)) => {
            return Err(fail("content_type", "is used only with body_template (body is always JSON)".into()));
        }
        (Some(table), None, None) => BodyTemplate::Json(builder.json_body(&table).map_err(template_error)?),
        (None, Some(_), None) => {
            return Err(fail("content_type", "is missing: body_template needs an explicit content type".into()));
        }
        (None, Some(template), Some(content_type)) => {
            if content_type.is_empty() || content_type.contains(['\r', '\n']) {
                return Err(fail("content_type", format!("{content_type:?} is not a content type")));
            }
            BodyTemplate::Raw {
                template: builder.raw_body(&template, &content_type).map_err(template_error)?,
                content_type,
            }
        }
        (None, None, Some(_)) => return Err(fail("content_type", "is used only with body_template".into())),
        (None, None, None) => BodyTemplate::Empty,
    };
    Ok(builder.finish(method, body))
}

/// Renders an action's templates against a sample of every way it starts: a menu
/// click (unless `menu = false`), and an event of each trigger that runs it or runs an
/// action of which it is a follow-up (a follow-up sees its chain's event). Each
/// sample is rendered twice, with every value changed the second time, so that a URL
/// whose scheme, host or port follows a value is refused. Unknown variables, a bad
/// filter and a URL that is not one stop start-up here.
fn check_renders(action: &Action, actions: &[Action], triggers: &[Trigger]) -> Result<(), (&'static str, String)> {
    let ActionKind::Http(spec) = &action.kind else {
        return Ok(());
    };
    let Some(request) = &spec.request else {
        return Ok(());
    };
    let menu = || {
        ("a menu click".to_owned(), TemplateContext::sample(&action.name), TemplateContext::other_sample(&action.name))
    };
    let (by_menu, by_triggers) = origins(&action.name, actions, triggers);
    let mut starts = Vec::new();
    if by_menu {
        starts.push(menu());
    }
    for trigger in by_triggers {
        let sample = SampleTrigger {
            name: trigger.name.clone(),
            obj_code: trigger.obj_code.clone(),
            event_type: trigger.event_type.as_str().to_owned(),
        };
        starts.push((
            format!("an event of trigger {:?}", trigger.name),
            TemplateContext::event_sample(&action.name, &sample),
            TemplateContext::other_event_sample(&action.name, &sample),
        ));
    }
    if starts.is_empty() {
        // Only a follow-up can start it: its context is a menu click's.
        starts.push(menu());
    }
    let field_of = |key: &str| match key.split(['.', '[']).next().unwrap_or("") {
        "url" => "url",
        "headers" => "headers",
        "body_template" => "body_template",
        _ => "body",
    };
    let only_start = starts.len() == 1;
    for (start, sample, other) in &starts {
        let started_by = |message: String| {
            if only_start {
                message
            } else {
                format!("{message} (rendered for {start})")
            }
        };
        let url = request.check(sample, other).map_err(|e| (field_of(&e.key), started_by(e.to_string())))?;
        check_url(&url).map_err(|m| ("url", started_by(m)))?;
        if spec.auth.is_some() {
            needs_https(&url, spec.allow_http).map_err(|m| ("url", m))?;
        }
    }
    Ok(())
}

/// A problem with an action's `auth` table: the key and what is wrong.
type AuthProblem = (&'static str, String);

/// A key that must be set and not empty.
fn need(value: Option<String>, key: &str) -> Result<String, AuthProblem> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| ("auth", format!("`{key}` is missing")))
}

/// A key that names an environment variable.
fn env_key(value: Option<String>, key: &str) -> Result<String, AuthProblem> {
    env_name(&need(value, key)?).map_err(|m| ("auth", format!("`{key}`: {m}")))
}

/// Refuses the first of `keys` that is set: type `kind` does not use it.
fn unused(kind: &str, keys: &[(&str, bool)]) -> Result<(), AuthProblem> {
    match keys.iter().find(|(_, set)| *set) {
        Some((key, _)) => Err(("auth", format!("`{key}` is not used by type {kind:?}"))),
        None => Ok(()),
    }
}

impl RawAuth {
    fn validate(self) -> Result<Auth, AuthProblem> {
        let kind = need(self.kind.clone(), "type")?;
        let oauth_keys = self.oauth_keys();
        let (token, user, name) = (self.token_env.is_some(), self.username.is_some(), self.name.is_some());
        match kind.as_str() {
            "bearer" => {
                unused(&kind, &oauth_keys)?;
                unused(&kind, &[("username", user), ("name", name)])?;
                Ok(Auth::Bearer { token_env: env_key(self.token_env, "token_env")? })
            }
            "basic" => {
                unused(&kind, &oauth_keys)?;
                unused(&kind, &[("token_env", token), ("name", name)])?;
                self.basic()
            }
            "header" => {
                unused(&kind, &oauth_keys)?;
                unused(&kind, &[("token_env", token), ("username", user)])?;
                self.header()
            }
            "oauth2_client_credentials" => {
                unused(&kind, &[("token_env", token), ("username", user), ("name", name)])?;
                self.oauth2()
            }
            other => Err((
                "auth",
                format!(
                    "type {other:?} is not one of \"bearer\", \"basic\", \"header\", \"oauth2_client_credentials\""
                ),
            )),
        }
    }

    /// The OAuth 2 keys, and whether each is set.
    fn oauth_keys(&self) -> [(&'static str, bool); 7] {
        [
            ("token_url", self.token_url.is_some()),
            ("client_id", self.client_id.is_some()),
            ("client_secret_env", self.client_secret_env.is_some()),
            ("scope", self.scope.is_some()),
            ("audience", self.audience.is_some()),
            ("extra_params", self.extra_params.is_some()),
            ("client_auth", self.client_auth.is_some()),
        ]
    }

    fn basic(self) -> Result<Auth, AuthProblem> {
        let username = need(self.username, "username")?;
        if username.contains(':') || username.chars().any(char::is_control) {
            return Err(("auth", "`username` may not hold ':' or control characters".into()));
        }
        Ok(Auth::Basic { username, password_env: env_key(self.password_env, "password_env")? })
    }

    fn header(self) -> Result<Auth, AuthProblem> {
        let name = need(self.name, "name")?;
        if !is_header_name(&name) {
            return Err(("auth", format!("`name`: {name:?} is not a header name")));
        }
        Ok(Auth::Header { name, value_env: env_key(self.value_env, "value_env")? })
    }

    fn oauth2(self) -> Result<Auth, AuthProblem> {
        let token_url = need(self.token_url, "token_url")?;
        check_url(&token_url).map_err(|m| ("auth", format!("`token_url`: {m}")))?;
        let basic_client_auth = match self.client_auth.as_deref() {
            None | Some("body") => false,
            Some("basic") => true,
            Some(other) => return Err(("auth", format!("`client_auth`: {other:?} is neither \"body\" nor \"basic\""))),
        };
        Ok(Auth::OAuth2ClientCredentials {
            token_url,
            client_id: need(self.client_id, "client_id")?,
            client_secret_env: env_key(self.client_secret_env, "client_secret_env")?,
            scope: self.scope,
            audience: self.audience,
            extra: self.extra_params.unwrap_or_default(),
            basic_client_auth,
        })
    }
}

/// A valid HTTP header name (RFC 9110's token), as the HTTP client will take it.
fn is_header_name(name: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
}

/// Credentials cross the network only encrypted: an `http://` URL is refused for an
/// action with `auth`, unless `allow_http = true` says the risk is understood.
fn needs_https(url: &str, allow_http: bool) -> Result<(), String> {
    if url.starts_with("https://") || allow_http {
        return Ok(());
    }
    Err(format!(
        "{url:?} is plain http:// but the action sends credentials (auth): use https://, or set \
         allow_http = true if the target is on a network you trust (the same host, say)"
    ))
}

/// An absolute `http://` or `https://` URL with a host, as the `url` crate (WHATWG
/// URL parsing, the same as the HTTP client's) reads it; whitespace and control
/// characters are refused rather than silently encoded.
fn check_url(url: &str) -> Result<(), String> {
    let authority = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a valid URL ({e})"))?;
    // WHATWG parsing reads "http:///p" as host "p"; an empty authority is a mistake.
    let has_host = !authority.starts_with('/') && parsed.host_str().is_some_and(|h| !h.is_empty());
    if !has_host || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} is not a valid URL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
