//! Encoder → decoder round trips over several blocks on one connection, with
//! table size changes between blocks; and decoding blocks from an independent
//! encoder (the `h2` crate's client).

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use ringrpc_codec::hpack::{Decoder, Encoder, Header, Indexing, DEFAULT_TABLE_SIZE};

#[derive(Clone, Debug)]
struct Field {
    name: Vec<u8>,
    value: Vec<u8>,
    indexing: Indexing,
}

#[derive(Clone, Debug)]
struct Block {
    /// New SETTINGS_HEADER_TABLE_SIZE values taking effect before this block.
    settings: Vec<usize>,
    fields: Vec<Field>,
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Static table names, with and without static values.
        prop::sample::select(vec![
            ":authority",
            ":method",
            ":path",
            ":scheme",
            ":status",
            "accept-encoding",
            "content-type",
            "date",
            "user-agent",
            "www-authenticate",
        ]),
        // Typical gRPC metadata, likely to repeat and hit the dynamic table.
        prop::sample::select(vec![
            "grpc-status",
            "grpc-message",
            "grpc-encoding",
            "te",
            "x-request-id"
        ]),
    ]
    .prop_map(|s| s.as_bytes().to_vec())
    .boxed()
    .prop_union(
        "[a-z][a-z0-9_.-]{0,24}"
            .prop_map(String::into_bytes)
            .boxed(),
    )
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(vec!["", "GET", "POST", "/", "200", "404", "gzip, deflate", "0", "trailers", "application/grpc"])
            .prop_map(|s| s.as_bytes().to_vec()),
        3 => prop::collection::vec(any::<u8>(), 0..24),
        2 => "[ -~]{0,64}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..5000),
    ]
}

fn indexing() -> impl Strategy<Value = Indexing> {
    prop_oneof![
        Just(Indexing::Incremental),
        Just(Indexing::No),
        Just(Indexing::Never)
    ]
}

fn field() -> impl Strategy<Value = Field> {
    (name(), value(), indexing()).prop_map(|(name, value, indexing)| Field {
        name,
        value,
        indexing,
    })
}

fn block() -> impl Strategy<Value = Block> {
    let setting = prop_oneof![
        Just(0usize),
        Just(64),
        Just(256),
        Just(4096),
        Just(16_384),
        0usize..6000
    ];
    (
        prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(setting, 1..4)],
        prop::collection::vec(field(), 0..24),
    )
        .prop_map(|(settings, fields)| Block { settings, fields })
}

/// Repeats fields across blocks so the dynamic table is actually hit.
fn connection() -> impl Strategy<Value = Vec<Block>> {
    prop::collection::vec(block(), 1..8).prop_map(|mut blocks| {
        for i in 1..blocks.len() {
            let previous: Vec<Field> = blocks[i - 1].fields.iter().take(4).cloned().collect();
            blocks[i].fields.extend(previous);
        }
        blocks
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn roundtrip(blocks in connection()) {
        let mut encoder = Encoder::new();
        let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
        for block in &blocks {
            for &size in &block.settings {
                // The same SETTINGS value, as seen by the peer's encoder and by us.
                encoder.update_max_size(size);
                decoder.set_max_table_size(size);
            }
            let mut dst = BytesMut::new();
            encoder.begin_block(&mut dst);
            for f in &block.fields {
                encoder.encode_field(&f.name, &f.value, f.indexing, &mut dst);
            }
            let mut decoded = Vec::new();
            decoder.decode(&dst.freeze(), |h| decoded.push(h)).unwrap();
            let expected: Vec<Header> = block
                .fields
                .iter()
                .map(|f| Header {
                    name: Bytes::from(f.name.clone()),
                    value: Bytes::from(f.value.clone()),
                    sensitive: f.indexing == Indexing::Never,
                })
                .collect();
            prop_assert_eq!(decoded, expected);
            prop_assert_eq!(decoder.table_size(), encoder.table_size());
        }
    }
}

/// A header block split out of raw HTTP/2 frames: HEADERS followed by any
/// CONTINUATIONs, with padding and priority fields removed.
fn header_blocks(mut wire: &[u8]) -> Vec<Vec<u8>> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert!(wire.starts_with(PREFACE));
    wire = &wire[PREFACE.len()..];
    let mut blocks = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    while wire.len() >= 9 {
        let len = usize::from(wire[0]) << 16 | usize::from(wire[1]) << 8 | usize::from(wire[2]);
        let (kind, flags) = (wire[3], wire[4]);
        if wire.len() < 9 + len {
            break;
        }
        let mut payload = &wire[9..9 + len];
        wire = &wire[9 + len..];
        match kind {
            0x1 => {
                if flags & 0x8 != 0 {
                    let pad = usize::from(payload[0]);
                    payload = &payload[1..payload.len() - pad];
                }
                if flags & 0x20 != 0 {
                    payload = &payload[5..];
                }
                current = Some(payload.to_vec());
            }
            0x9 => current.as_mut().unwrap().extend_from_slice(payload),
            _ => continue,
        }
        if flags & 0x4 != 0 {
            blocks.push(current.take().unwrap());
        }
    }
    blocks
}

#[tokio::test]
async fn decodes_h2_client_blocks() {
    use tokio::io::AsyncReadExt;

    let (client_io, mut server_io) = tokio::io::duplex(1 << 20);
    let (mut client, connection) = h2::client::handshake(client_io).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });

    let requests = [
        ("/helloworld.Greeter/SayHello", "first"),
        ("/helloworld.Greeter/SayHello", "second"),
        ("/helloworld.Greeter/SayGoodbye", "third"),
    ];
    let mut streams = Vec::new();
    for (path, id) in requests {
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://example.com{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", "grpc-rust-test/1.0")
            .header("x-request-id", id)
            .body(())
            .unwrap();
        let (response, _send) = client.send_request(request, false).unwrap();
        streams.push(response);
    }

    // Wait until all three HEADERS frames are out, then stop the client so the
    // capture is finite.
    let mut wire = Vec::new();
    let mut buf = [0u8; 4096];
    while header_blocks_complete(&wire) < requests.len() {
        let n = server_io.read(&mut buf).await.unwrap();
        assert!(n > 0);
        wire.extend_from_slice(&buf[..n]);
    }
    drop(streams);
    drop(client);
    driver.abort();

    let blocks = header_blocks(&wire);
    assert_eq!(blocks.len(), 3);
    // h2 starts from the protocol default table size, as our decoder does
    // until our own SETTINGS is acknowledged.
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    for (block, (path, id)) in blocks.iter().zip(requests) {
        let mut fields = Vec::new();
        decoder
            .decode(&Bytes::copy_from_slice(block), |h| fields.push(h))
            .unwrap();
        let get = |name: &str| {
            let f = fields
                .iter()
                .find(|f| f.name == name)
                .unwrap_or_else(|| panic!("no {name}"));
            String::from_utf8(f.value.to_vec()).unwrap()
        };
        assert_eq!(get(":method"), "POST");
        assert_eq!(get(":scheme"), "http");
        assert_eq!(get(":authority"), "example.com");
        assert_eq!(get(":path"), path);
        assert_eq!(get("content-type"), "application/grpc");
        assert_eq!(get("te"), "trailers");
        assert_eq!(get("user-agent"), "grpc-rust-test/1.0");
        assert_eq!(get("x-request-id"), id);
    }
    // Later blocks reuse what earlier ones indexed, so they are smaller.
    assert!(
        blocks[1].len() < blocks[0].len(),
        "{} {}",
        blocks[1].len(),
        blocks[0].len()
    );
    assert!(decoder.table_size() > 0);
}

fn header_blocks_complete(wire: &[u8]) -> usize {
    if wire.len() < 24 {
        return 0;
    }
    header_blocks(wire).len()
}
