//! The static Huffman code of RFC 7541 §5.2 and Appendix B.
//!
//! Decoding walks a state machine four bits at a time: each state is an inner
//! node of the code tree, and one table lookup per nibble gives the next state
//! and at most one output symbol (no code is shorter than five bits, so a nibble
//! can never finish two). The table is computed at compile time from the code
//! list, so there is no start-up cost and no lazy initialisation on the hot path.

use bytes::{BufMut, BytesMut};

use super::DecoderError;

/// `(code, length in bits)` for symbols 0..=255 and EOS (256), RFC 7541 Appendix B.
/// Codes are right-aligned, as in the table's "code as hex" column.
const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

const EOS: u16 = 256;

/// Marks a child slot of the code tree as a leaf; the low bits then hold the symbol.
const LEAF: u16 = 0x8000;
/// A child slot not (yet) filled in; a complete code leaves none of these behind.
const EMPTY: u16 = u16::MAX;
/// `ones` value of a node whose path from the root contains a zero bit.
const NOT_ONES: u8 = u8::MAX;

/// The code tree. A complete prefix code with 257 leaves has exactly 256 inner
/// nodes, which is what lets a decoder state fit in a `u8`.
struct Tree {
    /// `children[node][bit]`: an inner node id, or `LEAF | symbol`.
    children: [[u16; 2]; 256],
    /// For each inner node, the length of its path if that path is all ones, else
    /// `NOT_ONES`. Only such nodes may be where a string ends (§5.2 padding).
    ones: [u8; 256],
    /// Inner nodes created; 256 when the code list is right.
    inner_nodes: usize,
    /// False if a code was a prefix of another, or too many inner nodes were needed.
    consistent: bool,
}

const fn build_tree() -> Tree {
    let mut children = [[EMPTY; 2]; 256];
    let mut ones = [NOT_ONES; 256];
    ones[0] = 0;
    let mut inner_nodes = 1;
    let mut consistent = true;
    let mut sym = 0;
    while sym < CODES.len() {
        let (code, len) = CODES[sym];
        let mut node = 0;
        let mut i = len;
        while i > 0 {
            i -= 1;
            let bit = ((code >> i) & 1) as usize;
            let slot = children[node][bit];
            if i == 0 {
                if slot != EMPTY {
                    consistent = false;
                }
                children[node][bit] = LEAF | sym as u16;
            } else if slot == EMPTY {
                if inner_nodes == 256 {
                    // Only reachable with a corrupt code list; the unit tests check
                    // `consistent`, and stopping here keeps the const evaluation in bounds.
                    return Tree {
                        children,
                        ones,
                        inner_nodes,
                        consistent: false,
                    };
                }
                children[node][bit] = inner_nodes as u16;
                ones[inner_nodes] = if bit == 1 && ones[node] != NOT_ONES {
                    ones[node] + 1
                } else {
                    NOT_ONES
                };
                node = inner_nodes;
                inner_nodes += 1;
            } else if slot & LEAF != 0 {
                consistent = false;
                return Tree {
                    children,
                    ones,
                    inner_nodes,
                    consistent,
                };
            } else {
                node = slot as usize;
            }
        }
        sym += 1;
    }
    Tree {
        children,
        ones,
        inner_nodes,
        consistent,
    }
}

/// The step output emits `sym`.
const EMIT: u8 = 1;
/// The state reached may end the string: the bits since the last symbol are at
/// most seven ones, i.e. a valid EOS-prefix padding (§5.2).
const ACCEPT: u8 = 2;
/// The nibble completed the EOS symbol, which must not appear in a string.
const FAIL: u8 = 4;

#[derive(Clone, Copy)]
struct Step {
    next: u8,
    sym: u8,
    flags: u8,
}

const fn build_steps(tree: &Tree) -> [[Step; 16]; 256] {
    let mut steps = [[Step {
        next: 0,
        sym: 0,
        flags: FAIL,
    }; 16]; 256];
    let mut state = 0;
    while state < 256 {
        let mut nibble = 0;
        while nibble < 16 {
            let mut node = state;
            let mut flags = 0;
            let mut sym = 0;
            let mut k = 4;
            while k > 0 {
                k -= 1;
                let child = tree.children[node][(nibble >> k) & 1];
                if child == EMPTY {
                    // Unreachable for a complete code; treat like EOS so that a
                    // broken table could only reject input, never misdecode it.
                    flags = FAIL;
                    break;
                } else if child & LEAF != 0 {
                    let s = child & !LEAF;
                    if s == EOS {
                        flags = FAIL;
                        break;
                    }
                    flags |= EMIT;
                    sym = s as u8;
                    node = 0;
                } else {
                    node = child as usize;
                }
            }
            if flags & FAIL == 0 && tree.ones[node] <= 7 {
                flags |= ACCEPT;
            }
            steps[state][nibble] = Step {
                next: node as u8,
                sym,
                flags,
            };
            nibble += 1;
        }
        state += 1;
    }
    steps
}

const TREE: Tree = build_tree();

// A mistyped code list fails the build rather than misdecoding at run time.
const _: () = assert!(TREE.consistent && TREE.inner_nodes == 256);

static STEPS: [[Step; 16]; 256] = build_steps(&TREE);

/// Decodes the Huffman-coded string `src`, appending the octets to `dst`.
///
/// Fails with [`DecoderError::EosInString`] if the EOS symbol is coded, and
/// with [`DecoderError::InvalidPadding`] if the string does not end on a symbol
/// boundary followed by at most seven 1 bits.
pub fn decode(src: &[u8], dst: &mut BytesMut) -> Result<(), DecoderError> {
    // The shortest code is five bits, so this bounds the output and spares
    // `put_u8` any reallocation mid-string.
    dst.reserve(src.len() * 8 / 5);
    let mut state = 0usize;
    let mut accept = true;
    for &byte in src {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = STEPS[state][nibble as usize];
            if step.flags & FAIL != 0 {
                return Err(DecoderError::EosInString);
            }
            if step.flags & EMIT != 0 {
                dst.put_u8(step.sym);
            }
            state = step.next as usize;
            accept = step.flags & ACCEPT != 0;
        }
    }
    if accept {
        Ok(())
    } else {
        Err(DecoderError::InvalidPadding)
    }
}

/// Appends the Huffman coding of `src` to `dst`, padded with 1 bits (the EOS
/// prefix) to a whole octet.
pub fn encode(src: &[u8], dst: &mut BytesMut) {
    dst.reserve(encoded_len(src));
    // Holds fewer than 8 pending bits between symbols, so adding a code of at
    // most 30 bits never overflows.
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &byte in src {
        let (code, len) = CODES[byte as usize];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            dst.put_u8((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        dst.put_u8(((acc << pad) | ((1 << pad) - 1)) as u8);
    }
}

/// The number of octets [`encode`] would write for `src`.
pub fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src.iter().map(|&b| CODES[b as usize].1 as usize).sum();
    bits.div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(src: &[u8]) -> Result<Vec<u8>, DecoderError> {
        let mut out = BytesMut::new();
        decode(src, &mut out).map(|()| out.to_vec())
    }

    fn enc(src: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(src, &mut out);
        assert_eq!(out.len(), encoded_len(src));
        out.to_vec()
    }

    /// A typo in `CODES` would almost surely break the canonical ordering the
    /// RFC's code has (codes of each length are consecutive, in symbol order,
    /// following on from the shorter ones), so this checks the transcription.
    #[test]
    fn code_table_is_canonical() {
        let mut order: Vec<usize> = (0..CODES.len()).collect();
        order.sort_by_key(|&s| (CODES[s].1, s));
        let mut expected: u64 = 0;
        let mut prev_len = CODES[order[0]].1;
        for (i, &s) in order.iter().enumerate() {
            let (code, len) = CODES[s];
            if i > 0 {
                expected = (expected + 1) << (len - prev_len);
            }
            assert_eq!(u64::from(code), expected, "symbol {s}");
            assert!(u64::from(code) < 1 << len);
            prev_len = len;
        }
        // The last code is EOS, all ones: the code is complete.
        assert_eq!(expected, (1 << 30) - 1);
    }

    #[test]
    fn tree_is_complete() {
        let tree = build_tree();
        assert!(tree.consistent);
        assert_eq!(tree.inner_nodes, 256);
        assert!(tree.children.iter().flatten().all(|&c| c != EMPTY));
    }

    #[test]
    fn every_symbol_roundtrips() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(dec(&enc(&all)).unwrap(), all);
        for b in 0..=255u8 {
            assert_eq!(dec(&enc(&[b])).unwrap(), [b]);
        }
    }

    #[test]
    fn rfc_examples() {
        // RFC 7541 C.4.1 and C.4.2.
        let www = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(enc(b"www.example.com"), www);
        assert_eq!(dec(&www).unwrap(), b"www.example.com");
        assert_eq!(enc(b"no-cache"), [0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]);
    }

    #[test]
    fn empty_string() {
        assert_eq!(dec(&[]).unwrap(), b"");
        assert_eq!(enc(b""), b"");
    }

    #[test]
    fn padding_of_up_to_seven_ones_is_accepted() {
        // 'a' is 00011 (5 bits) + 3 padding ones.
        assert_eq!(dec(&[0b0001_1111]).unwrap(), b"a");
        // '0' 00000 then '0' 00000 then 6 padding ones = 16 bits.
        assert_eq!(dec(&[0b0000_0000, 0b0011_1111]).unwrap(), b"00");
        // 'A' 100001 (6 bits) + '0' 00000 (5 bits) + 5 ones.
        assert_eq!(dec(&[0b1000_0100, 0b0001_1111]).unwrap(), b"A0");
    }

    #[test]
    fn padding_longer_than_seven_bits_is_rejected() {
        // 'a' then 11 ones: padding spills into a whole extra octet.
        assert_eq!(dec(&[0b0001_1111, 0xff]), Err(DecoderError::InvalidPadding));
        // A lone all-ones octet is 8 bits of padding and no symbol.
        assert_eq!(dec(&[0xff]), Err(DecoderError::InvalidPadding));
        assert_eq!(dec(&[0xff, 0xff]), Err(DecoderError::InvalidPadding));
    }

    #[test]
    fn padding_not_all_ones_is_rejected() {
        // 'a' then padding 110.
        assert_eq!(dec(&[0b0001_1110]), Err(DecoderError::InvalidPadding));
        // 'a' then padding 000: that is the start of another 5-bit code.
        assert_eq!(dec(&[0b0001_1000]), Err(DecoderError::InvalidPadding));
    }

    #[test]
    fn eos_in_string_is_rejected() {
        // EOS: 30 ones, then 2 bits of padding.
        assert_eq!(
            dec(&[0xff, 0xff, 0xff, 0xff]),
            Err(DecoderError::EosInString)
        );
        // 'a' (00011) then EOS (30 ones), then padding: 35 bits + 5 ones.
        assert_eq!(
            dec(&[0b0001_1111, 0xff, 0xff, 0xff, 0xff]),
            Err(DecoderError::EosInString)
        );
    }

    #[test]
    fn longest_codes_decode() {
        // Symbols with 30-bit codes next to EOS.
        for b in [10u8, 13, 22] {
            assert_eq!(dec(&enc(&[b, b'x', b])).unwrap(), [b, b'x', b]);
        }
    }

    #[test]
    fn lengths() {
        assert_eq!(encoded_len(b""), 0);
        assert_eq!(encoded_len(b"a"), 1);
        assert_eq!(encoded_len(b"www.example.com"), 12);
        assert_eq!(encoded_len(&[0]), 2);
        assert_eq!(encoded_len(&[10]), 4);
    }
}
