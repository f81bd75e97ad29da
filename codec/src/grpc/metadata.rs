//! Custom metadata: key and value validity, and base64 for `-bin` keys.
//!
//! gRPC's grammar is stricter than HTTP/2's, so both checks are offered: the
//! gRPC ones for what an application may send, [`is_valid_field_value`] for what
//! HTTP/2 lets through at all (RFC 9113 §8.2.1).

use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use bytes::BufMut;

/// Standard alphabet. gRPC requires accepting padded and unpadded input and
/// recommends emitting unpadded. Non-zero trailing bits are tolerated because
/// other implementations' decoders are that lenient, so senders may rely on it.
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A `-bin` metadata value that is not valid base64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidBase64;

impl fmt::Display for InvalidBase64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid base64 in binary metadata value")
    }
}

impl std::error::Error for InvalidBase64 {}

/// Whether values under this key are binary, i.e. carried base64-encoded.
pub fn is_binary_key(name: &[u8]) -> bool {
    name.ends_with(b"-bin")
}

/// Whether `name` is a valid gRPC metadata key: non-empty, only `0-9 a-z _ - .`.
pub fn is_valid_key(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'_' | b'-' | b'.'))
}

/// Whether `value` fits gRPC's ASCII-Value: printable ASCII, 0x20–0x7E.
///
/// The empty value is accepted; applications do send it.
pub fn is_valid_ascii_value(value: &[u8]) -> bool {
    value.iter().all(|b| (0x20..=0x7E).contains(b))
}

/// Keys that gRPC or HTTP/2 reserve: never custom metadata.
const RESERVED: [&[u8]; 13] = [
    b"content-type",
    b"te",
    b"grpc-status",
    b"grpc-message",
    b"grpc-status-details-bin",
    b"grpc-encoding",
    b"grpc-accept-encoding",
    b"grpc-timeout",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
];

/// Whether (`name`, `value`) may be sent as custom metadata: a valid key that gRPC
/// and HTTP/2 do not reserve, and for ASCII keys a printable value without leading
/// or trailing space (binary values are base64-encoded, so any bytes go).
pub fn is_sendable_custom(name: &[u8], value: &[u8]) -> bool {
    is_valid_key(name)
        && !RESERVED.contains(&name)
        && (is_binary_key(name) || (is_valid_ascii_value(value) && is_valid_field_value(value)))
}

/// Whether `value` is a legal HTTP/2 field value (RFC 9113 §8.2.1): no NUL, CR or
/// LF anywhere, and no leading or trailing SP or HTAB.
///
/// A received header failing this makes the request malformed, unlike one that
/// only fails [`is_valid_ascii_value`], which gRPC says must not cause an error.
pub fn is_valid_field_value(value: &[u8]) -> bool {
    crate::field::valid_value(value)
}

/// Splits a binary value on `,` and trims surrounding SP/HTAB from each part.
///
/// Intermediaries may join repeated headers with commas, and `,` is not in the
/// base64 alphabet, so each part must be decoded on its own.
pub fn split_binary_values(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|part| {
        let start = part
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(part.len());
        let end = part
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(start, |p| p + 1);
        &part[start..end]
    })
}

/// Decodes one base64 value of a `-bin` key, padded or not.
///
/// A comma-joined list is rejected here; use [`split_binary_values`] first.
pub fn decode_binary(value: &[u8]) -> Result<Vec<u8>, InvalidBase64> {
    ENGINE.decode(value).map_err(|_| InvalidBase64)
}

/// Length of [`encode_binary`]'s output for `len` input bytes, for header-size accounting.
pub fn encoded_binary_len(len: usize) -> usize {
    len / 3 * 4 + [0, 2, 3][len % 3]
}

/// Appends `value` to `dst` as unpadded standard base64.
///
/// Encodes through a stack buffer so any `BufMut` works without a temporary allocation.
pub fn encode_binary(value: &[u8], dst: &mut impl BufMut) {
    // A multiple of 3 so no chunk but the last produces a partial quantum.
    const IN: usize = 768;
    let mut buf = [0u8; IN / 3 * 4];
    for chunk in value.chunks(IN) {
        let n = ENGINE
            .encode_slice(chunk, &mut buf)
            .expect("buffer holds the encoding of a full chunk");
        dst.put_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &[u8]) -> String {
        let mut out = Vec::new();
        encode_binary(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn binary_keys() {
        assert!(is_binary_key(b"trace-proto-bin"));
        assert!(is_binary_key(b"-bin"));
        assert!(!is_binary_key(b"bin"));
        assert!(!is_binary_key(b"x-bin-not"));
        assert!(!is_binary_key(b"x-BIN"));
    }

    #[test]
    fn key_validity() {
        assert!(is_valid_key(b"x-request-id"));
        assert!(is_valid_key(b"a_b.c-0-9"));
        assert!(!is_valid_key(b""));
        assert!(!is_valid_key(b"X-Upper"));
        assert!(!is_valid_key(b"has space"));
        assert!(!is_valid_key(b":path"));
        assert!(!is_valid_key(b"caf\xc3\xa9"));
    }

    #[test]
    fn ascii_value_validity() {
        assert!(is_valid_ascii_value(b""));
        assert!(is_valid_ascii_value(b" printable ~ "));
        assert!(!is_valid_ascii_value(b"tab\t"));
        assert!(!is_valid_ascii_value(b"del\x7f"));
        assert!(!is_valid_ascii_value(b"\xc3\xa9"));
    }

    #[test]
    fn field_value_validity() {
        assert!(is_valid_field_value(b""));
        assert!(is_valid_field_value(b"a b\tc"));
        assert!(is_valid_field_value(b"\xc3\xa9 obs-text ok"));
        assert!(!is_valid_field_value(b" lead"));
        assert!(!is_valid_field_value(b"trail\t"));
        assert!(!is_valid_field_value(b" "));
        assert!(!is_valid_field_value(b"a\0b"));
        assert!(!is_valid_field_value(b"a\rb"));
        assert!(!is_valid_field_value(b"a\nb"));
    }

    #[test]
    fn decode_padded_and_unpadded() {
        assert_eq!(decode_binary(b"").unwrap(), b"");
        assert_eq!(decode_binary(b"YQ").unwrap(), b"a");
        assert_eq!(decode_binary(b"YQ==").unwrap(), b"a");
        assert_eq!(decode_binary(b"YWI").unwrap(), b"ab");
        assert_eq!(decode_binary(b"YWI=").unwrap(), b"ab");
        assert_eq!(decode_binary(b"YWJj").unwrap(), b"abc");
        assert_eq!(decode_binary(b"+/8").unwrap(), [0xfb, 0xff]);
        // Indifferent padding mode also takes incomplete padding; harmless leniency.
        assert_eq!(decode_binary(b"YQ=").unwrap(), b"a");
    }

    #[test]
    fn decode_invalid() {
        for bad in [
            &b"Y"[..],
            b"YQ===",
            b"Y=Q=",
            b"-_8",
            b"YQ==,YQ==",
            b"YW I",
            b"\xff",
        ] {
            assert_eq!(decode_binary(bad), Err(InvalidBase64), "{bad:?}");
        }
    }

    #[test]
    fn split_then_decode_joined_values() {
        let parts: Vec<_> = split_binary_values(b"YQ==, YWI ,\tYWJj")
            .map(|p| decode_binary(p).unwrap())
            .collect();
        assert_eq!(parts, [&b"a"[..], b"ab", b"abc"]);
        assert_eq!(split_binary_values(b"").count(), 1);
    }

    #[test]
    fn encode_is_unpadded_and_round_trips() {
        assert_eq!(enc(b""), "");
        assert_eq!(enc(b"a"), "YQ");
        assert_eq!(enc(b"ab"), "YWI");
        assert_eq!(enc(b"abc"), "YWJj");
        assert_eq!(enc(&[0xfb, 0xff]), "+/8");
        for len in [0, 1, 2, 767, 768, 769, 770, 1536, 5000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let s = enc(&data);
            assert_eq!(s.len(), encoded_binary_len(len));
            assert!(!s.contains('='));
            assert_eq!(decode_binary(s.as_bytes()).unwrap(), data);
        }
    }
}
