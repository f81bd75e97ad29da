//! The `grpc-timeout` header: `TimeoutValue TimeoutUnit`, at most 8 ASCII digits
//! followed by one of `H M S m u n`.

use std::fmt;
use std::time::Duration;

use bytes::BufMut;

/// The 8-digit ceiling of `TimeoutValue`.
const MAX_VALUE: u64 = 99_999_999;

/// Longest encoding [`encode`] writes: 8 digits and the unit.
pub const MAX_ENCODED_LEN: usize = 9;

/// Unit characters with their length in nanoseconds, finest first so [`encode`]
/// keeps as much precision as the 8 digits allow.
const UNITS: [(u8, u64); 6] = [
    (b'n', 1),
    (b'u', 1_000),
    (b'm', 1_000_000),
    (b'S', 1_000_000_000),
    (b'M', 60 * 1_000_000_000),
    (b'H', 3_600 * 1_000_000_000),
];

/// A `grpc-timeout` value that does not follow the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTimeout;

impl fmt::Display for InvalidTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid grpc-timeout: expected 1 to 8 digits followed by H, M, S, m, u or n")
    }
}

impl std::error::Error for InvalidTimeout {}

/// Parses a `grpc-timeout` value.
///
/// A value of zero is accepted (an already expired deadline) although the grammar
/// says "positive", since peers do send it and refusing the call would be worse
/// than failing it with DEADLINE_EXCEEDED.
pub fn parse(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    let (&unit, digits) = value.split_last().ok_or(InvalidTimeout)?;
    if digits.is_empty() || digits.len() > 8 {
        return Err(InvalidTimeout);
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(InvalidTimeout);
        }
        n = n * 10 + u64::from(d - b'0');
    }
    let nanos_per = UNITS
        .iter()
        .find(|(c, _)| *c == unit)
        .map(|(_, ns)| *ns)
        .ok_or(InvalidTimeout)?;
    // 99_999_999 hours is about 3.6e20 ns, beyond u64 nanoseconds, so split into
    // whole seconds and a nanosecond remainder instead.
    let (secs, sub_nanos) = if nanos_per >= 1_000_000_000 {
        let secs = n
            .checked_mul(nanos_per / 1_000_000_000)
            .ok_or(InvalidTimeout)?;
        (secs, 0)
    } else {
        let total = n * nanos_per;
        (total / 1_000_000_000, (total % 1_000_000_000) as u32)
    };
    Ok(Duration::new(secs, sub_nanos))
}

/// Writes `d` as a `grpc-timeout` value (at most [`MAX_ENCODED_LEN`] bytes).
///
/// Uses the finest unit whose value fits in 8 digits and rounds up, so the peer
/// never sees a shorter deadline than ours. A zero duration is sent as `1n`
/// because the grammar asks for a positive value. Durations beyond 99999999 hours
/// (over 11,000 years) are clamped to that.
pub fn encode(d: Duration, dst: &mut impl BufMut) {
    let nanos = d.as_nanos();
    let (value, unit) = UNITS
        .iter()
        .find_map(|&(c, per)| {
            let v = nanos.div_ceil(u128::from(per));
            (v <= u128::from(MAX_VALUE)).then_some((v as u64, c))
        })
        .unwrap_or((MAX_VALUE, b'H'));
    let value = value.max(1);

    let mut buf = [0u8; MAX_ENCODED_LEN];
    let mut i = MAX_ENCODED_LEN - 1;
    buf[i] = unit;
    let mut v = value;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    dst.put_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(d: Duration) -> String {
        let mut v = Vec::new();
        encode(d, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse(b"7n"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse(b"7u"), Ok(Duration::from_micros(7)));
        assert_eq!(parse(b"7m"), Ok(Duration::from_millis(7)));
        assert_eq!(parse(b"7S"), Ok(Duration::from_secs(7)));
        assert_eq!(parse(b"7M"), Ok(Duration::from_secs(7 * 60)));
        assert_eq!(parse(b"7H"), Ok(Duration::from_secs(7 * 3600)));
        assert_eq!(parse(b"0S"), Ok(Duration::ZERO));
        assert_eq!(parse(b"0007S"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn eight_digits_accepted_nine_rejected() {
        assert_eq!(parse(b"99999999n"), Ok(Duration::from_nanos(99_999_999)));
        assert_eq!(parse(b"99999999u"), Ok(Duration::from_micros(99_999_999)));
        assert_eq!(parse(b"99999999m"), Ok(Duration::from_millis(99_999_999)));
        assert_eq!(
            parse(b"99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3600))
        );
        assert_eq!(parse(b"100000000n"), Err(InvalidTimeout));
        assert_eq!(parse(b"000000001S"), Err(InvalidTimeout));
    }

    #[test]
    fn garbage_rejected() {
        for bad in [
            &b""[..],
            b"S",
            b"1",
            b"10",
            b"1s",
            b"1h",
            b"1x",
            b"-1S",
            b"+1S",
            b" 1S",
            b"1S ",
            b"1 S",
            b"1.5S",
            b"1SS",
            b"\xff",
            b"1\xffS",
        ] {
            assert_eq!(parse(bad), Err(InvalidTimeout), "{bad:?}");
        }
    }

    #[test]
    fn encode_picks_finest_unit_and_rounds_up() {
        assert_eq!(enc(Duration::ZERO), "1n");
        assert_eq!(enc(Duration::from_nanos(1)), "1n");
        assert_eq!(enc(Duration::from_nanos(99_999_999)), "99999999n");
        // 100_000_000 ns needs nine digits in ns, so it becomes 100000u.
        assert_eq!(enc(Duration::from_nanos(100_000_000)), "100000u");
        assert_eq!(enc(Duration::from_nanos(100_000_001)), "100001u");
        assert_eq!(enc(Duration::from_secs(1)), "1000000u");
        assert_eq!(enc(Duration::from_secs(100)), "100000m");
        assert_eq!(
            enc(Duration::from_secs(100_000) + Duration::from_nanos(1)),
            "100001S"
        );
        assert_eq!(enc(Duration::from_secs(99_999_999 * 60 + 1)), "1666667H");
        assert_eq!(enc(Duration::from_secs(99_999_999 * 3600)), "99999999H");
        assert_eq!(enc(Duration::MAX), "99999999H");
    }

    #[test]
    fn encode_never_shortens_and_round_trips() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = Duration::from_nanos(x >> (x % 64));
            let s = enc(d);
            assert!(s.len() <= MAX_ENCODED_LEN);
            let back = parse(s.as_bytes()).unwrap();
            assert!(back >= d, "{d:?} -> {s} -> {back:?}");
        }
    }
}
