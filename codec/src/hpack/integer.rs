//! The prefixed integer representation of RFC 7541 §5.1.

use bytes::{BufMut, BytesMut};

use super::DecoderError;

/// The largest value [`decode`] accepts. Every HPACK integer is an index, a
/// string length or a table size, none of which can sensibly exceed this, and
/// capping it keeps arithmetic on the result free of overflow.
pub const MAX_VALUE: usize = u32::MAX as usize;

/// Continuation octets [`decode`] reads at most: 5 × 7 bits already exceed
/// [`MAX_VALUE`], so a sixth can only be padding meant to waste our time.
const MAX_CONTINUATION: usize = 5;

/// Appends `value` with an N-bit prefix (`prefix_bits` in 1..=8). `first_byte`
/// carries the representation's flag bits above the prefix; its low
/// `prefix_bits` bits must be zero.
pub fn encode(value: usize, prefix_bits: u8, first_byte: u8, dst: &mut BytesMut) {
    debug_assert!((1..=8).contains(&prefix_bits));
    let max = (1usize << prefix_bits) - 1;
    debug_assert_eq!(usize::from(first_byte) & max, 0);
    if value < max {
        dst.put_u8(first_byte | value as u8);
        return;
    }
    dst.put_u8(first_byte | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        dst.put_u8(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    dst.put_u8(rest as u8);
}

/// Decodes an integer with an N-bit prefix from the start of `src` (the bits
/// above the prefix in the first octet are ignored). Returns the value and the
/// number of octets it took.
///
/// Fails with [`DecoderError::NeedMore`] if `src` ends inside the integer and
/// with [`DecoderError::IntegerOverflow`] if it exceeds [`MAX_VALUE`] or uses
/// more than five continuation octets.
pub fn decode(src: &[u8], prefix_bits: u8) -> Result<(usize, usize), DecoderError> {
    debug_assert!((1..=8).contains(&prefix_bits));
    let first = *src.first().ok_or(DecoderError::NeedMore)?;
    let max = (1u16 << prefix_bits) - 1;
    let prefix = u16::from(first) & max;
    if prefix < max {
        return Ok((usize::from(prefix), 1));
    }
    let mut value = u64::from(max);
    for i in 0..MAX_CONTINUATION {
        let byte = *src.get(1 + i).ok_or(DecoderError::NeedMore)?;
        value += u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if value > MAX_VALUE as u64 {
                return Err(DecoderError::IntegerOverflow);
            }
            return Ok((value as usize, 2 + i));
        }
    }
    Err(DecoderError::IntegerOverflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(value: usize, prefix_bits: u8, first_byte: u8) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(value, prefix_bits, first_byte, &mut out);
        out.to_vec()
    }

    #[test]
    fn c_1_1_ten_with_5_bit_prefix() {
        assert_eq!(enc(10, 5, 0), [0b0000_1010]);
        assert_eq!(decode(&[0b1110_1010], 5), Ok((10, 1)));
    }

    #[test]
    fn c_1_2_1337_with_5_bit_prefix() {
        assert_eq!(enc(1337, 5, 0), [0b0001_1111, 0b1001_1010, 0b0000_1010]);
        assert_eq!(
            decode(&[0b0001_1111, 0b1001_1010, 0b0000_1010], 5),
            Ok((1337, 3))
        );
    }

    #[test]
    fn c_1_3_42_at_octet_boundary() {
        assert_eq!(enc(42, 8, 0), [42]);
        assert_eq!(decode(&[42], 8), Ok((42, 1)));
    }

    #[test]
    fn boundaries() {
        // A value equal to 2^N - 1 needs a zero continuation octet.
        assert_eq!(enc(31, 5, 0), [31, 0]);
        assert_eq!(decode(&[31, 0], 5), Ok((31, 2)));
        assert_eq!(enc(30, 5, 0xa0), [0xa0 | 30]);
        assert_eq!(enc(255, 8, 0), [255, 0]);
        assert_eq!(decode(&[255, 0], 8), Ok((255, 2)));
        // Trailing bytes after the integer are not consumed.
        assert_eq!(decode(&[5, 99], 4), Ok((5, 1)));
        for prefix in 1..=8 {
            for value in [0, 1, 126, 127, 128, 16_383, 16_384, 1 << 21, MAX_VALUE] {
                let bytes = enc(value, prefix, 0);
                assert_eq!(
                    decode(&bytes, prefix),
                    Ok((value, bytes.len())),
                    "{value} {prefix}"
                );
            }
        }
    }

    #[test]
    fn truncated() {
        assert_eq!(decode(&[], 5), Err(DecoderError::NeedMore));
        assert_eq!(decode(&[31], 5), Err(DecoderError::NeedMore));
        assert_eq!(decode(&[31, 0x80, 0x80], 5), Err(DecoderError::NeedMore));
    }

    #[test]
    fn overflow() {
        // Six continuation octets, even if they only encode zeros.
        assert_eq!(
            decode(&[31, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], 5),
            Err(DecoderError::IntegerOverflow)
        );
        // Five octets whose value exceeds u32.
        assert_eq!(
            decode(&[31, 0xff, 0xff, 0xff, 0xff, 0x0f], 5),
            Err(DecoderError::IntegerOverflow)
        );
        // Just at the limit is fine.
        let bytes = enc(MAX_VALUE, 5, 0);
        assert_eq!(bytes.len(), 6);
        assert_eq!(decode(&bytes, 5), Ok((MAX_VALUE, 6)));
        let mut over = BytesMut::new();
        encode(MAX_VALUE, 7, 0, &mut over);
        // Bump the lowest continuation group to push it one past the limit.
        over[1] += 1;
        assert_eq!(decode(&over, 7), Err(DecoderError::IntegerOverflow));
    }
}
