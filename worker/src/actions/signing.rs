//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): the secret is
//! `whsec_` + base64 of the key bytes; the signature of a message is
//! `v1,` + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Signs outgoing requests of one action. Holds the key; never printed.
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

/// Shortest key accepted (bytes after base64 decoding).
const MIN_KEY_BYTES: usize = 16;

impl Signer {
    /// Reads the secret from the environment variable `variable`; the error says what
    /// is wrong with it, without its value.
    pub fn from_env(variable: &str) -> Result<Self, String> {
        let value = std::env::var(variable).map_err(|_| "is not set in the environment".to_owned())?;
        Self::from_secret(&value)
    }

    pub fn from_secret(secret: &str) -> Result<Self, String> {
        let encoded = secret.trim().strip_prefix("whsec_").ok_or("must start with \"whsec_\"")?;
        let key = STANDARD.decode(encoded).map_err(|_| "is not valid base64 after \"whsec_\"".to_owned())?;
        if key.len() < MIN_KEY_BYTES {
            return Err(format!("is shorter than {MIN_KEY_BYTES} bytes"));
        }
        Ok(Self { key })
    }

    /// The `webhook-signature` header value.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_malformed_secrets() {
        assert!(Signer::from_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err().contains("whsec_"));
        assert!(Signer::from_secret("whsec_!!!").unwrap_err().contains("base64"));
        assert!(Signer::from_secret("whsec_c2hvcnQ=").unwrap_err().contains("shorter"));
        assert!(Signer::from_env("DOCKET_TEST_UNSET_VARIABLE_4711").unwrap_err().contains("not set"));
    }

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        // The example of the Standard Webhooks specification's reference libraries.
        let signer = Signer::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signer.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
