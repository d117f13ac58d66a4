//! The tokens Workfront sends back with every event delivery (the subscription's
//! `authToken`, in the `Authorization` header, bare or as `Bearer <token>`), checked
//! in constant time. Several at once, so that a token can be rotated.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use docket::secret::Secret;

/// Shortest token accepted at start-up.
pub const MIN_TOKEN_CHARS: usize = 16;
/// Longest: Workfront takes an `authToken` of under 255 characters.
pub const MAX_TOKEN_CHARS: usize = 254;

/// `DOCKET_EVENT_TOKENS`, as SHA-256 digests.
#[derive(Clone)]
pub struct EventTokens(Vec<[u8; 32]>);

#[derive(Debug, thiserror::Error)]
pub enum EventTokenError {
    #[error("token #{0} in DOCKET_EVENT_TOKENS is shorter than {MIN_TOKEN_CHARS} characters")]
    TooShort(usize),
    #[error("token #{0} in DOCKET_EVENT_TOKENS is longer than {MAX_TOKEN_CHARS} characters (Workfront's limit)")]
    TooLong(usize),
    #[error(
        "token #{0} in DOCKET_EVENT_TOKENS is a placeholder or too weak (\"change-me\", or a single repeated \
         character); generate one with `openssl rand -hex 32`"
    )]
    Weak(usize),
    #[error("token #{0} in DOCKET_EVENT_TOKENS holds a space, a comma or a control character")]
    Unprintable(usize),
}

impl EventTokens {
    /// `None` when no token is set: the intake is off (404).
    pub fn from_config(tokens: &[Secret]) -> Result<Option<Self>, EventTokenError> {
        let tokens: Vec<&str> = tokens.iter().map(|t| t.expose().trim()).filter(|t| !t.is_empty()).collect();
        if tokens.is_empty() {
            return Ok(None);
        }
        for (index, token) in tokens.iter().enumerate() {
            let n = index + 1;
            let chars = token.chars().count();
            if chars < MIN_TOKEN_CHARS {
                return Err(EventTokenError::TooShort(n));
            }
            if chars > MAX_TOKEN_CHARS {
                return Err(EventTokenError::TooLong(n));
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',') {
                return Err(EventTokenError::Unprintable(n));
            }
            if crate::auth::is_weak(token) {
                return Err(EventTokenError::Weak(n));
            }
        }
        Ok(Some(Self(tokens.iter().map(|t| Sha256::digest(t.as_bytes()).into()).collect())))
    }

    /// Whether the request's single `Authorization` header holds one of the tokens.
    pub fn accepts(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let value = value.as_bytes();
        let offered = match value.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case(b"bearer ") => &value[7..],
            _ => value,
        };
        crate::auth::matching_digest(&self.0, offered).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn tokens(values: &[&str]) -> Result<Option<EventTokens>, EventTokenError> {
        EventTokens::from_config(&values.iter().map(|v| Secret::new((*v).to_owned())).collect::<Vec<_>>())
    }

    fn with(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("authorization", HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn either_token_passes_bare_or_as_bearer_and_nothing_else() {
        let t = tokens(&["first-token-0123456789", "second-token-0123456789"]).unwrap().unwrap();
        assert!(t.accepts(&with(&["first-token-0123456789"])));
        assert!(t.accepts(&with(&["Bearer second-token-0123456789"])));
        assert!(t.accepts(&with(&["bearer first-token-0123456789"])));
        assert!(!t.accepts(&with(&[])));
        assert!(!t.accepts(&with(&["first-token-012345678"])));
        assert!(!t.accepts(&with(&["Bearer  first-token-0123456789"])));
        assert!(!t.accepts(&with(&["Basic first-token-0123456789"])));
        assert!(!t.accepts(&with(&["first-token-0123456789", "first-token-0123456789"])), "one header only");
    }

    #[test]
    fn no_token_turns_intake_off_and_bad_tokens_stop_start_up() {
        assert!(tokens(&[]).unwrap().is_none());
        assert!(tokens(&[""]).unwrap().is_none());
        assert!(matches!(tokens(&["short"]), Err(EventTokenError::TooShort(1))));
        assert!(matches!(tokens(&["good-token-0123456789", "change-me-change-me"]), Err(EventTokenError::Weak(2))));
        assert!(matches!(tokens(&[&"x".repeat(300)]), Err(EventTokenError::TooLong(1))));
        assert!(matches!(tokens(&["a token with spaces 0123"]), Err(EventTokenError::Unprintable(1))));
    }
}
