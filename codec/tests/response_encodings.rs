//! `Connection::set_encodings` and `set_accept_encoding`: `grpc-encoding` and
//! `grpc-accept-encoding` in the response head, which custom metadata may not
//! carry.

mod support;

use bytes::Bytes;
use ringrpc_codec::frame::StreamId;
use ringrpc_codec::server::{Config, ResponseStatus};
use support::*;

fn served(c: &mut Client, id: u32) {
    c.request(id, "/test.Echo/Unary", false);
    c.message(id, b"ping", true);
    c.events();
}

#[test]
fn encodings_go_in_the_response_headers() {
    let mut c = Client::connected(Config::default());
    served(&mut c, 1);
    let id = StreamId(1);
    c.conn
        .set_encodings(
            id,
            Some(Bytes::from_static(b"gzip")),
            Some(Bytes::from_static(b"gzip,identity")),
        )
        .unwrap();
    // Smuggling them in as metadata does not work: reserved keys are dropped.
    c.conn
        .send_headers(
            id,
            [(
                Bytes::from_static(b"grpc-encoding"),
                Bytes::from_static(b"zstd"),
            )],
        )
        .unwrap();
    c.conn
        .send_message(id, Bytes::from_static(b"x"), true)
        .unwrap();
    c.conn.send_trailers(id, ResponseStatus::OK, []).unwrap();
    c.conn.release_stream(id);
    let out = c.transmit();
    let Out::Headers { fields, .. } = &out[0] else {
        panic!("{out:?}")
    };
    let encodings: Vec<_> = fields
        .iter()
        .filter(|(n, _)| n == "grpc-encoding")
        .collect();
    assert_eq!(encodings.len(), 1, "{fields:?}");
    assert_eq!(field(fields, "grpc-encoding"), Some("gzip"));
    assert_eq!(field(fields, "grpc-accept-encoding"), Some("gzip,identity"));
    let Out::Data { payload, .. } = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(payload[0], 1, "compressed flag");
}

#[test]
fn trailers_only_carries_accept_encoding_only() {
    let mut c = Client::connected(Config::default());
    served(&mut c, 1);
    let id = StreamId(1);
    c.conn
        .set_encodings(
            id,
            Some(Bytes::from_static(b"gzip")),
            Some(Bytes::from_static(b"gzip,zstd,identity")),
        )
        .unwrap();
    c.conn
        .send_trailers(id, ResponseStatus::new(12, "unsupported"), [])
        .unwrap();
    c.conn.release_stream(id);
    let out = c.transmit();
    let [Out::Headers {
        fields,
        end_stream: true,
        ..
    }] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(field(fields, "grpc-status"), Some("12"));
    assert_eq!(
        field(fields, "grpc-accept-encoding"),
        Some("gzip,zstd,identity")
    );
    assert_eq!(field(fields, "grpc-encoding"), None, "no messages follow");
}

#[test]
fn invalid_values_are_left_out() {
    let mut c = Client::connected(Config::default());
    served(&mut c, 1);
    c.conn
        .set_encodings(
            StreamId(1),
            Some(Bytes::from_static(b"gz\r\nip")),
            Some(Bytes::from_static(b"")),
        )
        .unwrap();
    // A message, so the full response head (where grpc-encoding goes) is written.
    let fields = response_head(&mut c, 1, true);
    assert_eq!(field(&fields, "grpc-encoding"), None);
    assert_eq!(field(&fields, "grpc-accept-encoding"), None);
}

/// Answers stream `id` with one message (or none) and OK; the response head.
fn response_head(c: &mut Client, id: u32, with_message: bool) -> Vec<(String, String)> {
    let id = StreamId(id);
    if with_message {
        c.conn
            .send_message(id, Bytes::from_static(b"x"), false)
            .unwrap();
    }
    c.conn.send_trailers(id, ResponseStatus::OK, []).unwrap();
    c.conn.release_stream(id);
    let out = c.transmit();
    let Out::Headers { fields, .. } = &out[0] else {
        panic!("{out:?}")
    };
    fields.clone()
}

#[test]
fn the_connection_accept_encoding_goes_on_every_response_unless_a_stream_sets_its_own() {
    let mut c = Client::connected(Config::default());
    c.conn
        .set_accept_encoding(Some(Bytes::from_static(b"gzip,identity")));
    // A full response head and a trailers-only one both carry it.
    served(&mut c, 1);
    let fields = response_head(&mut c, 1, true);
    assert_eq!(
        field(&fields, "grpc-accept-encoding"),
        Some("gzip,identity")
    );
    served(&mut c, 3);
    let fields = response_head(&mut c, 3, false);
    assert_eq!(
        field(&fields, "grpc-accept-encoding"),
        Some("gzip,identity")
    );
    // The stream's own value wins.
    served(&mut c, 5);
    c.conn
        .set_encodings(StreamId(5), None, Some(Bytes::from_static(b"zstd")))
        .unwrap();
    let fields = response_head(&mut c, 5, true);
    assert_eq!(field(&fields, "grpc-accept-encoding"), Some("zstd"));
    // An invalid value is left out, and so is a cleared one.
    c.conn
        .set_accept_encoding(Some(Bytes::from_static(b"gzip\r\n")));
    served(&mut c, 7);
    let fields = response_head(&mut c, 7, true);
    assert_eq!(field(&fields, "grpc-accept-encoding"), None);
    c.conn.set_accept_encoding(None);
    served(&mut c, 9);
    let fields = response_head(&mut c, 9, true);
    assert_eq!(field(&fields, "grpc-accept-encoding"), None);
}

#[test]
fn closed_streams_are_refused() {
    let mut c = Client::connected(Config::default());
    assert!(c.conn.set_encodings(StreamId(1), None, None).is_err());
}
