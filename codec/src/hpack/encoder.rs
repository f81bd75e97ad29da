//! Header block encoding (RFC 7541 §6).

use bytes::{Bytes, BytesMut};

use super::table::{self, DynamicTable, DYNAMIC_BASE};
use super::{huffman, integer, DEFAULT_TABLE_SIZE};

/// The most dynamic table memory the encoder will use, however much the peer
/// allows: a server's repeated response metadata fits easily, and more would
/// only grow the per-connection footprint.
const ENCODER_MAX_TABLE_SIZE: usize = DEFAULT_TABLE_SIZE;

/// How a field that is not found whole in a table is represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indexing {
    /// Literal with incremental indexing (§6.2.1): the field is added to the
    /// dynamic table so that repeats cost one octet. For metadata sent again
    /// and again on a connection.
    Incremental,
    /// Literal without indexing (§6.2.2): for values unlikely to repeat, which
    /// would only evict useful entries.
    No,
    /// Literal never indexed (§6.2.3): for sensitive values. Besides staying out
    /// of the table, it tells intermediaries to keep them out of theirs, and it
    /// is used even when the field is in a table, to keep the flag end to end.
    Never,
}

/// An HPACK encoder: the encoding context of one HTTP/2 connection direction.
#[derive(Debug)]
pub struct Encoder {
    table: DynamicTable,
    /// Size updates owed at the start of the next block, as (smallest size
    /// since the last block, final size): §4.2 requires both when the limit
    /// went down and back up, so the decoder evicts what we evicted.
    pending_update: Option<(usize, usize)>,
    huffman: bool,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::new()
    }
}

impl Encoder {
    /// Creates an encoder with the protocol's initial table size of 4096.
    pub fn new() -> Encoder {
        Encoder {
            table: DynamicTable::new(DEFAULT_TABLE_SIZE.min(ENCODER_MAX_TABLE_SIZE)),
            pending_update: None,
            huffman: true,
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE changed: the encoder adopts
    /// min(`size`, 4096) and emits a dynamic table size update at the start of
    /// the next block.
    pub fn update_max_size(&mut self, size: usize) {
        let size = size.min(ENCODER_MAX_TABLE_SIZE);
        self.pending_update = match self.pending_update {
            Some((smallest, _)) => Some((smallest.min(size), size)),
            // Nothing to tell the decoder if our table size does not change.
            None if size == self.table.capacity() => None,
            None => Some((size, size)),
        };
    }

    /// Must be called at the start of every header block: writes any pending
    /// table size update.
    pub fn begin_block(&mut self, dst: &mut BytesMut) {
        if let Some((smallest, last)) = self.pending_update.take() {
            // The table only changes size here, in step with the decoder, which
            // applies the updates when it reads them.
            if smallest < last {
                integer::encode(smallest, 5, 0x20, dst);
                self.table.set_capacity(smallest);
            }
            integer::encode(last, 5, 0x20, dst);
            self.table.set_capacity(last);
        }
    }

    /// Chooses whether string literals are Huffman-coded when that is shorter
    /// (the default) or always sent raw. Raw strings are only useful to make
    /// blocks readable in captures and to reproduce reference vectors.
    pub fn set_huffman(&mut self, enabled: bool) {
        self.huffman = enabled;
    }

    /// Current dynamic table size in octets (§4.1 accounting), which the
    /// peer's decoder mirrors.
    pub fn table_size(&self) -> usize {
        self.table.size()
    }

    /// Encodes one field.
    ///
    /// Uses a full static-table match (indexed), else a dynamic-table full
    /// match (indexed), else a literal whose name is indexed when possible, in
    /// the representation `indexing` asks for. [`Indexing::Never`] skips the
    /// full matches so the field keeps its never-indexed flag. An
    /// [`Indexing::Incremental`] field too large for the table is sent without
    /// indexing, since inserting it would only empty the table.
    pub fn encode_field(
        &mut self,
        name: &[u8],
        value: &[u8],
        indexing: Indexing,
        dst: &mut BytesMut,
    ) {
        let static_name = table::static_name_index(name);
        let mut name_index = static_name;
        let mut dynamic_name = None;
        if indexing != Indexing::Never {
            if let Some(index) =
                static_name.and_then(|first| table::static_full_index(first, name, value))
            {
                integer::encode(index, 7, 0x80, dst);
                return;
            }
        }
        if indexing != Indexing::Never || name_index.is_none() {
            for (i, (n, v)) in self.table.iter().enumerate() {
                if n != name {
                    continue;
                }
                if v == value && indexing != Indexing::Never {
                    integer::encode(DYNAMIC_BASE + i, 7, 0x80, dst);
                    return;
                }
                if dynamic_name.is_none() {
                    dynamic_name = Some(i);
                }
            }
        }
        if name_index.is_none() {
            name_index = dynamic_name.map(|i| DYNAMIC_BASE + i);
        }

        let indexing = match indexing {
            Indexing::Incremental
                if table::entry_size(name.len(), value.len()) > self.table.capacity() =>
            {
                Indexing::No
            }
            other => other,
        };
        let (prefix_bits, flags) = match indexing {
            Indexing::Incremental => (6, 0x40),
            Indexing::No => (4, 0x00),
            Indexing::Never => (4, 0x10),
        };
        integer::encode(name_index.unwrap_or(0), prefix_bits, flags, dst);
        if name_index.is_none() {
            self.write_string(name, dst);
        }
        self.write_string(value, dst);

        if indexing == Indexing::Incremental {
            self.insert(name, value, static_name, dynamic_name);
        }
    }

    /// Adds a field to the table, sharing the name with a table entry when one
    /// has it, else copying name and value into one allocation.
    fn insert(
        &mut self,
        name: &[u8],
        value: &[u8],
        static_name: Option<usize>,
        dynamic_name: Option<usize>,
    ) {
        let shared_name = match (static_name, dynamic_name) {
            (Some(index), _) => Some(Bytes::from_static(table::STATIC_TABLE[index - 1].0)),
            (None, Some(i)) => self.table.get(i).map(|(n, _)| n.clone()),
            (None, None) => None,
        };
        let (name, value) = match shared_name {
            Some(name) => (name, Bytes::copy_from_slice(value)),
            None => {
                let mut both = BytesMut::with_capacity(name.len() + value.len());
                both.extend_from_slice(name);
                both.extend_from_slice(value);
                let mut value = both.freeze();
                let name = value.split_to(name.len());
                (name, value)
            }
        };
        self.table.insert(name, value);
    }

    fn write_string(&self, s: &[u8], dst: &mut BytesMut) {
        if self.huffman {
            let len = huffman::encoded_len(s);
            if len < s.len() {
                integer::encode(len, 7, 0x80, dst);
                huffman::encode(s, dst);
                return;
            }
        }
        integer::encode(s.len(), 7, 0, dst);
        dst.extend_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Decoder, Header};
    use super::*;

    fn encode(e: &mut Encoder, fields: &[(&str, &str, Indexing)]) -> BytesMut {
        let mut dst = BytesMut::new();
        e.begin_block(&mut dst);
        for (n, v, i) in fields {
            e.encode_field(n.as_bytes(), v.as_bytes(), *i, &mut dst);
        }
        dst
    }

    fn decode(d: &mut Decoder, block: BytesMut) -> Vec<Header> {
        let mut out = Vec::new();
        d.decode(&block.freeze(), |h| out.push(h)).unwrap();
        out
    }

    #[test]
    fn static_full_match_is_indexed() {
        let mut e = Encoder::new();
        let block = encode(
            &mut e,
            &[
                (":status", "200", Indexing::No),
                (":method", "POST", Indexing::Incremental),
            ],
        );
        assert_eq!(&block[..], [0x88, 0x83]);
        assert_eq!(e.table_size(), 0);
    }

    #[test]
    fn incremental_then_indexed() {
        let mut e = Encoder::new();
        let first = encode(&mut e, &[("grpc-encoding", "gzip", Indexing::Incremental)]);
        assert_eq!(first[0], 0x40);
        assert_eq!(e.table_size(), 13 + 4 + 32);
        let second = encode(&mut e, &[("grpc-encoding", "gzip", Indexing::No)]);
        assert_eq!(&second[..], [0xbe]);
        // Same name, new value: the name is taken from the dynamic table.
        let third = encode(&mut e, &[("grpc-encoding", "identity", Indexing::No)]);
        assert_eq!(third[0], 0x0f);
        assert_eq!(third[1], 62 - 15);
    }

    #[test]
    fn never_indexed_skips_full_matches() {
        let mut e = Encoder::new();
        let mut d = Decoder::new(4096);
        let block = encode(&mut e, &[(":method", "GET", Indexing::Never)]);
        // Never indexed, name index 2.
        assert_eq!(&block[..2], [0x12, 0x03]);
        let h = decode(&mut d, block);
        assert!(h[0].sensitive);
        assert_eq!(h[0].value, "GET");
        encode(&mut e, &[("x-token", "abc", Indexing::Incremental)]);
        let block = encode(&mut e, &[("x-token", "abc", Indexing::Never)]);
        assert_eq!(block[0], 0x1f);
    }

    #[test]
    fn oversized_incremental_falls_back_to_no_indexing() {
        let mut e = Encoder::new();
        e.update_max_size(64);
        let long = "x".repeat(40);
        let block = encode(&mut e, &[("grpc-message", &long, Indexing::Incremental)]);
        // Size update to 64 (0x3f 0x21), then a literal without indexing.
        assert_eq!(&block[..3], [0x3f, 0x21, 0x00]);
        assert_eq!(e.table_size(), 0);
    }

    #[test]
    fn size_updates() {
        let mut e = Encoder::new();
        let mut dst = BytesMut::new();
        // Unchanged (or raised past our cap): nothing to send.
        e.update_max_size(4096);
        e.update_max_size(65536);
        e.begin_block(&mut dst);
        assert!(dst.is_empty());

        e.update_max_size(0);
        e.begin_block(&mut dst);
        assert_eq!(&dst[..], [0x20]);
        dst.clear();
        // Only once.
        e.begin_block(&mut dst);
        assert!(dst.is_empty());

        // Shrunk, then grown again: smallest, then final.
        e.update_max_size(4096);
        e.update_max_size(100);
        e.update_max_size(200);
        e.begin_block(&mut dst);
        let mut expected = BytesMut::new();
        integer::encode(100, 5, 0x20, &mut expected);
        integer::encode(200, 5, 0x20, &mut expected);
        assert_eq!(dst, expected);
    }

    #[test]
    fn shrinking_evicts_in_step_with_the_decoder() {
        let mut e = Encoder::new();
        let mut d = Decoder::new(4096);
        let fields = [
            ("a", "1", Indexing::Incremental),
            ("b", "2", Indexing::Incremental),
        ];
        decode(&mut d, encode(&mut e, &fields));
        assert_eq!(e.table_size(), 68);
        e.update_max_size(40);
        d.set_max_table_size(40);
        e.update_max_size(4096);
        d.set_max_table_size(4096);
        let h = decode(
            &mut d,
            encode(
                &mut e,
                &[("b", "2", Indexing::No), ("a", "1", Indexing::No)],
            ),
        );
        assert_eq!(e.table_size(), 34);
        assert_eq!(d.table_size(), 34);
        assert_eq!((&h[0].name[..], &h[1].name[..]), (&b"b"[..], &b"a"[..]));
    }

    #[test]
    fn huffman_only_when_shorter() {
        let mut e = Encoder::new();
        // "307" Huffman-codes to 3 octets, no gain: sent raw.
        let block = encode(&mut e, &[(":status", "307", Indexing::No)]);
        assert_eq!(&block[..], [0x08, 0x03, b'3', b'0', b'7']);
        e.set_huffman(false);
        let block = encode(&mut e, &[("x", "www.example.com", Indexing::No)]);
        assert_eq!(block[3], 15);
    }
}
