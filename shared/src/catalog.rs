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

/// Defaults for the optional keys, documented in README.md.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(600);
/// Longest accepted action name (Workfront sends it as `?name=`).
pub const MAX_NAME_CHARS: usize = 64;
/// Most attempts an action may allow.
pub const MAX_MAX_ATTEMPTS: u32 = 1000;

/// A validated catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    actions: Vec<Action>,
}

/// One action, validated, with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub name: String,
    pub display_name: String,
    pub kind: ActionKind,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// A trigger while a job of the same action, document and version is waiting or
    /// running returns that job instead of creating another.
    pub dedupe: bool,
}

/// What running the action does.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// Succeeds at once (demos, benchmarks).
    Noop,
    /// POSTs the job as JSON to `url`, signed the Standard Webhooks way when
    /// `signing_secret_env` names the environment variable holding the secret.
    Http { url: String, signing_secret_env: Option<String> },
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
        let mut seen = HashSet::new();
        let mut actions = Vec::with_capacity(raw.action.len());
        for (index, raw_action) in raw.action.into_iter().enumerate() {
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
        Ok(Self { actions })
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    action: Vec<RawAction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    name: Option<String>,
    display_name: Option<String>,
    kind: Option<String>,
    url: Option<String>,
    timeout: Option<String>,
    max_attempts: Option<i64>,
    retry_base: Option<String>,
    retry_max: Option<String>,
    dedupe: Option<bool>,
    signing_secret_env: Option<String>,
}

type FieldError = (String, &'static str, String);

impl RawAction {
    fn validate(self, index: usize) -> Result<Action, FieldError> {
        let unnamed = format!("#{}", index + 1);
        let name = self.name.ok_or((unnamed.clone(), "name", "is missing".to_owned()))?;
        let fail = |field: &'static str, message: String| (name.clone(), field, message);
        check_text(&name, MAX_NAME_CHARS).map_err(|e| (unnamed.clone(), "name", text_message(e)))?;
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Err(fail("name", "may hold only ASCII letters, digits, '_', '-' and '.'".into()));
        }
        let display_name = match self.display_name {
            Some(d) => {
                check_text(&d, 255).map_err(|e| fail("display_name", text_message(e)))?;
                d
            }
            None => name.clone(),
        };
        let kind = match self.kind.as_deref() {
            None => return Err(fail("kind", "is missing; use \"http\" or \"noop\"".into())),
            Some("noop") => {
                if self.url.is_some() {
                    return Err(fail("url", "is not used by kind \"noop\"; remove it".into()));
                }
                if self.signing_secret_env.is_some() {
                    return Err(fail("signing_secret_env", "is not used by kind \"noop\"; remove it".into()));
                }
                ActionKind::Noop
            }
            Some("http") => {
                let url = self.url.ok_or_else(|| fail("url", "is missing (required for kind \"http\")".into()))?;
                check_url(&url).map_err(|m| fail("url", m))?;
                let signing_secret_env = match self.signing_secret_env {
                    Some(name) if is_env_name(&name) => Some(name),
                    Some(name) => {
                        return Err(fail(
                            "signing_secret_env",
                            format!("{name:?} is not an environment variable name (A-Z, 0-9, _)"),
                        ))
                    }
                    None => None,
                };
                ActionKind::Http { url, signing_secret_env }
            }
            Some(other) => return Err(fail("kind", format!("{other:?} is not a kind; use \"http\" or \"noop\""))),
        };
        let timeout = duration(self.timeout, DEFAULT_TIMEOUT).map_err(|m| fail("timeout", m))?;
        let max_attempts = match self.max_attempts {
            None => DEFAULT_MAX_ATTEMPTS,
            Some(n) if (1..=i64::from(MAX_MAX_ATTEMPTS)).contains(&n) => n as u32,
            Some(n) => return Err(fail("max_attempts", format!("{n} is out of range 1..={MAX_MAX_ATTEMPTS}"))),
        };
        let base = duration(self.retry_base, DEFAULT_RETRY_BASE).map_err(|m| fail("retry_base", m))?;
        let cap = duration(self.retry_max, DEFAULT_RETRY_MAX.max(base)).map_err(|m| fail("retry_max", m))?;
        if cap < base {
            return Err(fail(
                "retry_max",
                format!("must not be shorter than retry_base ({})", humantime::format_duration(base)),
            ));
        }
        let dedupe = self.dedupe.unwrap_or(true);
        Ok(Action { name, display_name, kind, timeout, retry: RetryPolicy { max_attempts, base, cap }, dedupe })
    }
}

fn text_message(error: TextError) -> String {
    error.to_string()
}

fn duration(value: Option<String>, default: Duration) -> Result<Duration, String> {
    match value {
        Some(text) => parse_duration(&text),
        None => Ok(default),
    }
}

/// Parses a positive duration of at most 7 days: "500ms", "10s", "5m", "1h".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. \"500ms\", \"10s\", \"5m\""))?;
    if parsed.is_zero() {
        return Err("must be longer than zero".into());
    }
    if parsed > Duration::from_secs(7 * 24 * 3600) {
        return Err(format!("{text:?} is longer than 7 days"));
    }
    Ok(parsed)
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} is not a valid URL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
