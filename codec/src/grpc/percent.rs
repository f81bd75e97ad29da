//! Percent-encoding of the `grpc-message` trailer.
//!
//! Bytes outside printable ASCII (0x20–0x7E), and `%` itself, are written as
//! `%XX` with uppercase hex. Decoding must never fail (the status message is the
//! only explanation the user gets), so malformed input degrades instead of erroring.

use std::borrow::Cow;

use bytes::BufMut;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn is_unreserved(b: u8) -> bool {
    (0x20..=0x7E).contains(&b) && b != b'%'
}

/// Whether `msg` contains anything [`encode`] would escape.
pub fn needs_encoding(msg: &str) -> bool {
    !msg.bytes().all(is_unreserved) || msg.starts_with(' ') || msg.ends_with(' ')
}

/// Appends `msg` to `dst`, percent-encoded.
///
/// Runs of plain bytes are copied as slices; nothing is allocated beyond what
/// `dst` itself may need to grow.
pub fn encode(msg: &str, dst: &mut impl BufMut) {
    let bytes = msg.as_bytes();
    let last = bytes.len().saturating_sub(1);
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        // A space is allowed inside the value, but HTTP/2 field values may not
        // start or end with whitespace (RFC 9113 §8.2.1): encode it there.
        let edge_space = b == b' ' && (i == 0 || i == last);
        if !is_unreserved(b) || edge_space {
            dst.put_slice(&bytes[start..i]);
            dst.put_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
            start = i + 1;
        }
    }
    dst.put_slice(&bytes[start..]);
}

fn hex_val(b: u8) -> Option<u8> {
    // Lowercase is outside the grammar but costs nothing to accept.
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Decodes a `grpc-message` value. Never fails.
///
/// A `%` not followed by two hex digits is kept literally, and bytes that do not
/// form valid UTF-8 after decoding become U+FFFD. Borrows `value` when it holds
/// no escapes and is valid UTF-8, the common case.
pub fn decode(value: &[u8]) -> Cow<'_, str> {
    if !value.contains(&b'%') {
        return String::from_utf8_lossy(value);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                value.get(i + 1).copied().and_then(hex_val),
                value.get(i + 2).copied().and_then(hex_val),
            ) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        let mut v = Vec::new();
        encode(s, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn plain_text_passes_through() {
        let s = "Hello, world! ~{}[]";
        assert!(!needs_encoding(s));
        assert_eq!(enc(s), s);
        assert!(matches!(decode(s.as_bytes()), Cow::Borrowed(b) if b == s));
    }

    #[test]
    fn escapes_percent_controls_and_non_ascii() {
        assert!(needs_encoding("100%"));
        assert_eq!(enc("100%"), "100%25");
        assert_eq!(enc("a\tb\x7f"), "a%09b%7F");
        assert_eq!(enc("é"), "%C3%A9");
        assert_eq!(enc(""), "");
    }

    #[test]
    fn interop_special_status_message_round_trips() {
        let msg = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
        assert!(needs_encoding(msg));
        let wire = enc(msg);
        assert!(wire.bytes().all(|b| (0x20..=0x7E).contains(&b)));
        assert!(wire.starts_with("%09%0Atest with whitespace%0D%0Aand Unicode BMP %E2%98%BA"));
        assert_eq!(decode(wire.as_bytes()), msg);
    }

    #[test]
    fn every_byte_round_trips() {
        let all: String = (0u32..0x800).filter_map(char::from_u32).collect();
        assert_eq!(decode(enc(&all).as_bytes()), all);
    }

    #[test]
    fn malformed_sequences_are_kept() {
        assert_eq!(decode(b"%"), "%");
        assert_eq!(decode(b"%4"), "%4");
        assert_eq!(decode(b"a%4"), "a%4");
        assert_eq!(decode(b"%zz"), "%zz");
        assert_eq!(decode(b"%4g"), "%4g");
        assert_eq!(decode(b"%%41"), "%A");
        assert_eq!(decode(b"%e2%98%ba"), "☺");
        assert_eq!(decode(b"50%25 off"), "50% off");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(decode(b"%FF"), "\u{FFFD}");
        assert_eq!(decode(b"x%E2%98"), "x\u{FFFD}");
        assert_eq!(decode(b"raw \xff"), "raw \u{FFFD}");
    }
}
