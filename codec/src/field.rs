//! HTTP/2 field validity (RFC 9113 §8.2.1), shared by the HPACK decoder, which
//! judges each dynamic table entry once, and the request validation, which
//! checks literal fields.

/// Bytes allowed in a field name after an optional leading colon: no controls,
/// space, DEL, non-ASCII, upper case or colon.
const NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x21;
    while b < 0x7f {
        table[b] = !(b as u8).is_ascii_uppercase() && b != b':' as usize;
        b += 1;
    }
    table
};

/// Names are lowercase, with no controls, spaces, DEL or non-ASCII; a colon only
/// as the first character of a pseudo-header. A table lookup folded without
/// early exit, which the compiler keeps branch-free.
pub(crate) fn valid_name(name: &[u8]) -> bool {
    let body = name.strip_prefix(b":").unwrap_or(name);
    !body.is_empty() && body.iter().fold(true, |ok, &b| ok & NAME_BYTE[b as usize])
}

/// No NUL, CR or LF, and no leading or trailing SP or HTAB.
pub(crate) fn valid_value(value: &[u8]) -> bool {
    let edge = |b: Option<&u8>| b.is_some_and(|&b| b == b' ' || b == b'\t');
    let forbidden = value.iter().fold(false, |bad, &b| {
        bad | (b == 0) | (b == b'\r') | (b == b'\n')
    });
    !forbidden && !edge(value.first()) && !edge(value.last())
}

/// Both name and value are valid.
pub(crate) fn is_valid(name: &[u8], value: &[u8]) -> bool {
    valid_name(name) && valid_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::metadata;

    #[test]
    fn agrees_with_the_reference_checks() {
        for b in 0..=255u8 {
            let one = [b];
            assert_eq!(
                valid_value(&one),
                metadata::is_valid_field_value(&one),
                "byte {b:#x}"
            );
            let inner = [b'a', b, b'a'];
            assert_eq!(
                valid_value(&inner),
                metadata::is_valid_field_value(&inner),
                "byte {b:#x}"
            );
            let name_ok = b > 0x20 && b < 0x7f && !b.is_ascii_uppercase() && b != b':';
            assert_eq!(valid_name(&[b'x', b]), name_ok, "byte {b:#x}");
        }
        assert!(
            valid_name(b":path") && !valid_name(b":") && !valid_name(b"") && !valid_name(b"a:b")
        );
    }

    #[test]
    fn static_table_entries_are_valid() {
        for (name, value) in crate::hpack::table::STATIC_TABLE.iter() {
            assert!(is_valid(name, value), "{}", String::from_utf8_lossy(name));
        }
    }
}
