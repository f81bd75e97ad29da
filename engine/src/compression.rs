//! Message compression: gzip and zstd, chosen per call from `grpc-encoding` and
//! `grpc-accept-encoding` (gRPC's `doc/compression.md`).
//!
//! Requests: the codec reports each message's compressed flag; the engine
//! decompresses flagged messages with the call's `grpc-encoding` when the handler
//! takes them, streaming the decoder into a buffer that may not outgrow the
//! receive limit — a small payload that inflates without bound (a decompression
//! bomb) costs at most the limit, never the size it claims.
//!
//! Responses: see [`crate::EngineConfig::response_compression`] for when they are
//! compressed; a handler can still send single messages uncompressed.

use std::io::{Read, Write};

use bytes::{BufMut, BytesMut};
use ringrpc_service_api::Status;

/// A message compression the engine speaks besides `identity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `gzip` (RFC 1952), through flate2.
    Gzip,
    /// `zstd` (RFC 8878), through the zstd library.
    Zstd,
}

/// What the engine decompresses, for `grpc-accept-encoding`.
pub(crate) const ACCEPT_ENCODING: &[u8] = b"gzip,zstd,identity";

impl Encoding {
    /// The name used in `grpc-encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }

    /// The encoding called `name`; `None` for `identity` and anything unknown.
    pub fn from_name(name: &[u8]) -> Option<Encoding> {
        match name {
            b"gzip" => Some(Encoding::Gzip),
            b"zstd" => Some(Encoding::Zstd),
            _ => None,
        }
    }

    /// Decompresses `data`, failing with RESOURCE_EXHAUSTED as soon as the output
    /// passes `limit` bytes and with INTERNAL when `data` is not valid.
    pub(crate) fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>, Status> {
        // One byte past the limit is enough to know the limit was passed; the
        // output buffer grows with what is actually produced, up to that.
        let cap = limit as u64 + 1;
        let mut out = Vec::new();
        let result = match self {
            Encoding::Gzip => flate2::bufread::GzDecoder::new(data)
                .take(cap)
                .read_to_end(&mut out),
            Encoding::Zstd => match zstd::stream::read::Decoder::with_buffer(data) {
                Ok(decoder) => decoder.take(cap).read_to_end(&mut out),
                Err(e) => Err(e),
            },
        };
        if let Err(e) = result {
            return Err(Status::internal(format!(
                "cannot decompress {} message: {e}",
                self.name()
            )));
        }
        if out.len() > limit {
            return Err(Status::resource_exhausted(format!(
                "decompressed message larger than the limit of {limit} bytes"
            )));
        }
        Ok(out)
    }

    /// Appends the compressed form of `data` to `out`.
    pub(crate) fn compress(self, data: &[u8], out: &mut BytesMut) -> std::io::Result<()> {
        match self {
            Encoding::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(out.writer(), flate2::Compression::default());
                encoder.write_all(data)?;
                encoder.finish()?;
            }
            Encoding::Zstd => {
                // Level 0 is the library's default (3): fast, and most of the gain.
                let mut encoder = zstd::stream::write::Encoder::new(out.writer(), 0)?;
                encoder.write_all(data)?;
                encoder.finish()?;
            }
        }
        Ok(())
    }
}

/// Whether the comma-separated `grpc-accept-encoding` list names `encoding`.
fn accepts(accept: Option<&[u8]>, encoding: Encoding) -> bool {
    accept.is_some_and(|list| {
        list.split(|&b| b == b',').any(|name| {
            name.trim_ascii()
                .eq_ignore_ascii_case(encoding.name().as_bytes())
        })
    })
}

/// The encoding of a call's responses. Only what the client accepts is used:
/// first the encoding of its own request, then — if the server is configured to
/// compress — the configured one, then any other we have; otherwise identity.
pub(crate) fn response_encoding(
    request: Option<Encoding>,
    accept: Option<&[u8]>,
    configured: Option<Encoding>,
) -> Option<Encoding> {
    if let Some(encoding) = request.filter(|&e| accepts(accept, e)) {
        return Some(encoding);
    }
    let configured = configured?;
    [configured, Encoding::Gzip, Encoding::Zstd]
        .into_iter()
        .find(|&e| accepts(accept, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compressed(encoding: Encoding, data: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        encoding.compress(data, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn round_trips_both_encodings() {
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for encoding in [Encoding::Gzip, Encoding::Zstd] {
            let packed = compressed(encoding, &data);
            assert!(packed.len() < data.len(), "{encoding:?} did not compress");
            assert_eq!(encoding.decompress(&packed, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn output_past_the_limit_is_resource_exhausted() {
        let zeros = vec![0u8; 1 << 20];
        for encoding in [Encoding::Gzip, Encoding::Zstd] {
            let packed = compressed(encoding, &zeros);
            let err = encoding.decompress(&packed, (1 << 20) - 1).unwrap_err();
            assert_eq!(err.code(), ringrpc_service_api::Code::ResourceExhausted);
            assert_eq!(
                encoding.decompress(&packed, 1 << 20).unwrap().len(),
                1 << 20
            );
        }
    }

    #[test]
    fn corrupt_input_is_internal() {
        for encoding in [Encoding::Gzip, Encoding::Zstd] {
            let mut packed = compressed(encoding, b"hello hello hello hello");
            let n = packed.len();
            packed.truncate(n - 6);
            let err = encoding.decompress(&packed, 1024).unwrap_err();
            assert_eq!(
                err.code(),
                ringrpc_service_api::Code::Internal,
                "{encoding:?}"
            );
            let err = encoding
                .decompress(b"not compressed at all", 1024)
                .unwrap_err();
            assert_eq!(
                err.code(),
                ringrpc_service_api::Code::Internal,
                "{encoding:?}"
            );
        }
    }

    #[test]
    fn response_encoding_follows_the_client() {
        use Encoding::*;
        let both = Some(&b"identity, zstd,gzip"[..]);
        // Mirror a compressed request the client also accepts.
        assert_eq!(response_encoding(Some(Zstd), both, None), Some(Zstd));
        // Never use what the client did not list.
        assert_eq!(response_encoding(Some(Zstd), Some(b"gzip"), None), None);
        assert_eq!(response_encoding(Some(Gzip), None, Some(Gzip)), None);
        // Uncompressed requests get uncompressed responses unless configured.
        assert_eq!(response_encoding(None, both, None), None);
        assert_eq!(response_encoding(None, both, Some(Zstd)), Some(Zstd));
        assert_eq!(
            response_encoding(None, Some(b"gzip"), Some(Zstd)),
            Some(Gzip)
        );
        assert_eq!(response_encoding(None, Some(b"snappy"), Some(Zstd)), None);
    }
}
