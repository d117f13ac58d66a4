//! Strict parsing of `/customAction`'s query string into domain types.
//!
//! Unknown parameters are ignored (Workfront administrators may add their own); a
//! known parameter that is missing, empty, repeated, too long, not UTF-8 or holding
//! control characters is refused with a sentence naming it.

use docket::domain::{check_text, DocumentId, DocumentVersionId, TextError, MAX_ID_CHARS};

use crate::error::ApiError;

/// Longest raw query string accepted (bytes).
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// `/customAction`'s parameters, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomActionParams {
    pub name: String,
    pub document_id: DocumentId,
    pub document_version_id: DocumentVersionId,
}

const KNOWN: [&str; 3] = ["name", "documentId", "documentVersionId"];

impl CustomActionParams {
    pub fn parse(raw_query: &str) -> Result<Self, ApiError> {
        if raw_query.len() > MAX_QUERY_BYTES {
            return Err(ApiError::UriTooLong);
        }
        let mut found: [Option<String>; 3] = [None, None, None];
        for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            // Keys are compared decoded, so `document%49d` is `documentId`.
            let Ok(key) = decode(raw_key) else { continue };
            let Some(slot) = KNOWN.iter().position(|k| *k == key) else {
                continue;
            };
            if found[slot].is_some() {
                return Err(bad(KNOWN[slot], "was given more than once"));
            }
            let value = decode(raw_value).map_err(|()| bad(KNOWN[slot], "is not valid UTF-8 text"))?;
            found[slot] = Some(value);
        }
        let [name, document_id, document_version_id] = found;
        let name = required("name", name)?;
        check_text(&name, MAX_ID_CHARS).map_err(|e| text_error("name", e))?;
        let document_id =
            DocumentId::parse(&required("documentId", document_id)?).map_err(|e| text_error("documentId", e))?;
        let document_version_id = DocumentVersionId::parse(&required("documentVersionId", document_version_id)?)
            .map_err(|e| text_error("documentVersionId", e))?;
        Ok(Self { name, document_id, document_version_id })
    }
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space,
/// `%XX` a byte; the bytes must be UTF-8.
fn decode(component: &str) -> Result<String, ()> {
    let spaced = component.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().map(|s| s.into_owned()).map_err(|_| ())
}

fn required(field: &str, value: Option<String>) -> Result<String, ApiError> {
    value.ok_or_else(|| ApiError::BadRequest(format!("The request is missing the '{field}' parameter.")))
}

fn bad(field: &str, problem: &str) -> ApiError {
    ApiError::BadRequest(format!("The '{field}' parameter {problem}."))
}

fn text_error(field: &str, error: TextError) -> ApiError {
    bad(field, &error.to_string())
}

/// A refused header value, worded like a refused parameter.
pub(crate) fn header_error(field: &str, error: TextError) -> ApiError {
    ApiError::BadRequest(format!("The '{field}' header {error}."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(query: &str) -> String {
        match CustomActionParams::parse(query) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected a bad request for {query:?}, got {other:?}"),
        }
    }

    #[test]
    fn parses_and_ignores_unknown_parameters() {
        let p = CustomActionParams::parse("name=archive&documentId=abc&documentVersionId=v%201&access_type=offline&x")
            .unwrap();
        assert_eq!(p.name, "archive");
        assert_eq!(p.document_id.as_str(), "abc");
        assert_eq!(p.document_version_id.as_str(), "v 1");
        let p = CustomActionParams::parse("documentVersionId=a+b&name=n&documentId=%E2%9C%93").unwrap();
        assert_eq!(p.document_version_id.as_str(), "a b");
        assert_eq!(p.document_id.as_str(), "✓");
    }

    #[test]
    fn refuses_each_bad_value_with_a_sentence() {
        assert_eq!(message(""), "The request is missing the 'name' parameter.");
        assert_eq!(message("name=a&documentId=b"), "The request is missing the 'documentVersionId' parameter.");
        assert_eq!(message("name=a&documentVersionId=b"), "The request is missing the 'documentId' parameter.");
        assert_eq!(message("name=&documentId=b&documentVersionId=c"), "The 'name' parameter is empty.");
        assert_eq!(message("name=a&documentId&documentVersionId=c"), "The 'documentId' parameter is empty.");
        assert_eq!(
            message(&format!("name=a&documentId={}&documentVersionId=c", "x".repeat(256))),
            "The 'documentId' parameter is longer than 255 characters."
        );
        assert_eq!(
            message("name=a&documentId=b%00&documentVersionId=c"),
            "The 'documentId' parameter contains control characters."
        );
        assert_eq!(
            message("name=a&documentId=b&documentVersionId=%FF%FE"),
            "The 'documentVersionId' parameter is not valid UTF-8 text."
        );
        assert_eq!(
            message("name=a&name=b&documentId=b&documentVersionId=c"),
            "The 'name' parameter was given more than once."
        );
        assert_eq!(
            message("name=a&document%49d=b&documentId=c&documentVersionId=c"),
            "The 'documentId' parameter was given more than once."
        );
    }

    #[test]
    fn huge_query_is_refused_before_parsing() {
        let q = format!("name=a&documentId=b&documentVersionId=c&pad={}", "x".repeat(MAX_QUERY_BYTES));
        assert!(matches!(CustomActionParams::parse(&q), Err(ApiError::UriTooLong)));
    }

    #[test]
    fn thousands_of_unknown_parameters_are_ignored() {
        let mut q = String::from("name=a&documentId=b&documentVersionId=c");
        for i in 0..1000 {
            q.push_str(&format!("&p{i}=1"));
        }
        assert!(q.len() <= MAX_QUERY_BYTES);
        assert!(CustomActionParams::parse(&q).is_ok());
    }

    proptest! {
        /// Whatever the query, parsing returns Ok or a 4xx error; never a panic, and
        /// never a value the domain types would refuse.
        #[test]
        fn any_query_is_ok_or_client_error(query in ".{0,300}") {
            match CustomActionParams::parse(&query) {
                Ok(p) => {
                    prop_assert!(check_text(&p.name, MAX_ID_CHARS).is_ok());
                    prop_assert!(check_text(p.document_id.as_str(), MAX_ID_CHARS).is_ok());
                }
                Err(e) => prop_assert!(e.status().is_client_error()),
            }
        }

        /// Any valid value survives percent-encoding and decoding unchanged.
        #[test]
        fn valid_values_round_trip(doc in "[^\\p{Cc}\\p{Cf}]{1,255}") {
            let encoded: String = percent_encoding::utf8_percent_encode(&doc, percent_encoding::NON_ALPHANUMERIC).to_string();
            let p = CustomActionParams::parse(&format!("name=a&documentId={encoded}&documentVersionId=v")).unwrap();
            prop_assert_eq!(p.document_id.as_str(), doc.as_str());
        }
    }
}
