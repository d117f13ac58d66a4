//! Credentials of `http` actions, read from the environment at start-up: a fixed
//! header (bearer, basic, or a named header), or OAuth2 client credentials (RFC 6749
//! §4.4) whose token is fetched once, cached, shared by every action with the same
//! credentials, and refreshed before it expires. Tokens and secrets never reach a log,
//! a metric or an attempt's error.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use tokio::sync::Mutex;
use tokio::time::Instant;

use docket::catalog::Auth;
use docket::secret::Secret;

/// How long before its expiry a token is replaced (at most a tenth of its life).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// The longest a token is kept, whatever its `expires_in` says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Most bytes of a token endpoint's answer read.
const TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// What an action adds to each request.
#[derive(Clone, Debug)]
pub enum Credentials {
    Header(HeaderName, Secret),
    OAuth2(Arc<TokenSource>),
}

impl Credentials {
    /// Reads the secrets `auth` names from the environment; the error names the
    /// variable, never a value.
    pub fn from_env(auth: &Auth, client: &reqwest::Client) -> Result<Self, (String, String)> {
        let read = |variable: &str| {
            std::env::var(variable)
                .ok()
                .filter(|v| !v.is_empty())
                .map(Secret::new)
                .ok_or_else(|| (variable.to_owned(), "is not set in the environment".to_owned()))
        };
        Ok(match auth {
            Auth::Bearer { token_env } => {
                Self::Header(AUTHORIZATION, Secret::new(format!("Bearer {}", read(token_env)?.expose())))
            }
            Auth::Basic { username, password_env } => {
                let pair = format!("{username}:{}", read(password_env)?.expose());
                Self::Header(AUTHORIZATION, Secret::new(format!("Basic {}", STANDARD.encode(pair))))
            }
            Auth::Header { name, value_env } => {
                let name = HeaderName::try_from(name.as_str())
                    .map_err(|_| (value_env.clone(), format!("names an invalid header {name:?}")))?;
                Self::Header(name, read(value_env)?)
            }
            Auth::OAuth2ClientCredentials { client_secret_env, .. } => Self::OAuth2(Arc::new(TokenSource {
                client: client.clone(),
                auth: auth.clone(),
                secret: read(client_secret_env)?,
                cached: Mutex::new(None),
            })),
        })
    }
}

/// A failed token request; says whether it is worth another attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenError {
    pub error: String,
    pub retryable: bool,
}

struct Token {
    value: Secret,
    refresh_at: Instant,
}

/// One set of OAuth2 client credentials and its cached token.
pub struct TokenSource {
    client: reqwest::Client,
    auth: Auth,
    secret: Secret,
    /// Held while a token is fetched, so that concurrent jobs wait for that one
    /// request instead of making their own (single flight).
    cached: Mutex<Option<Token>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSource([redacted])")
    }
}

impl TokenSource {
    /// A valid token: the cached one, or a new one. `rejected` is a token the target
    /// refused (HTTP 401): it is replaced even if it has not expired.
    pub async fn token(&self, rejected: Option<&Secret>) -> Result<Secret, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref() {
            let refused = rejected.is_some_and(|r| r.expose() == token.value.expose());
            if token.refresh_at > Instant::now() && !refused {
                return Ok(token.value.clone());
            }
        }
        let fresh = self.fetch().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    async fn fetch(&self) -> Result<Token, TokenError> {
        let Auth::OAuth2ClientCredentials { token_url, client_id, scope, audience, extra, basic_client_auth, .. } =
            &self.auth
        else {
            unreachable!("a token source holds OAuth2 credentials");
        };
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        if let Some(audience) = audience {
            form.push(("audience", audience));
        }
        form.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut request = self.client.post(token_url).timeout(Duration::from_secs(30));
        if *basic_client_auth {
            // RFC 6749 §2.3.1: both are form-encoded before they are joined.
            request = request.basic_auth(form_encode(client_id), Some(form_encode(self.secret.expose())));
        } else {
            form.push(("client_id", client_id));
            form.push(("client_secret", self.secret.expose()));
        }
        let failed = |what: String, retryable: bool| TokenError {
            error: format!("could not get an access token from the token endpoint {token_url}: {what}"),
            retryable,
        };
        let started = Instant::now();
        let response = request.form(&form).send().await.map_err(|e| failed(without_url(&e), true))?;
        let status = response.status();
        let body = read_limited(response).await;
        if !status.is_success() {
            let excerpt: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            let retryable = status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408;
            return Err(failed(format!("HTTP {status}: {}", excerpt.trim()), retryable));
        }
        let answer: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| failed("the answer is not JSON".into(), true))?;
        let value = answer["access_token"]
            .as_str()
            .filter(|t| !t.is_empty() && !t.contains(['\r', '\n']))
            .ok_or_else(|| failed("the answer holds no access_token".into(), true))?;
        let (lifetime, refresh_at) = refresh_at(started, answer["expires_in"].as_u64());
        tracing::info!(token_url = %token_url, expires_in = ?lifetime, "fetched an access token");
        Ok(Token { value: Secret::new(format!("Bearer {value}")), refresh_at })
    }
}

/// A token's lifetime and when to replace it: a tenth of its life (at most a minute)
/// before it ends. Without `expires_in` a token is kept for an hour (RFC 6749 leaves
/// it open). An `expires_in` over [`MAX_LIFETIME`] (2^64 − 1 has been seen) counts as that.
fn refresh_at(started: Instant, expires_in: Option<u64>) -> (Duration, Instant) {
    let lifetime = Duration::from_secs(expires_in.unwrap_or(3600)).min(MAX_LIFETIME);
    let early = lifetime - REFRESH_MARGIN.min(lifetime / 10);
    (lifetime, started.checked_add(early).unwrap_or(started))
}

/// A send error's chain of causes, without the URL (the caller names the endpoint).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() { "timed out".to_owned() } else { "request failed".to_owned() };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// application/x-www-form-urlencoded encoding of one value.
fn form_encode(text: &str) -> String {
    const FORM: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'*').remove(b'-').remove(b'.').remove(b'_').remove(b' ');
    percent_encoding::utf8_percent_encode(text, FORM).to_string().replace(' ', "+")
}

async fn read_limited(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < TOKEN_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(TOKEN_RESPONSE_BYTES);
    body
}

/// A header value that reqwest keeps out of its debug output.
pub fn sensitive(value: &Secret) -> Option<HeaderValue> {
    let mut header = HeaderValue::from_str(value.expose()).ok()?;
    header.set_sensitive(true);
    Some(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_expires_in_gives_a_refresh_time_without_panicking() {
        let now = Instant::now();
        let (lifetime, at) = refresh_at(now, Some(300));
        assert_eq!((lifetime, at), (Duration::from_secs(300), now + Duration::from_secs(270)));
        assert_eq!(refresh_at(now, None).1, now + Duration::from_secs(3600 - 60));
        // A token endpoint that answers 2^64 - 1 seconds is believed for a day at most.
        let (lifetime, at) = refresh_at(now, Some(u64::MAX));
        assert_eq!(lifetime, MAX_LIFETIME);
        assert!(at > now && at <= now + MAX_LIFETIME);
        assert!(refresh_at(now, Some(0)).1 <= now, "a token that is already over is replaced at once");
    }
}
