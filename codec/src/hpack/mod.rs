//! HPACK header compression (RFC 7541).
//!
//! [`Decoder`] turns the header blocks a peer sends into [`Header`]s, and
//! [`Encoder`] writes ours. Each keeps the dynamic table of one direction of
//! one connection, so both must see every block of that direction, in order.
//!
//! Decoding is built for the request path of a server: indexed fields cost a
//! reference count, literals that stay out of the table are zero-copy slices
//! of the block, and strings that must be copied (Huffman-decoded or inserted
//! into the table) are carved from shared chunks rather than allocated one by
//! one.

mod decoder;
mod encoder;
pub mod huffman;
pub mod integer;
pub(crate) mod table;

use bytes::Bytes;

pub use decoder::{Decoder, DecoderError};
pub use encoder::{Encoder, Indexing};

/// Default SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// One decoded header field; name and value are cheap `Bytes` handles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The field name, as sent (HPACK does not check or normalise it).
    pub name: Bytes,
    /// The field value, as sent.
    pub value: Bytes,
    /// The field came as a literal never indexed (RFC 7541 §6.2.3): a proxy
    /// re-encoding it must use that representation too.
    pub sensitive: bool,
}

/// One decoded header field, lent to the caller of [`Decoder::decode_fields`]:
/// clone the `Bytes` it keeps (a reference count), skip the rest.
#[derive(Clone, Copy, Debug)]
pub struct FieldRef<'a> {
    /// The field name, as sent.
    pub name: &'a Bytes,
    /// The field value, as sent.
    pub value: &'a Bytes,
    /// Sent as a literal never indexed (RFC 7541 §6.2.3).
    pub sensitive: bool,
    /// Name and value are known to be a valid HTTP/2 field (RFC 9113 §8.2.1):
    /// the field came from the static table, or from a dynamic entry judged
    /// valid when it was inserted. When false, the caller checks.
    pub known_valid: bool,
}

/// The header block of a gRPC response's HEADERS frame: `:status: 200` and
/// `content-type: application/grpc`.
///
/// Uses only the static table and a literal without indexing, so it is valid
/// whatever the dynamic table holds and leaves it untouched; the caller still
/// writes [`Encoder::begin_block`] first in case a size update is owed.
#[rustfmt::skip]
pub const RESPONSE_HEADERS_GRPC: &[u8] = &[
    0x88, // indexed 8, :status: 200
    0x0f, 0x10, // literal without indexing, name index 31 (content-type)
    0x8b, // Huffman-coded value, 11 octets: "application/grpc"
    0x1d, 0x75, 0xd0, 0x62, 0x0d, 0x26, 0x3d, 0x4c, 0x4d, 0x65, 0x64,
];

/// The header block of a gRPC response's trailers for success:
/// `grpc-status: 0`. Like [`RESPONSE_HEADERS_GRPC`], table-independent.
#[rustfmt::skip]
pub const TRAILERS_OK: &[u8] = &[
    0x00, // literal without indexing, new name
    0x88, // Huffman-coded name, 8 octets: "grpc-status"
    0x9a, 0xca, 0xc8, 0xb2, 0x12, 0x34, 0xda, 0x8f,
    0x01, 0x30, // raw value "0" (Huffman would be no shorter)
];

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn decode(block: &'static [u8]) -> Vec<Header> {
        let mut out = Vec::new();
        // A decoder whose table is full of unrelated entries must give the same
        // answer as a fresh one: the constants depend on no table state.
        let mut busy = Decoder::new(DEFAULT_TABLE_SIZE);
        let mut filler = BytesMut::new();
        let mut e = Encoder::new();
        for i in 0..200 {
            e.encode_field(
                b"content-type",
                format!("x{i}").as_bytes(),
                Indexing::Incremental,
                &mut filler,
            );
        }
        busy.decode(&filler.freeze(), |_| {}).unwrap();
        let before = busy.table_size();
        let mut busy_out = Vec::new();
        busy.decode(&Bytes::from_static(block), |h| busy_out.push(h))
            .unwrap();
        assert_eq!(busy.table_size(), before);

        Decoder::new(DEFAULT_TABLE_SIZE)
            .decode(&Bytes::from_static(block), |h| out.push(h))
            .unwrap();
        assert_eq!(out, busy_out);
        out
    }

    fn field(name: &'static str, value: &'static str) -> Header {
        Header {
            name: Bytes::from_static(name.as_bytes()),
            value: Bytes::from_static(value.as_bytes()),
            sensitive: false,
        }
    }

    #[test]
    fn response_headers_grpc_decodes() {
        assert_eq!(
            decode(RESPONSE_HEADERS_GRPC),
            [
                field(":status", "200"),
                field("content-type", "application/grpc")
            ]
        );
    }

    #[test]
    fn trailers_ok_decodes() {
        assert_eq!(decode(TRAILERS_OK), [field("grpc-status", "0")]);
    }

    #[test]
    fn constants_match_the_encoder() {
        // The encoder with an empty table picks the same representations, so a
        // hand-made constant cannot drift from what `encode_field` would send.
        let mut e = Encoder::new();
        let mut dst = BytesMut::new();
        e.encode_field(b":status", b"200", Indexing::No, &mut dst);
        e.encode_field(b"content-type", b"application/grpc", Indexing::No, &mut dst);
        assert_eq!(&dst[..], RESPONSE_HEADERS_GRPC);
        dst.clear();
        e.encode_field(b"grpc-status", b"0", Indexing::No, &mut dst);
        assert_eq!(&dst[..], TRAILERS_OK);
    }
}
