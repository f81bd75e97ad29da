//! An in-memory `CallIo`: request messages come from a queue, everything the
//! call sends is recorded, and misuse of the seam (headers after a message,
//! anything after `finish`, a wrong `len`) panics.

#![allow(dead_code)] // Each test file uses a different part.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use prost::Message;
use ringrpc_service_api::server::{CallSlot, Service};
use ringrpc_service_api::{Call, CallHead, CallIo, Code, Metadata, Status};

/// A call whose request stream holds fixed messages and then ends.
#[derive(Default)]
pub struct FakeIo {
    requests: RefCell<VecDeque<Bytes>>,
    headers: RefCell<Option<Metadata>>,
    messages: RefCell<Vec<Bytes>>,
    trailers: RefCell<Option<Metadata>>,
    finished: RefCell<Option<Result<Metadata, Status>>>,
    finishes: Cell<u32>,
}

impl FakeIo {
    pub fn new(requests: impl IntoIterator<Item = Bytes>) -> Rc<FakeIo> {
        Rc::new(FakeIo {
            requests: RefCell::new(requests.into_iter().collect()),
            ..FakeIo::default()
        })
    }

    fn assert_open(&self) {
        assert_eq!(self.finishes.get(), 0, "call used after finish");
    }
}

impl CallIo for FakeIo {
    fn poll_message(&self, _: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        self.assert_open();
        Poll::Ready(Ok(self.requests.borrow_mut().pop_front()))
    }

    fn poll_send_ready(&self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.assert_open();
        Poll::Ready(Ok(()))
    }

    fn send_headers(&self, metadata: Metadata) -> Result<(), Status> {
        self.assert_open();
        assert!(
            self.messages.borrow().is_empty(),
            "headers after the first message"
        );
        assert!(self.headers.borrow().is_none(), "headers sent twice");
        *self.headers.borrow_mut() = Some(metadata);
        Ok(())
    }

    fn flush_headers(&self) {
        self.assert_open();
        if self.headers.borrow().is_none() && self.messages.borrow().is_empty() {
            *self.headers.borrow_mut() = Some(Metadata::new());
        }
    }

    fn send_message(
        &self,
        len: usize,
        encode: &mut dyn FnMut(&mut BytesMut),
    ) -> Result<(), Status> {
        self.assert_open();
        let mut buf = BytesMut::with_capacity(len);
        encode(&mut buf);
        assert_eq!(
            buf.len(),
            len,
            "encoded length differs from the announced one"
        );
        self.messages.borrow_mut().push(buf.freeze());
        Ok(())
    }

    fn set_trailers(&self, metadata: Metadata) {
        self.assert_open();
        *self.trailers.borrow_mut() = Some(metadata);
    }

    fn finish(&self, result: Result<Metadata, Status>) {
        self.assert_open();
        self.finishes.set(1);
        *self.finished.borrow_mut() = Some(result);
    }

    fn poll_cancelled(&self, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }

    fn is_cancelled(&self) -> bool {
        false
    }
}

/// What a call sent, once it finished.
#[derive(Debug)]
pub struct Outcome {
    /// Metadata passed to `send_headers`.
    pub headers: Option<Metadata>,
    /// Response messages, encoded.
    pub messages: Vec<Bytes>,
    /// Metadata passed to `set_trailers`.
    pub trailers: Option<Metadata>,
    /// What `finish` got.
    pub result: Result<Metadata, Status>,
    /// Request messages the call did not read.
    pub unread: usize,
}

impl Outcome {
    pub fn code(&self) -> Code {
        match &self.result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        }
    }

    pub fn status(&self) -> &Status {
        self.result.as_ref().expect_err("call succeeded")
    }

    /// The response messages, decoded as `T`.
    pub fn decode<T: Message + Default>(&self) -> Vec<T> {
        self.messages
            .iter()
            .map(|m| T::decode(m.clone()).expect("response decodes"))
            .collect()
    }

    /// The only response message, decoded as `T`; the call must have succeeded.
    pub fn single<T: Message + Default>(&self) -> T {
        assert!(self.result.is_ok(), "call failed: {:?}", self.result);
        let mut messages = self.decode::<T>();
        assert_eq!(messages.len(), 1, "expected one response message");
        messages.remove(0)
    }
}

pub fn encode(message: &impl Message) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// Runs `method` of `service` to completion with these request messages.
pub fn run(service: &dyn Service, method: &str, requests: Vec<Bytes>) -> Outcome {
    run_with_head(service, method, CallHead::default(), requests)
}

pub fn run_with_head(
    service: &dyn Service,
    method: &str,
    head: CallHead,
    requests: Vec<Bytes>,
) -> Outcome {
    let io = FakeIo::new(requests);
    let call = Call::new(io.clone(), head);
    let mut slot = Box::pin(CallSlot::new());
    assert!(
        service.call(method.as_bytes(), call, slot.as_mut()),
        "no method {method}"
    );
    futures_executor::block_on(std::future::poll_fn(|cx| slot.as_mut().poll(cx)));
    assert_eq!(io.finishes.get(), 1, "call ended without finish");
    let result = io.finished.borrow_mut().take().expect("finish recorded");
    let unread = io.requests.borrow().len();
    Outcome {
        headers: io.headers.take(),
        messages: io.messages.take(),
        trailers: io.trailers.take(),
        result,
        unread,
    }
}
