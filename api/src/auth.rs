//! Checks Workfront's `apiKey` header against the configured keys in constant time.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use docket::secret::Secret;

use crate::error::ApiError;

/// Shortest key accepted at start-up.
pub const MIN_KEY_CHARS: usize = 16;

/// The keys Workfront may send, kept only as SHA-256 digests so that comparing them
/// takes the same time whatever the key's length or content.
#[derive(Clone)]
pub enum ApiKeys {
    Required(Vec<[u8; 32]>),
    /// Local development only (DOCKET_INSECURE_DISABLE_AUTH).
    Disabled,
}

/// Why the key configuration was refused at start-up.
#[derive(Debug, thiserror::Error)]
pub enum KeyConfigError {
    #[error(
        "no API key configured: set DOCKET_API_KEYS (comma-separated) — or, for local development \
         only, DOCKET_INSECURE_DISABLE_AUTH=true"
    )]
    Missing,
    #[error("API key #{0} in DOCKET_API_KEYS is shorter than {MIN_KEY_CHARS} characters")]
    TooShort(usize),
    #[error(
        "API key #{0} in DOCKET_API_KEYS is a placeholder or too weak (\"change-me\", or a single repeated \
         character); generate one with `openssl rand -hex 32`"
    )]
    Weak(usize),
}

impl ApiKeys {
    pub fn from_config(keys: &[Secret], disabled: bool) -> Result<Self, KeyConfigError> {
        let keys: Vec<&Secret> = keys.iter().filter(|k| !k.expose().is_empty()).collect();
        if keys.is_empty() {
            return if disabled { Ok(Self::Disabled) } else { Err(KeyConfigError::Missing) };
        }
        if let Some(index) = keys.iter().position(|k| k.expose().chars().count() < MIN_KEY_CHARS) {
            return Err(KeyConfigError::TooShort(index + 1));
        }
        if let Some(index) = keys.iter().position(|k| is_weak(k.expose())) {
            return Err(KeyConfigError::Weak(index + 1));
        }
        Ok(Self::Required(keys.iter().map(|k| digest(k.expose().as_bytes())).collect()))
    }

    /// Accepts the request if its `apiKey` header matches one of the keys; returns the
    /// index of the key.
    pub fn check(&self, headers: &HeaderMap) -> Result<usize, ApiError> {
        let Self::Required(digests) = self else {
            return Ok(0);
        };
        let mut values = headers.get_all("apikey").iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(ApiError::Unauthorized);
        };
        matching_digest(digests, value.as_bytes()).ok_or(ApiError::Unauthorized)
    }
}

/// A placeholder left in (`change-me`, as in `.env.example`) or a single repeated
/// character: refused for API keys and admin tokens alike.
pub fn is_weak(secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    lower.contains("change-me") || lower.contains("changeme") || secret.chars().all(|c| secret.starts_with(c))
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The index of the digest in `digests` that is `offered`'s SHA-256, compared with
/// every one in constant time, without stopping early: the one comparison of API keys,
/// event tokens and admin tokens.
pub fn matching_digest<'a>(digests: impl IntoIterator<Item = &'a [u8; 32]>, offered: &[u8]) -> Option<usize> {
    let offered = digest(offered);
    let mut matched = None;
    for (index, candidate) in digests.into_iter().enumerate() {
        if bool::from(candidate.ct_eq(&offered)) {
            matched = Some(index);
        }
    }
    matched
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// The value `.env.example` gives `name`.
    pub(crate) fn env_example(name: &str) -> Vec<Secret> {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.env.example")).unwrap();
        let line = text.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).expect("set in .env.example");
        line.split(',').map(|v| Secret::new(v.to_owned())).collect()
    }

    #[test]
    fn the_placeholders_of_env_example_and_repeated_characters_are_refused() {
        let placeholder = env_example("DOCKET_API_KEYS");
        assert!(matches!(ApiKeys::from_config(&placeholder, false), Err(KeyConfigError::Weak(1))));
        let repeated = [Secret::new("a-real-key-0123456789".to_owned()), Secret::new("k".repeat(40))];
        assert!(matches!(ApiKeys::from_config(&repeated, false), Err(KeyConfigError::Weak(2))));
        let changeme = [Secret::new("please-CHANGEME-0123456789".to_owned())];
        assert!(matches!(ApiKeys::from_config(&changeme, false), Err(KeyConfigError::Weak(1))));
        assert!(ApiKeys::from_config(&[Secret::new("3f9c2a8e61b04d7f95a1c6e2".to_owned())], false).is_ok());
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("apiKey", HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn refuses_to_start_without_keys_unless_insecure_mode() {
        assert!(matches!(ApiKeys::from_config(&[], false), Err(KeyConfigError::Missing)));
        assert!(matches!(ApiKeys::from_config(&[Secret::new("")], false), Err(KeyConfigError::Missing)));
        assert!(matches!(ApiKeys::from_config(&[], true), Ok(ApiKeys::Disabled)));
        assert!(matches!(ApiKeys::from_config(&[Secret::new("short")], false), Err(KeyConfigError::TooShort(1))));
    }

    #[test]
    fn any_configured_key_opens() {
        let keys = ApiKeys::from_config(&[Secret::new("old-key-0123456789"), Secret::new("new-key-0123456789")], false)
            .unwrap();
        assert!(keys.check(&headers(&["old-key-0123456789"])).is_ok());
        assert!(keys.check(&headers(&["new-key-0123456789"])).is_ok());
        assert!(keys.check(&headers(&["new-key-012345678"])).is_err());
        assert!(keys.check(&headers(&[])).is_err());
        assert!(keys.check(&headers(&["new-key-0123456789", "new-key-0123456789"])).is_err());
    }
}
