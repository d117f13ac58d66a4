//! W3C Trace Context (`traceparent`): read at intake, stored with the job, continued
//! by each attempt and sent to the target, so that one trace shows the trigger, the
//! job, the target call and the follow-ups.
//!
//! Parsing is strict and never an error to the caller: a header that is not a valid
//! `traceparent` is as if it were absent (the intake starts a new trace).

use std::fmt;

use rand::RngCore;

/// The header's name.
pub const HEADER: &str = "traceparent";

/// One span's place in a trace: the trace id, the span id and the trace flags
/// (bit 0: sampled). Always written as version `00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value. Version `00` must be exactly
    /// `00-<32 hex>-<16 hex>-<2 hex>`; a later version (not `ff`) may be longer, and
    /// its first four fields are read, as the specification asks. Hex is lower-case;
    /// an all-zero trace id or span id is invalid. Anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        let bytes = value.as_bytes();
        if bytes.len() < 55 {
            return None;
        }
        let version = hex_byte(&bytes[0..2])?;
        match version {
            0xff => return None,
            0 if bytes.len() != 55 => return None,
            // A future version: anything after the flags must start with a dash.
            _ if bytes.len() > 55 && bytes[55] != b'-' => return None,
            _ => {}
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, byte) in trace_id.iter_mut().enumerate() {
            *byte = hex_byte(&bytes[3 + 2 * i..5 + 2 * i])?;
        }
        let mut span_id = [0u8; 8];
        for (i, byte) in span_id.iter_mut().enumerate() {
            *byte = hex_byte(&bytes[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&bytes[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self { trace_id, span_id, flags })
    }

    /// The span of an intake that received `headers`: a child of their `traceparent`
    /// if it is valid (one value; a repeated header is as if absent), else a new
    /// trace; and the caller's span, if valid. Records `trace_id` on the current
    /// tracing span.
    pub fn intake(headers: &http::HeaderMap) -> (Self, Option<Self>) {
        let mut values = headers.get_all(HEADER).iter();
        let incoming = match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok().and_then(Self::parse),
            _ => None,
        };
        let span = incoming.as_ref().map_or_else(Self::new_root, Self::child);
        tracing::Span::current().record("trace_id", tracing::field::display(span.trace_id_hex()));
        (span, incoming)
    }

    /// The start of a new trace: random ids, sampled.
    pub fn new_root() -> Self {
        let mut trace_id = [0u8; 16];
        while trace_id == [0; 16] {
            rand::thread_rng().fill_bytes(&mut trace_id);
        }
        Self { trace_id, span_id: new_span_id(), flags: 0x01 }
    }

    /// A span within this one's trace: the same trace id and flags, a new span id.
    pub fn child(&self) -> Self {
        Self { trace_id: self.trace_id, span_id: new_span_id(), flags: self.flags }
    }

    /// The trace id as 32 lower-case hex digits (what logs show as `trace_id`).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{:02x}", hex(&self.trace_id), hex(&self.span_id), self.flags)
    }
}

fn new_span_id() -> [u8; 8] {
    let mut span_id = [0u8; 8];
    while span_id == [0; 8] {
        rand::thread_rng().fill_bytes(&mut span_id);
    }
    span_id
}

/// Lower-case hex, without an allocation per byte: it runs for every job a worker
/// starts (the attempt's `trace_id` log field, its `traceparent` header).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Two lower-case hex digits.
fn hex_byte(digits: &[u8]) -> Option<u8> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    Some(nibble(digits[0])? << 4 | nibble(digits[1])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_parses_and_prints_back() {
        let parsed = TraceParent::parse(VALID).unwrap();
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(parsed.flags, 1);
        assert_eq!(parsed.to_string(), VALID);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(TraceParent::parse(unsampled).unwrap().flags, 0);
    }

    #[test]
    fn a_future_version_is_read_for_its_first_four_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever";
        let parsed = TraceParent::parse(later).unwrap();
        assert_eq!(parsed.to_string(), VALID);
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_some());
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x").is_none());
    }

    #[test]
    fn invalid_headers_are_none() {
        for bad in [
            "",
            "00",
            // upper-case hex
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            // all-zero ids
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // wrong lengths
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-001",
            // the forbidden version, a version that is not hex
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // not hex
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            // whitespace, other separators
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-é",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn roots_and_children() {
        let root = TraceParent::new_root();
        assert_eq!(root.flags, 1);
        assert_eq!(TraceParent::parse(&root.to_string()), Some(root));
        let child = root.child();
        assert_eq!((child.trace_id, child.flags), (root.trace_id, root.flags));
        assert_ne!(child.span_id, root.span_id);
        assert_ne!(TraceParent::new_root().trace_id, root.trace_id);
        let unsampled = TraceParent { flags: 0, ..root };
        assert_eq!(unsampled.child().flags, 0);
    }
}
