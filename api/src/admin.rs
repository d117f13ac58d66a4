//! Operators' credentials: admin tokens (each with a label recorded in the audit
//! trail), checked in constant time, and the dashboard's signed session cookie (which
//! names a session recorded in `operator_sessions`, so it can be revoked) and CSRF
//! tokens.

use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use docket::secret::Secret;

/// Shortest admin token accepted.
pub const MIN_TOKEN_CHARS: usize = 24;
/// How long a dashboard session lasts.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// The session cookie's name.
pub const COOKIE: &str = "docket_session";

/// Who did something: the label of the token used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

struct Token {
    label: String,
    secret: Secret,
    digest: [u8; 32],
}

/// The configured admin tokens; none means the ops API and dashboard refuse everyone.
#[derive(Clone, Default)]
pub struct AdminTokens {
    tokens: std::sync::Arc<Vec<Token>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("DOCKET_ADMIN_TOKEN entry #{0} is shorter than {MIN_TOKEN_CHARS} characters")]
    TooShort(usize),
    #[error(
        "DOCKET_ADMIN_TOKEN entry #{0} is a placeholder or too weak (\"change-me\", or a single repeated \
         character); generate one with `openssl rand -hex 32`"
    )]
    Weak(usize),
    #[error("DOCKET_ADMIN_TOKEN entry #{0} has an invalid label (use letters, digits, '-', '_', '@')")]
    Label(usize),
    #[error("DOCKET_ADMIN_TOKEN entry #{0} repeats the label of an earlier entry (each label signs its own sessions)")]
    DuplicateLabel(usize),
    #[error("DOCKET_ADMIN_TOKEN must differ from every Workfront API key")]
    SameAsApiKey,
}

impl AdminTokens {
    /// Parses `token` or `label:token` entries (comma-separated in the variable).
    pub fn from_config(entries: &[Secret], api_keys: &[Secret]) -> Result<Self, AdminTokenError> {
        let mut tokens = Vec::new();
        for (index, entry) in entries.iter().filter(|e| !e.expose().is_empty()).enumerate() {
            let n = index + 1;
            let (label, token) = match entry.expose().split_once(':') {
                Some((label, token)) => (label.trim().to_owned(), token.trim().to_owned()),
                None => ("admin".to_owned(), entry.expose().to_owned()),
            };
            let label_ok = !label.is_empty()
                && label.len() <= 64
                && label.chars().all(|c| c.is_ascii_alphanumeric() || "-_@".contains(c));
            if !label_ok {
                return Err(AdminTokenError::Label(n));
            }
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(AdminTokenError::TooShort(n));
            }
            if crate::auth::is_weak(&token) {
                return Err(AdminTokenError::Weak(n));
            }
            if tokens.iter().any(|t: &Token| t.label == label) {
                return Err(AdminTokenError::DuplicateLabel(n));
            }
            if api_keys.iter().any(|k| k.expose() == token) {
                return Err(AdminTokenError::SameAsApiKey);
            }
            let digest = Sha256::digest(token.as_bytes()).into();
            tokens.push(Token { label, secret: Secret::new(token), digest });
        }
        Ok(Self { tokens: std::sync::Arc::new(tokens) })
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether an admin token with this label is configured.
    pub fn has_label(&self, label: &str) -> bool {
        self.tokens.iter().any(|t| t.label == label)
    }

    /// The actor whose token this is, compared in constant time against every token.
    pub fn check_token(&self, offered: &str) -> Option<Actor> {
        let found = crate::auth::matching_digest(self.tokens.iter().map(|t| &t.digest), offered.as_bytes())
            .map(|index| Actor(self.tokens[index].label.clone()));
        found
    }

    /// `Authorization: Bearer <token>`.
    pub fn check_bearer(&self, headers: &HeaderMap) -> Option<Actor> {
        let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
        self.check_token(token.trim())
    }

    /// A session cookie value for `actor` and session `id`, valid until `expires` (a
    /// Unix time): `label.id.expires.mac`.
    pub fn session_for(&self, actor: &Actor, id: &SessionId, expires: i64) -> Option<String> {
        let id = id.to_hex();
        let mac = self.mac(&actor.0, &format!("session|{}|{id}|{expires}", actor.0))?;
        Some(format!("{}.{id}.{expires}.{mac}", actor.0))
    }

    /// The actor and session id of a well-signed, unexpired session cookie value.
    /// Whether the session is still live (not revoked) is the database's to say.
    pub fn check_session(&self, value: &str, now: i64) -> Option<(Actor, SessionId)> {
        let mut parts = value.splitn(4, '.');
        let (label, id, expires, mac) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let session = SessionId::from_hex(id)?;
        let expires_at: i64 = expires.parse().ok()?;
        if expires_at < now {
            return None;
        }
        let expected = self.mac(label, &format!("session|{label}|{id}|{expires}"))?;
        bool::from(expected.as_bytes().ct_eq(mac.as_bytes())).then(|| (Actor(label.to_owned()), session))
    }

    /// The CSRF token that forms of this session must carry.
    pub fn csrf_for(&self, session: &str) -> Option<String> {
        let label = session.split('.').next()?;
        self.mac(label, &format!("csrf|{session}"))
    }

    /// HMAC-SHA256 keyed with the token of `label`: rotating a token ends its sessions.
    fn mac(&self, label: &str, message: &str) -> Option<String> {
        let token = self.tokens.iter().find(|t| t.label == label)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(token.secret.expose().as_bytes()).ok()?;
        mac.update(message.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }
}

/// A dashboard session's id: 128 random bits, in hex in the cookie. The database
/// keeps only its SHA-256 ([`SessionId::digest`]), which also names the session in the
/// ops API, so neither the table nor the list can open a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// A fresh id from the operating system's random source.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        Self(bytes)
    }

    fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// What the database stores and the ops API shows for this session.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }
}

/// The session cookie's value from the request, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    CookieJar::from_headers(headers).get(COOKIE).map(|c| c.value().to_owned())
}

/// The session cookie: HttpOnly, SameSite=Strict, scoped to `/ops`, `Secure` when the
/// dashboard is served over HTTPS; `value` empty and `max_age` zero signs out.
pub fn session_set_cookie(value: String, secure: bool, max_age: i64) -> Cookie<'static> {
    Cookie::build((COOKIE, value))
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .path("/ops")
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> AdminTokens {
        AdminTokens::from_config(
            &[Secret::new("alice:alice-token-0123456789abcdef"), Secret::new("bob-token-0123456789abcdefgh")],
            &[Secret::new("workfront-key-0123456789")],
        )
        .unwrap()
    }

    #[test]
    fn refuses_weak_tokens() {
        let keys = [Secret::new("workfront-key-0123456789abcdef")];
        assert!(matches!(AdminTokens::from_config(&[Secret::new("short")], &keys), Err(AdminTokenError::TooShort(1))));
        let same = Secret::new("x".repeat(30));
        assert!(matches!(AdminTokens::from_config(&[same], &keys), Err(AdminTokenError::Weak(1))));
        let reused = Secret::new("workfront-key-0123456789abcdef");
        assert!(matches!(AdminTokens::from_config(&[reused], &keys), Err(AdminTokenError::SameAsApiKey)));
        let label = Secret::new("bad label:token-0123456789abcdefghij");
        assert!(matches!(AdminTokens::from_config(&[label], &keys), Err(AdminTokenError::Label(1))));
        let placeholder = crate::auth::tests::env_example("DOCKET_ADMIN_TOKEN");
        assert!(matches!(AdminTokens::from_config(&placeholder, &keys), Err(AdminTokenError::Weak(1))));
        // A label with a dot could never hold a session (the cookie is split at the
        // first dot); two entries with one label would share sessions.
        let dotted = Secret::new("ops.team:0123456789abcdefghijklmnop".to_owned());
        assert!(matches!(AdminTokens::from_config(&[dotted], &keys), Err(AdminTokenError::Label(1))));
        let twice = [
            Secret::new("ops:0123456789abcdefghijklmnop".to_owned()),
            Secret::new("ops:abcdefghijklmnop0123456789".to_owned()),
        ];
        assert!(matches!(AdminTokens::from_config(&twice, &keys), Err(AdminTokenError::DuplicateLabel(2))));
    }

    #[test]
    fn tokens_carry_labels() {
        let t = tokens();
        assert_eq!(t.check_token("alice-token-0123456789abcdef"), Some(Actor("alice".into())));
        assert_eq!(t.check_token("bob-token-0123456789abcdefgh"), Some(Actor("admin".into())));
        assert_eq!(t.check_token("workfront-key-0123456789"), None);
        assert_eq!(t.check_token(""), None);
    }

    #[test]
    fn sessions_and_csrf_are_signed_and_expire() {
        let t = tokens();
        let alice = Actor("alice".into());
        let id = SessionId::random();
        let expires = 1000 + SESSION_SECONDS;
        let cookie = t.session_for(&alice, &id, expires).unwrap();
        assert_eq!(t.check_session(&cookie, 1000), Some((alice.clone(), id.clone())));
        assert_eq!(t.check_session(&cookie, expires + 1), None, "expired");
        let forged = cookie.replace("alice.", "admin.");
        assert_eq!(t.check_session(&forged, 1000), None, "label swapped");
        let extended = cookie.replacen(&expires.to_string(), "9999999999", 1);
        assert_eq!(t.check_session(&extended, 1000), None, "expiry extended");
        let other = SessionId::random();
        let swapped = cookie.replacen(&id.to_hex(), &other.to_hex(), 1);
        assert_eq!(t.check_session(&swapped, 1000), None, "session id swapped");
        let csrf = t.csrf_for(&cookie).unwrap();
        assert_eq!(t.csrf_for(&cookie), Some(csrf.clone()), "bound to the session");
        let another = t.session_for(&alice, &other, expires).unwrap();
        assert_ne!(t.csrf_for(&another), Some(csrf), "another session, another token");
        assert!(tokens_without_alice().check_session(&cookie, 1000).is_none(), "rotated token ends the session");
    }

    #[test]
    fn session_ids_are_random_and_stored_only_as_digests() {
        let (a, b) = (SessionId::random(), SessionId::random());
        assert_ne!(a, b);
        assert_eq!(a.to_hex().len(), 32, "128 bits");
        assert_eq!(SessionId::from_hex(&a.to_hex()), Some(a.clone()));
        assert!(SessionId::from_hex("not-hex").is_none());
        assert_ne!(&a.digest()[..16], &a.0[..], "the digest is not the id");
    }

    fn tokens_without_alice() -> AdminTokens {
        AdminTokens::from_config(&[Secret::new("alice:another-token-0123456789ab")], &[]).unwrap()
    }
}
