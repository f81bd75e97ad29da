//! Handlers may hold per-core state that is not `Send`.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use ringrpc_codegen_tests::helloworld::greeter_server::{Greeter, GreeterServer};
use ringrpc_codegen_tests::helloworld::{HelloReply, HelloRequest};
use ringrpc_service_api::{Request, Response, Status};
use support::{encode, run};

/// Remembers every name it greeted, in state only this core can touch.
struct Recorder {
    seen: Rc<RefCell<Vec<String>>>,
}

impl Greeter for Recorder {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        // A borrow held across an await point would be legal too; the future is
        // never sent to another thread.
        let count = {
            let mut seen = self.seen.borrow_mut();
            seen.push(name.clone());
            seen.len()
        };
        std::future::ready(()).await;
        Ok(Response::new(HelloReply {
            message: format!("{name} #{count}"),
        }))
    }
}

/// Resolves `some_item` for a type only if the type is not `Send`: for a `Send`
/// type both impls apply and the type parameter cannot be inferred.
trait AmbiguousIfSend<Marker> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}

#[test]
fn handler_and_router_are_not_send_and_still_serve() {
    let _ = <Recorder as AmbiguousIfSend<_>>::some_item;
    let _ = <GreeterServer<Recorder> as AmbiguousIfSend<_>>::some_item;

    let seen = Rc::new(RefCell::new(Vec::new()));
    let server = GreeterServer::new(Recorder { seen: seen.clone() });
    let first = run(
        &server,
        "SayHello",
        vec![encode(&HelloRequest { name: "ada".into() })],
    );
    let second = run(
        &server.clone(),
        "SayHello",
        vec![encode(&HelloRequest { name: "bob".into() })],
    );

    assert_eq!(first.single::<HelloReply>().message, "ada #1");
    assert_eq!(second.single::<HelloReply>().message, "bob #2");
    assert_eq!(*seen.borrow(), ["ada", "bob"]);
}

#[test]
fn from_rc_shares_the_handler_with_other_code() {
    let recorder = Rc::new(Recorder {
        seen: Rc::default(),
    });
    let server = GreeterServer::from_rc(recorder.clone());
    run(
        &server,
        "SayHello",
        vec![encode(&HelloRequest { name: "eve".into() })],
    );
    assert_eq!(*recorder.seen.borrow(), ["eve"]);
}
