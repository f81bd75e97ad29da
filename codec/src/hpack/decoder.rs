//! Header block decoding (RFC 7541 §3, §6).

use std::fmt;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::table::{self, DynamicTable, DYNAMIC_BASE, STATIC_BYTES};
use super::{huffman, integer, FieldRef, Header};

/// Size of the chunks decoded strings are carved from. Large enough that a
/// typical request's Huffman-coded fields share one allocation, small enough
/// that a chunk pinned by one long-lived table entry wastes little.
const ARENA_CHUNK: usize = 4096;

/// Size of a connection's first chunk. A connection that sends one request and
/// then sits idle (most of a server's connections, at scale) keeps only this
/// much; the chunks after it are full size.
const FIRST_ARENA_CHUNK: usize = 512;

/// Every way a header block can be malformed. In HTTP/2 each is a connection
/// error of type COMPRESSION_ERROR (RFC 9113 §4.3): the decoder's dynamic
/// table can no longer be trusted to match the peer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecoderError {
    /// The block ends inside a representation (an integer or a string).
    NeedMore,
    /// An integer exceeds 2^32 - 1 or uses more than five continuation octets.
    IntegerOverflow,
    /// An index is zero or beyond the static and dynamic tables (§2.3.3).
    InvalidTableIndex,
    /// A Huffman-coded string ends with more than seven bits of padding, or
    /// with padding that is not the all-ones EOS prefix (§5.2).
    InvalidPadding,
    /// A Huffman-coded string contains the EOS symbol (§5.2).
    EosInString,
    /// A dynamic table size update exceeds the SETTINGS_HEADER_TABLE_SIZE we
    /// advertised (§6.3).
    TableSizeUpdateTooLarge,
    /// A dynamic table size update follows a header field representation;
    /// updates may only open a block (§4.2).
    TableSizeUpdateNotAtStart,
    /// The first block after we lowered SETTINGS_HEADER_TABLE_SIZE below the
    /// table's current size did not open with an update shrinking it at least
    /// that far (§4.2), so the peer may still be using a table we cannot keep.
    MissingTableSizeUpdate,
}

impl fmt::Display for DecoderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecoderError::NeedMore => "header block truncated",
            DecoderError::IntegerOverflow => "integer overflow in header block",
            DecoderError::InvalidTableIndex => "invalid header table index",
            DecoderError::InvalidPadding => "invalid Huffman padding",
            DecoderError::EosInString => "EOS symbol in Huffman-coded string",
            DecoderError::TableSizeUpdateTooLarge => {
                "dynamic table size update above SETTINGS_HEADER_TABLE_SIZE"
            }
            DecoderError::TableSizeUpdateNotAtStart => {
                "dynamic table size update after a header field"
            }
            DecoderError::MissingTableSizeUpdate => "missing required dynamic table size update",
        })
    }
}

impl std::error::Error for DecoderError {}

/// An HPACK decoder: the decoding context of one HTTP/2 connection direction.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// The SETTINGS_HEADER_TABLE_SIZE in force; size updates may not exceed it.
    max_size: usize,
    /// After our setting dropped below the table's capacity: the size the peer
    /// must shrink the table to (at least) at the start of its next block.
    required_update: Option<usize>,
    /// Where decoded and table-bound strings are copied, so that they share
    /// allocations instead of costing one each.
    arena: BytesMut,
    /// Whether the arena has had its (small) first chunk.
    arena_used: bool,
    /// The last short Huffman literal and what it decoded to.
    last_huffman: HuffmanMemo,
}

/// Clients that never index a header repeat the same encoded octets on every
/// request: h2 and h2load send `:path` as a literal without indexing. Remembering
/// the last short Huffman literal turns the repeat into a compare and a
/// reference count instead of a decode.
#[derive(Debug)]
struct HuffmanMemo {
    encoded: [u8; HuffmanMemo::MAX],
    len: usize,
    decoded: Bytes,
}

impl HuffmanMemo {
    /// Longest encoded literal remembered; paths and typical values fit.
    const MAX: usize = 64;

    fn new() -> HuffmanMemo {
        HuffmanMemo {
            encoded: [0; HuffmanMemo::MAX],
            len: usize::MAX,
            decoded: Bytes::new(),
        }
    }

    fn get(&self, encoded: &[u8]) -> Option<Bytes> {
        (encoded.len() == self.len && &self.encoded[..self.len] == encoded)
            .then(|| self.decoded.clone())
    }

    fn remember(&mut self, encoded: &[u8], decoded: &Bytes) {
        if encoded.len() <= HuffmanMemo::MAX {
            self.encoded[..encoded.len()].copy_from_slice(encoded);
            self.len = encoded.len();
            self.decoded = decoded.clone();
        }
    }
}

/// Where a literal's name comes from.
enum Name {
    /// A static or dynamic table entry's name: already a cheap handle.
    Indexed(Bytes),
    /// A string literal in the block.
    Literal(StringRef),
}

/// A string literal's position in the block.
struct StringRef {
    huffman: bool,
    range: Range<usize>,
}

impl Decoder {
    /// Creates a decoder whose table may grow to `max_table_size` octets.
    ///
    /// `max_table_size`: the SETTINGS_HEADER_TABLE_SIZE we advertise, which is
    /// also the table size the peer's encoder starts with; size updates above
    /// it are errors. At the start of a connection, before our SETTINGS frame
    /// is acknowledged, that is [`DEFAULT_TABLE_SIZE`](super::DEFAULT_TABLE_SIZE)
    /// whatever we are about to advertise: pass that, then call
    /// [`set_max_table_size`](Decoder::set_max_table_size) on the acknowledgement.
    pub fn new(max_table_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(max_table_size),
            max_size: max_table_size,
            required_update: None,
            arena: BytesMut::new(),
            arena_used: false,
            last_huffman: HuffmanMemo::new(),
        }
    }

    /// Called when a new (acknowledged) SETTINGS_HEADER_TABLE_SIZE of ours
    /// takes effect.
    ///
    /// The table is not shrunk here: the peer's encoder does that with a size
    /// update at the start of its next block, which becomes mandatory if the
    /// new limit is below the table's current maximum size.
    pub fn set_max_table_size(&mut self, size: usize) {
        self.max_size = size;
        if size < self.table.capacity() {
            let required = self.required_update.map_or(size, |r| r.min(size));
            self.required_update = Some(required);
        }
    }

    /// Current dynamic table size in octets (RFC 7541 §4.1 accounting: name +
    /// value + 32 per entry).
    pub fn table_size(&self) -> usize {
        self.table.size()
    }

    /// Decodes one complete header block (all HEADERS + CONTINUATION
    /// fragments joined), calling `f` for each field in order.
    ///
    /// `f` cannot fail because the whole block must be decoded whatever the
    /// caller thinks of its fields, or the dynamic table would fall out of
    /// step with the peer's encoder. A caller that rejects a field (too many,
    /// too large, malformed) should note it and act after this returns.
    ///
    /// On error the decoder must not be used again: the connection is to be
    /// closed with COMPRESSION_ERROR.
    pub fn decode(&mut self, block: &Bytes, mut f: impl FnMut(Header)) -> Result<(), DecoderError> {
        self.decode_fields(block, |field| {
            f(Header {
                name: field.name.clone(),
                value: field.value.clone(),
                sensitive: field.sensitive,
            })
        })
    }

    /// Like [`Decoder::decode`], lending each field instead of handing it over:
    /// indexed fields cost no reference count unless the caller keeps them. This
    /// is the request path's decoder.
    pub fn decode_fields(
        &mut self,
        block: &Bytes,
        mut f: impl FnMut(FieldRef<'_>),
    ) -> Result<(), DecoderError> {
        let buf: &[u8] = block;
        let mut pos = 0;
        let mut at_start = true;
        while let Some(&first) = buf.get(pos) {
            if first & 0xe0 == 0x20 {
                // 001xxxxx: dynamic table size update (§6.3).
                if !at_start {
                    return Err(DecoderError::TableSizeUpdateNotAtStart);
                }
                let (size, n) = integer::decode(&buf[pos..], 5)?;
                pos += n;
                if size > self.max_size {
                    return Err(DecoderError::TableSizeUpdateTooLarge);
                }
                self.table.set_capacity(size);
                if self.required_update.is_some_and(|r| size <= r) {
                    self.required_update = None;
                }
                continue;
            }
            if at_start {
                at_start = false;
                if self.required_update.is_some() {
                    return Err(DecoderError::MissingTableSizeUpdate);
                }
            }
            if first & 0x80 != 0 {
                // 1xxxxxxx: indexed header field (§6.1).
                let (index, n) = integer::decode(&buf[pos..], 7)?;
                pos += n;
                let (name, value, valid) = self.entry(index)?;
                f(FieldRef {
                    name,
                    value,
                    sensitive: false,
                    known_valid: valid,
                });
            } else if first & 0x40 != 0 {
                // 01xxxxxx: literal with incremental indexing (§6.2.1).
                let (name, value, end) = self.literal(block, pos, 6, true)?;
                pos = end;
                // Judged once here, so that every later reference to the entry
                // comes with its verdict.
                let valid = crate::field::is_valid(&name, &value);
                f(FieldRef {
                    name: &name,
                    value: &value,
                    sensitive: false,
                    known_valid: valid,
                });
                self.table.insert_checked(name, value, valid);
            } else {
                // 0000xxxx without indexing (§6.2.2), 0001xxxx never indexed (§6.2.3).
                let sensitive = first & 0x10 != 0;
                let (name, value, end) = self.literal(block, pos, 4, false)?;
                pos = end;
                f(FieldRef {
                    name: &name,
                    value: &value,
                    sensitive,
                    known_valid: false,
                });
            }
        }
        Ok(())
    }

    /// The name and value at wire index `index`.
    /// The static table holds only valid fields.
    #[inline]
    fn entry(&self, index: usize) -> Result<(&Bytes, &Bytes, bool), DecoderError> {
        let entry = match index {
            0 => None,
            i if i < DYNAMIC_BASE => STATIC_BYTES
                .get(i - 1)
                .map(|(name, value)| (name, value, true)),
            i => self.table.get_checked(i - DYNAMIC_BASE),
        };
        entry.ok_or(DecoderError::InvalidTableIndex)
    }

    /// Decodes a literal representation starting at `pos`, whose name index
    /// has a `prefix_bits`-bit prefix. Returns the name, the value and the
    /// position after the representation.
    fn literal(
        &mut self,
        block: &Bytes,
        pos: usize,
        prefix_bits: u8,
        indexing: bool,
    ) -> Result<(Bytes, Bytes, usize), DecoderError> {
        let (index, n) = integer::decode(&block[pos..], prefix_bits)?;
        let mut pos = pos + n;
        let name = if index == 0 {
            let s = read_string(block, pos)?;
            pos = s.range.end;
            Name::Literal(s)
        } else {
            Name::Indexed(self.entry(index)?.0.clone())
        };
        let value = read_string(block, pos)?;
        pos = value.range.end;

        // Entries going into the table must own their octets: a slice would pin
        // the caller's whole read buffer for as long as the entry lives. Encoded
        // lengths are lower bounds of decoded ones, so an entry that looks too big
        // here is certain to be dropped by `insert` and need not be copied.
        let copy = indexing && {
            let name_len = match &name {
                Name::Indexed(b) => b.len(),
                Name::Literal(s) => s.range.len(),
            };
            table::entry_size(name_len, value.range.len()) <= self.table.capacity()
        };
        let name = match name {
            Name::Indexed(b) => b,
            Name::Literal(s) => self.string(block, s, copy)?,
        };
        let value = self.string(block, value, copy)?;
        Ok((name, value, pos))
    }

    /// Materialises a string literal: Huffman-decoded or copied into the arena,
    /// or, when neither is needed, a zero-copy slice of the block.
    fn string(&mut self, block: &Bytes, s: StringRef, copy: bool) -> Result<Bytes, DecoderError> {
        let src = &block[s.range.clone()];
        if s.huffman {
            if let Some(decoded) = self.last_huffman.get(src) {
                return Ok(decoded);
            }
            let decoded = self.store(src.len() * 8 / 5, |dst| huffman::decode(src, dst))?;
            self.last_huffman.remember(src, &decoded);
            Ok(decoded)
        } else if copy {
            self.store(src.len(), |dst| {
                dst.extend_from_slice(src);
                Ok(())
            })
        } else {
            Ok(block.slice(s.range))
        }
    }

    /// Runs `fill` to write at most `max_len` octets and returns them as
    /// `Bytes`, carved from the arena when they fit in a chunk.
    fn store(
        &mut self,
        max_len: usize,
        fill: impl FnOnce(&mut BytesMut) -> Result<(), DecoderError>,
    ) -> Result<Bytes, DecoderError> {
        if max_len > ARENA_CHUNK {
            // Too big to share a chunk; giving it its own allocation keeps the
            // current chunk's free space for the small strings that follow.
            let mut own = BytesMut::with_capacity(max_len);
            fill(&mut own)?;
            return Ok(own.freeze());
        }
        // Everything written is split off at once, so `capacity` is the free room.
        if self.arena.capacity() < max_len {
            let chunk = if self.arena_used {
                ARENA_CHUNK
            } else {
                self.arena_used = true;
                FIRST_ARENA_CHUNK.max(max_len)
            };
            self.arena = BytesMut::with_capacity(chunk);
        }
        match fill(&mut self.arena) {
            Ok(()) => Ok(self.arena.split().freeze()),
            Err(e) => {
                self.arena.clear();
                Err(e)
            }
        }
    }
}

/// Parses a string literal's header (§5.2) at `pos` and checks that its
/// octets are all in the block.
fn read_string(block: &[u8], pos: usize) -> Result<StringRef, DecoderError> {
    let first = *block.get(pos).ok_or(DecoderError::NeedMore)?;
    let (len, n) = integer::decode(&block[pos..], 7)?;
    let start = pos + n;
    if len > block.len() - start {
        return Err(DecoderError::NeedMore);
    }
    Ok(StringRef {
        huffman: first & 0x80 != 0,
        range: start..start + len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpack::table::STATIC_TABLE;

    fn decode_all(decoder: &mut Decoder, block: &[u8]) -> Result<Vec<Header>, DecoderError> {
        let mut out = Vec::new();
        decoder
            .decode(&Bytes::copy_from_slice(block), |h| out.push(h))
            .map(|()| out)
    }

    fn field(name: &str, value: &str) -> Header {
        Header {
            name: Bytes::copy_from_slice(name.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
            sensitive: false,
        }
    }

    #[test]
    fn indexed_static_is_static() {
        let mut d = Decoder::new(4096);
        let h = decode_all(&mut d, &[0x82]).unwrap();
        assert_eq!(h, [field(":method", "GET")]);
        // A `from_static` handle points into the binary's static table.
        assert_eq!(h[0].name.as_ptr(), STATIC_TABLE[1].0.as_ptr());
    }

    #[test]
    fn invalid_indices() {
        let mut d = Decoder::new(4096);
        assert_eq!(
            decode_all(&mut d, &[0x80]),
            Err(DecoderError::InvalidTableIndex)
        );
        assert_eq!(
            decode_all(&mut d, &[0xbe]),
            Err(DecoderError::InvalidTableIndex)
        );
        // Literal with a name index past the tables.
        assert_eq!(
            decode_all(&mut d, &[0x7f, 0x00, 0x01, b'x']),
            Err(DecoderError::InvalidTableIndex)
        );
        // Index 61 is the last static entry.
        assert_eq!(
            decode_all(&mut d, &[0xbd]).unwrap(),
            [field("www-authenticate", "")]
        );
    }

    #[test]
    fn literal_without_indexing_is_a_slice_of_the_block() {
        let mut d = Decoder::new(4096);
        let block = Bytes::from_static(b"\x00\x03abc\x02de");
        let mut out = Vec::new();
        d.decode(&block, |h| out.push(h)).unwrap();
        assert_eq!(out, [field("abc", "de")]);
        assert_eq!(out[0].name.as_ptr(), block[2..].as_ptr());
        assert_eq!(out[0].value.as_ptr(), block[6..].as_ptr());
        assert_eq!(d.table_size(), 0);
    }

    #[test]
    fn indexed_literal_is_copied_and_shares_the_arena() {
        let mut d = Decoder::new(4096);
        let block = Bytes::from_static(b"\x40\x03abc\x02de\x40\x03fgh\x02ij");
        let mut out = Vec::new();
        d.decode(&block, |h| out.push(h)).unwrap();
        assert_eq!(out, [field("abc", "de"), field("fgh", "ij")]);
        let block_range = block.as_ptr_range();
        for h in &out {
            assert!(!block_range.contains(&h.name.as_ptr()));
            assert!(!block_range.contains(&h.value.as_ptr()));
        }
        // Consecutive strings come from one chunk.
        assert_eq!(out[0].value.as_ptr(), out[0].name.as_ptr().wrapping_add(3));
        assert_eq!(out[1].name.as_ptr(), out[0].value.as_ptr().wrapping_add(2));
        assert_eq!(d.table_size(), 2 * (3 + 2 + 32));
        // Indexed references hand out the table's own handles.
        let again = decode_all(&mut d, &[0xbe, 0xbf]).unwrap();
        assert_eq!(again, [field("fgh", "ij"), field("abc", "de")]);
        assert_eq!(again[0].value.as_ptr(), out[1].value.as_ptr());
    }

    #[test]
    fn never_indexed_is_sensitive() {
        let mut d = Decoder::new(4096);
        let h = decode_all(&mut d, b"\x10\x08password\x06secret").unwrap();
        assert_eq!(h.len(), 1);
        assert!(h[0].sensitive);
        assert_eq!(d.table_size(), 0);
        // With an indexed name (:authority).
        let h = decode_all(&mut d, b"\x11\x01x").unwrap();
        assert_eq!(h[0].name, ":authority");
        assert!(h[0].sensitive);
    }

    #[test]
    fn huffman_strings() {
        let mut d = Decoder::new(4096);
        // Literal without indexing, new name "a" Huffman-coded (0x1f), value
        // "www.example.com" Huffman-coded.
        let mut block = vec![0x00, 0x81, 0x1f, 0x8c];
        block.extend_from_slice(&[
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ]);
        assert_eq!(
            decode_all(&mut d, &block).unwrap(),
            [field("a", "www.example.com")]
        );
        assert_eq!(
            decode_all(&mut d, &[0x00, 0x81, 0x1e, 0x00]),
            Err(DecoderError::InvalidPadding)
        );
        assert_eq!(
            decode_all(&mut d, &[0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00]),
            Err(DecoderError::EosInString)
        );
    }

    #[test]
    fn truncated_blocks() {
        let block = b"\x40\x03abc\x02de";
        for len in 1..block.len() {
            let mut d = Decoder::new(4096);
            assert_eq!(
                decode_all(&mut d, &block[..len]),
                Err(DecoderError::NeedMore),
                "{len}"
            );
        }
        let mut d = Decoder::new(4096);
        // String length far past the end of the block.
        assert_eq!(
            decode_all(&mut d, &[0x00, 0x7f, 0xff, 0xff, 0xff, 0x07]),
            Err(DecoderError::NeedMore)
        );
        assert_eq!(decode_all(&mut d, &[0xff]), Err(DecoderError::NeedMore));
        assert_eq!(
            decode_all(&mut d, &[0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(DecoderError::IntegerOverflow)
        );
    }

    #[test]
    fn large_strings_get_their_own_buffer() {
        let mut d = Decoder::new(100_000);
        let value = vec![b'v'; 10_000];
        let mut block = vec![0x40, 0x01, b'k', 0x7f];
        let mut len = BytesMut::new();
        integer::encode(value.len(), 7, 0, &mut len);
        block.truncate(3);
        block.extend_from_slice(&len);
        block.extend_from_slice(&value);
        let h = decode_all(&mut d, &block).unwrap();
        assert_eq!(h[0].value, value);
        assert_eq!(d.table_size(), 1 + 10_000 + 32);
    }

    #[test]
    fn oversized_indexed_literal_empties_table() {
        let mut d = Decoder::new(64);
        decode_all(&mut d, b"\x40\x01a\x01b").unwrap();
        assert_eq!(d.table_size(), 34);
        let h = decode_all(&mut d, b"\x40\x01c\x20xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx").unwrap();
        assert_eq!(h[0].value.len(), 32);
        assert_eq!(d.table_size(), 0);
        assert_eq!(
            decode_all(&mut d, &[0xbe]),
            Err(DecoderError::InvalidTableIndex)
        );
    }

    #[test]
    fn size_update_must_open_the_block() {
        let mut d = Decoder::new(4096);
        assert_eq!(
            decode_all(&mut d, &[0x82, 0x20]),
            Err(DecoderError::TableSizeUpdateNotAtStart)
        );
        let mut d = Decoder::new(4096);
        // Two (or more) in a row at the start are fine.
        assert_eq!(
            decode_all(&mut d, &[0x20, 0x3f, 0xe1, 0x1f, 0x82])
                .unwrap()
                .len(),
            1
        );
        // A block of nothing but an update is fine too.
        assert!(decode_all(&mut d, &[0x3f, 0xe1, 0x1f]).unwrap().is_empty());
    }

    #[test]
    fn size_update_above_setting_is_rejected() {
        let mut d = Decoder::new(256);
        assert_eq!(
            decode_all(&mut d, &[0x3f, 0xe2, 0x01]),
            Err(DecoderError::TableSizeUpdateTooLarge)
        );
        let mut d = Decoder::new(256);
        assert!(decode_all(&mut d, &[0x3f, 0xe1, 0x01]).is_ok());
    }

    #[test]
    fn size_update_evicts() {
        let mut d = Decoder::new(4096);
        decode_all(&mut d, b"\x40\x01a\x01b\x40\x01c\x01d").unwrap();
        assert_eq!(d.table_size(), 68);
        // Shrink to 40: only the newest entry (c: d) survives.
        decode_all(&mut d, &[0x3f, 0x09]).unwrap();
        assert_eq!(d.table_size(), 34);
        assert_eq!(decode_all(&mut d, &[0xbe]).unwrap(), [field("c", "d")]);
        // Zero empties it.
        decode_all(&mut d, &[0x20]).unwrap();
        assert_eq!(d.table_size(), 0);
    }

    #[test]
    fn lowered_setting_requires_an_update() {
        let mut d = Decoder::new(4096);
        decode_all(&mut d, b"\x40\x01a\x01b").unwrap();
        d.set_max_table_size(100);
        // The peer keeps using its old table size: an error.
        assert_eq!(
            decode_all(&mut d, &[0x82]),
            Err(DecoderError::MissingTableSizeUpdate)
        );

        // An update to at most the new setting satisfies it (31 + 69 = 100).
        let mut d = Decoder::new(4096);
        d.set_max_table_size(100);
        assert_eq!(decode_all(&mut d, &[0x3f, 0x45, 0x82]).unwrap().len(), 1);
        assert_eq!(decode_all(&mut d, &[0x82]).unwrap().len(), 1);

        // Lowered then raised again between blocks: the peer must still signal
        // the low point before the final size (§4.2).
        let mut d = Decoder::new(4096);
        d.set_max_table_size(100);
        d.set_max_table_size(4096);
        assert_eq!(
            decode_all(&mut d, &[0x3f, 0xe1, 0x1f, 0x82]),
            Err(DecoderError::MissingTableSizeUpdate)
        );
        let mut d = Decoder::new(4096);
        d.set_max_table_size(100);
        d.set_max_table_size(4096);
        assert_eq!(
            decode_all(&mut d, &[0x3f, 0x45, 0x3f, 0xe1, 0x1f, 0x82])
                .unwrap()
                .len(),
            1
        );

        // A raised setting needs no update.
        let mut d = Decoder::new(4096);
        d.set_max_table_size(8192);
        assert_eq!(decode_all(&mut d, &[0x82]).unwrap().len(), 1);
        // And then allows growing past the old size.
        assert!(decode_all(&mut d, &[0x3f, 0xe1, 0x3f]).is_ok());

        // An empty block does not discharge the obligation.
        let mut d = Decoder::new(4096);
        d.set_max_table_size(0);
        assert!(decode_all(&mut d, &[]).unwrap().is_empty());
        assert_eq!(
            decode_all(&mut d, &[0x82]),
            Err(DecoderError::MissingTableSizeUpdate)
        );
    }

    #[test]
    fn repeated_huffman_literal_is_decoded_once_and_shared() {
        // A literal without indexing, name index 4 (:path), Huffman value, sent twice
        // in one block as h2 clients do on every request.
        let mut block = BytesMut::new();
        for _ in 0..2 {
            block.extend_from_slice(&[0x04]);
            let mut value = BytesMut::new();
            huffman::encode(b"/helloworld.Greeter/SayHello", &mut value);
            crate::hpack::integer::encode(value.len(), 7, 0x80, &mut block);
            block.extend_from_slice(&value);
        }
        let fields = decode_all(&mut Decoder::new(4096), &block).unwrap();
        assert_eq!(&fields[0].value[..], b"/helloworld.Greeter/SayHello");
        assert_eq!(fields[0].value, fields[1].value);
        assert_eq!(
            fields[0].value.as_ptr(),
            fields[1].value.as_ptr(),
            "the second is the remembered one"
        );
        // A different literal of the same length is decoded, not confused with it.
        let mut other = BytesMut::new();
        other.extend_from_slice(&[0x04]);
        let mut value = BytesMut::new();
        huffman::encode(b"/helloworld.Greeter/SayHellp", &mut value);
        crate::hpack::integer::encode(value.len(), 7, 0x80, &mut other);
        other.extend_from_slice(&value);
        let mut decoder = Decoder::new(4096);
        decode_all(&mut decoder, &block).unwrap();
        let fields = decode_all(&mut decoder, &other).unwrap();
        assert_eq!(&fields[0].value[..], b"/helloworld.Greeter/SayHellp");
    }
}
