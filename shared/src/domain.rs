//! Domain types: validated values that the edges parse and the rest of the code trusts.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifies a job. Version 7, so ids sort by creation time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct JobId(pub Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A job's place in its life. See ARCHITECTURE.md for the state diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "job_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// Every state, in the order of the type's declaration.
    pub const ALL: [Self; 6] =
        [Self::Queued, Self::Running, Self::Retrying, Self::Succeeded, Self::Failed, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// An operator may cancel it (at once while it waits; a running one is stopped
    /// by its worker). The SQL of `ops::job_cancel` holds the same rule.
    pub fn is_cancellable(self) -> bool {
        matches!(self, Self::Queued | Self::Retrying | Self::Running)
    }

    /// An operator may queue it again with a fresh attempt budget (`ops::jobs_retry`).
    pub fn is_retryable_by_operator(self) -> bool {
        matches!(self, Self::Failed | Self::Cancelled)
    }
}

impl std::str::FromStr for JobState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|s| s.as_str() == text).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown state {text:?}; use {}", names.join(", "))
        })
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "attempt_outcome", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    RetryableError,
    PermanentError,
    TimedOut,
    Panicked,
    LeaseExpired,
    Interrupted,
    Cancelled,
    /// The target pushed back (HTTP 429, or 503 with Retry-After): the job waits as
    /// asked and the attempt is given back.
    Throttled,
}

impl AttemptOutcome {
    /// Every outcome, in the order of the type's declaration.
    pub const ALL: [Self; 9] = [
        Self::Succeeded,
        Self::RetryableError,
        Self::PermanentError,
        Self::TimedOut,
        Self::Panicked,
        Self::LeaseExpired,
        Self::Interrupted,
        Self::Cancelled,
        Self::Throttled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::RetryableError => "retryable_error",
            Self::PermanentError => "permanent_error",
            Self::TimedOut => "timed_out",
            Self::Panicked => "panicked",
            Self::LeaseExpired => "lease_expired",
            Self::Interrupted => "interrupted",
            Self::Cancelled => "cancelled",
            Self::Throttled => "throttled",
        }
    }
}

/// A state or kind stored as `text` (with a check constraint) rather than a Postgres
/// enum: the variants and their stored names in one place, with `ALL`, `as_str`,
/// `Display` and `FromStr`; sqlx reads and writes it as text.
// `$text` is a `tt`, not a `literal`: a `literal` fragment reaches the derives as an
// opaque group, which serde and sqlx read but utoipa's `ToSchema` silently ignored
// (the OpenAPI document listed `RetryFailed` where the API writes `retry_failed`).
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:tt,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
        #[sqlx(type_name = "text")]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] #[sqlx(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in the order of declaration.
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown {} {text:?}; use {}", stringify!($name), names.join(", "))
                })
            }
        }
    };
}

text_enum! {
    /// An action's circuit breaker (`action_controls.circuit`).
    pub enum CircuitState {
        /// Jobs start as usual.
        Closed = "closed",
        /// Too many consecutive failures: no job starts until the cool-down ends.
        Open = "open",
        /// The cool-down ended: one probe job decides.
        HalfOpen = "half_open",
    }
}

text_enum! {
    /// What an operator did (`operator_actions.action`).
    pub enum AuditAction {
        Retry = "retry",
        Cancel = "cancel",
        /// Every failed job of an action, in batches.
        RetryFailed = "retry_failed",
        BulkRetry = "bulk_retry",
        BulkCancel = "bulk_cancel",
        Pause = "pause",
        Resume = "resume",
        CloseCircuit = "close_circuit",
        SignOut = "sign_out",
        RevokeSession = "revoke_session",
        RevokeSessions = "revoke_sessions",
    }
}

/// Why a caller-supplied text was refused. The message names no field: the caller
/// puts the field's name around it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {max} characters")]
    TooLong { max: usize },
    #[error("contains control characters")]
    ControlCharacter,
    #[error("contains invisible formatting characters (such as U+202E or U+200B)")]
    FormatCharacter,
}

/// The longest name of an action, a trigger or a limit group (in characters).
pub const MAX_NAME_CHARS: usize = 64;

/// The longest opaque id Docket stores (in characters).
pub const MAX_ID_CHARS: usize = 255;

/// Checks an opaque text value: 1..=`max` characters, no control characters, no
/// invisible formatting characters.
pub fn check_text(value: &str, max: usize) -> Result<(), TextError> {
    if value.is_empty() {
        return Err(TextError::Empty);
    }
    // Count at most max+1 characters, so a hostile 1 MB value costs little.
    if value.chars().take(max + 1).count() > max {
        return Err(TextError::TooLong { max });
    }
    if value.chars().any(char::is_control) {
        return Err(TextError::ControlCharacter);
    }
    if value.chars().any(is_format_character) {
        return Err(TextError::FormatCharacter);
    }
    Ok(())
}

/// The format characters (Unicode category Cf) of the Basic Multilingual Plane, as
/// ranges: bidirectional overrides and isolates, zero-width characters, the
/// byte-order mark, the soft hyphen and a few invisible number signs. They make a
/// value show differently from what it is. Listed here because std has no category
/// lookup; the astral ones are left alone (the tag characters build emoji flags).
const FORMAT_RANGES: [(char, char); 14] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
];

fn is_format_character(c: char) -> bool {
    FORMAT_RANGES.iter().any(|&(low, high)| (low..=high).contains(&c))
}

/// [`FORMAT_RANGES`] as a regular expression's character class, spelled out because
/// the OpenAPI attributes that carry it need a literal (a test checks that it says the
/// same as the ranges).
pub const FORMAT_CHARACTERS: &str = r"\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb";

macro_rules! opaque_text {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
        #[sqlx(transparent)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, TextError> {
                check_text(value, MAX_ID_CHARS)?;
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

opaque_text!(
    /// Workfront's document id: an opaque string of 1–255 characters.
    DocumentId
);
opaque_text!(
    /// Workfront's document version id: an opaque string of 1–255 characters.
    DocumentVersionId
);
opaque_text!(
    /// The Workfront user who asked (the `username` header).
    Username
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_limits() {
        assert_eq!(check_text("", 3), Err(TextError::Empty));
        assert_eq!(check_text("abcd", 3), Err(TextError::TooLong { max: 3 }));
        assert_eq!(check_text("ééé", 3), Ok(()), "limit counts characters, not bytes");
        assert_eq!(check_text("a\u{0}b", 3), Err(TextError::ControlCharacter));
        assert_eq!(check_text("a\nb", 3), Err(TextError::ControlCharacter));
        assert_eq!(check_text("a\u{85}b", 3), Err(TextError::ControlCharacter));
        // Invisible characters that reorder or hide text: right-to-left override,
        // zero-width space, byte-order mark.
        for hidden in ["a\u{202E}b", "a\u{200B}b", "\u{FEFF}ab", "a\u{2066}b"] {
            assert_eq!(check_text(hidden, 3), Err(TextError::FormatCharacter), "{hidden:?}");
        }
        assert_eq!(check_text("🏴\u{E0067}\u{E0062}\u{E007F}", 10), Ok(()), "tag characters of emoji flags pass");
        assert!(DocumentId::parse(&"x".repeat(255)).is_ok());
        assert!(DocumentId::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn the_openapi_class_of_format_characters_says_what_the_ranges_say() {
        let class: String = FORMAT_RANGES
            .iter()
            .map(|&(low, high)| match (low, high) {
                (l, h) if l == h => format!("\\u{:04x}", l as u32),
                (l, h) if h as u32 == l as u32 + 1 => format!("\\u{:04x}\\u{:04x}", l as u32, h as u32),
                (l, h) => format!("\\u{:04x}-\\u{:04x}", l as u32, h as u32),
            })
            .collect();
        assert_eq!(class, FORMAT_CHARACTERS);
    }

    #[test]
    fn job_ids_sort_by_time() {
        let a = JobId::new();
        let b = JobId::new();
        assert!(a < b);
    }
}
