//! `bytes` fields generated as `Bytes` decode without copying.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use ringrpc_codegen_tests::blobs::blob_store_server::{BlobStore, BlobStoreServer};
use ringrpc_codegen_tests::blobs::Blob;
use ringrpc_service_api::{Request, Response, Status};
use support::{encode, run};

/// Keeps the blobs it receives.
#[derive(Default)]
struct Keeper {
    kept: Rc<RefCell<Vec<Blob>>>,
}

impl BlobStore for Keeper {
    async fn put(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let blob = request.into_inner();
        self.kept.borrow_mut().push(blob.clone());
        Ok(Response::new(Blob {
            name: blob.name,
            ..Blob::default()
        }))
    }
}

fn within(part: &[u8], whole: &[u8]) -> bool {
    let range = whole.as_ptr_range();
    range.contains(&part.as_ptr()) && part.as_ptr_range().end <= range.end
}

#[test]
fn bytes_fields_point_into_the_request_buffer() {
    let blob = Blob {
        data: Bytes::from(vec![7u8; 4096]),
        chunks: vec![
            Bytes::from_static(b"first chunk"),
            Bytes::from_static(b"second"),
        ],
        name: "b".into(),
    };
    let request = encode(&blob);
    let kept = Rc::new(RefCell::new(Vec::new()));
    let server = BlobStoreServer::new(Keeper { kept: kept.clone() });

    let outcome = run(&server, "Put", vec![request.clone()]);
    assert_eq!(outcome.single::<Blob>().name, "b");

    let kept = kept.borrow();
    let received = &kept[0];
    assert_eq!(*received, blob);
    assert!(within(&received.data, &request), "data was copied");
    for chunk in &received.chunks {
        assert!(within(chunk, &request), "chunk was copied");
    }
}

#[test]
fn the_generated_echo_returns_the_same_bytes() {
    let blob = Blob {
        data: Bytes::from_static(&[0, 1, 2, 255]),
        chunks: vec![Bytes::new()],
        name: String::new(),
    };
    let server = BlobStoreServer::new(ringrpc_codegen_tests::BlobStore);
    let outcome = run(&server, "Put", vec![encode(&blob)]);
    assert_eq!(outcome.single::<Blob>(), blob);
}
