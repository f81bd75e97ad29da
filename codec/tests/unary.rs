//! A unary call through the sans-IO connection, end to end.

mod support;

use ringrpc_codec::frame::StreamId;
use ringrpc_codec::server::{Config, Event, ResponseStatus};
use support::*;

#[test]
fn unary_call_round_trip() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/helloworld.Greeter/SayHello", false);
    c.message(1, b"\x0a\x05world", true);
    let events = c.events();
    assert_eq!(events.len(), 3, "{events:?}");
    let Event::Request { id, head } = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(*id, StreamId(1));
    assert_eq!(head.service(), b"helloworld.Greeter");
    assert_eq!(head.method(), b"SayHello");
    let Event::Message { message, .. } = &events[1] else {
        panic!()
    };
    assert_eq!(&message.data[..], b"\x0a\x05world");
    assert_eq!(events[2], Event::EndOfStream { id: StreamId(1) });

    c.conn
        .send_message(
            StreamId(1),
            bytes::Bytes::from_static(b"\x0a\x0bhello world"),
            false,
        )
        .unwrap();
    c.conn
        .send_trailers(StreamId(1), ResponseStatus::OK, [])
        .unwrap();
    c.conn.release_stream(StreamId(1));
    let out = c.transmit();
    let [Out::Headers {
        id: 1,
        fields: head,
        end_stream: false,
    }, Out::Data {
        id: 1,
        payload,
        end_stream: false,
    }, Out::Headers {
        id: 1,
        fields: trailers,
        end_stream: true,
    }] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(field(head, ":status"), Some("200"));
    assert_eq!(field(head, "content-type"), Some("application/grpc"));
    assert_eq!(&payload[..], &grpc_message(b"\x0a\x0bhello world")[..]);
    assert_eq!(field(trailers, "grpc-status"), Some("0"));
    assert_eq!(c.conn.active_streams(), 0);
}

#[test]
fn error_status_is_trailers_only_with_percent_encoded_message() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    let status = ResponseStatus {
        code: 5,
        message: bytes::Bytes::from("100% not found\n"),
        details: Some(bytes::Bytes::from_static(b"\x08\x05")),
    };
    c.conn.send_trailers(StreamId(1), status, []).unwrap();
    let out = c.transmit();
    let [Out::Headers {
        id: 1,
        fields,
        end_stream: true,
    }] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(field(fields, ":status"), Some("200"));
    assert_eq!(field(fields, "content-type"), Some("application/grpc"));
    assert_eq!(field(fields, "grpc-status"), Some("5"));
    assert_eq!(field(fields, "grpc-message"), Some("100%25 not found%0A"));
    assert_eq!(field(fields, "grpc-status-details-bin"), Some("CAU"));
}
