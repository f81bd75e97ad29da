//! Generated code for a set of awkward protos (see `proto/` and `build.rs`), and
//! a small handler for every generated service trait. The tests drive these
//! through the generated routers with an in-memory `CallIo`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use ringrpc_service_api::server::Service;
use ringrpc_service_api::{Metadata, Request, Response, ResponseSink, Status, Streaming};

macro_rules! generated {
    ($file:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $file));
    };
}

/// `helloworld.proto`, compiled with `compile_protos`.
pub mod helloworld {
    generated!("helloworld.rs");
}

/// `helloworld.proto` again, with `build_server(false)`.
pub mod messages_only {
    /// Messages of the `helloworld` package.
    pub mod helloworld {
        generated!("messages_only/helloworld.rs");
    }
}

/// A package whose `Item` shares its name with `pkg_b.Item`.
pub mod pkg_a {
    generated!("pkg_a.rs");
}

/// A service using both `Item`s.
pub mod pkg_b {
    generated!("pkg_b.rs");
}

/// All four RPC kinds.
pub mod kinds {
    generated!("kinds.rs");
}

/// Method and service names that are Rust keywords.
pub mod keywords {
    generated!("keywords.rs");
}

/// A proto file without a `package` line.
pub mod nopackage {
    generated!("_.rs");
}

/// `google.protobuf.Empty` in and out, mapped to `()`.
pub mod empty_io {
    generated!("empty_io.rs");
}

/// Method names equal to message names, and names the glue uses itself.
pub mod collide {
    generated!("collide.rs");
}

/// `bytes` fields as `Bytes`.
pub mod blobs {
    generated!("blobs.rs");
}

/// A service whose messages come from an extern path (`crate::pkg_a`).
pub mod ext_user {
    generated!("extern/ext_user.rs");
}

/// `empty.proto` again, with `google.protobuf.Empty` generated as a message.
pub mod wkt {
    /// The generated well-known types.
    pub mod google {
        /// `google.protobuf`.
        pub mod protobuf {
            generated!("wkt/google.protobuf.rs");
        }
    }

    /// The `empty_io` package, referring to `super::google::protobuf::Empty`.
    pub mod empty_io {
        generated!("wkt/empty_io.rs");
    }
}

/// Greets by name; echoes the `x-request-id` request metadata in the response
/// headers and reports the name length in the trailers.
#[derive(Debug, Default)]
pub struct Greeter;

impl helloworld::greeter_server::Greeter for Greeter {
    async fn say_hello(
        &self,
        request: Request<helloworld::HelloRequest>,
    ) -> Result<Response<helloworld::HelloReply>, Status> {
        let id = request.metadata().get("x-request-id").map(str::to_owned);
        let name = request.into_inner().name;
        let mut response = Response::new(helloworld::HelloReply {
            message: format!("Hello, {name}!"),
        });
        if let Some(id) = id {
            response
                .metadata_mut()
                .insert("x-request-id", id)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        response
            .trailers_mut()
            .insert("x-name-len", name.len().to_string())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(response)
    }
}

/// Converts between the two `Item`s.
#[derive(Debug, Default)]
pub struct Converter;

impl pkg_b::converter_server::Converter for Converter {
    async fn convert(
        &self,
        request: Request<pkg_a::Item>,
    ) -> Result<Response<pkg_b::Item>, Status> {
        let name = request.into_inner().name;
        let length =
            u32::try_from(name.len()).map_err(|_| Status::invalid_argument("name too long"))?;
        Ok(Response::new(pkg_b::Item {
            label: name,
            length,
        }))
    }

    async fn back(&self, request: Request<pkg_b::Item>) -> Result<Response<pkg_a::Item>, Status> {
        Ok(Response::new(pkg_a::Item {
            name: request.into_inner().label,
            tag: Vec::new(),
        }))
    }
}

/// Arithmetic over all four kinds, with per-core state in `Rc<RefCell<..>>`.
#[derive(Debug, Default, Clone)]
pub struct Calculator {
    table: Rc<RefCell<BTreeMap<i64, i64>>>,
    calls: Rc<Cell<u32>>,
}

impl Calculator {
    /// A calculator whose `Lookup` knows `entries`.
    pub fn with_table(entries: impl IntoIterator<Item = (i64, i64)>) -> Calculator {
        Calculator {
            table: Rc::new(RefCell::new(entries.into_iter().collect())),
            calls: Rc::default(),
        }
    }

    /// How many times a handler ran.
    pub fn calls(&self) -> u32 {
        self.calls.get()
    }

    fn count(&self) {
        self.calls.set(self.calls.get() + 1);
    }
}

fn number(value: i64) -> kinds::Number {
    let sign = match value.signum() {
        1 => kinds::Sign::Positive,
        -1 => kinds::Sign::Negative,
        _ => kinds::Sign::Unspecified,
    };
    kinds::Number {
        value,
        sign: sign.into(),
    }
}

impl kinds::calculator_server::Calculator for Calculator {
    async fn double(
        &self,
        request: Request<kinds::Number>,
    ) -> Result<Response<kinds::Number>, Status> {
        self.count();
        let value = request.into_inner().value;
        let doubled = value
            .checked_mul(2)
            .ok_or_else(|| Status::out_of_range("overflow"))?;
        Ok(Response::new(number(doubled)))
    }

    async fn count_to(
        &self,
        request: Request<kinds::Number>,
        mut responses: ResponseSink<kinds::Number>,
    ) -> Result<(), Status> {
        self.count();
        let n = request.into_inner().value;
        if !(0..=1000).contains(&n) {
            return Err(Status::invalid_argument("count must be in 0..=1000"));
        }
        for i in 1..=n {
            responses.send(number(i)).await?;
        }
        let mut trailers = Metadata::new();
        trailers
            .insert("x-sent", n.to_string())
            .map_err(|e| Status::internal(e.to_string()))?;
        responses.set_trailers(trailers);
        Ok(())
    }

    async fn sum(
        &self,
        request: Request<Streaming<kinds::Number>>,
    ) -> Result<Response<kinds::Number>, Status> {
        self.count();
        let mut stream = request.into_inner();
        let mut total = 0i64;
        while let Some(n) = stream.message().await? {
            total = total
                .checked_add(n.value)
                .ok_or_else(|| Status::out_of_range("overflow"))?;
        }
        Ok(Response::new(number(total)))
    }

    async fn echo(
        &self,
        request: Request<Streaming<kinds::Number>>,
        mut responses: ResponseSink<kinds::Number>,
    ) -> Result<(), Status> {
        self.count();
        let mut stream = request.into_inner();
        while let Some(n) = stream.message().await? {
            responses.send(n).await?;
        }
        Ok(())
    }

    async fn lookup(
        &self,
        request: Request<kinds::Number>,
    ) -> Result<Response<kinds::Number>, Status> {
        self.count();
        let key = request.into_inner().value;
        let value = self.table.borrow().get(&key).copied();
        match value {
            Some(value) => Ok(Response::new(number(value))),
            None => Err(Status::not_found(format!("no entry for {key}"))),
        }
    }

    async fn annotate(
        &self,
        request: Request<kinds::number::Note>,
    ) -> Result<Response<kinds::number::Note>, Status> {
        self.count();
        Ok(Response::new(kinds::number::Note {
            text: request.into_inner().text.to_uppercase(),
        }))
    }
}

/// Implements a service without methods.
#[derive(Debug, Default)]
pub struct Idle;

impl kinds::idle_server::Idle for Idle {}

/// Answers each keyword-named method with the method's proto name, so tests can
/// see which handler a route reached.
#[derive(Debug, Default)]
pub struct Keywords;

fn thing(kind: &str) -> Result<Response<keywords::Thing>, Status> {
    Ok(Response::new(keywords::Thing {
        kind: kind.to_owned(),
    }))
}

impl keywords::async_server::Async for Keywords {
    async fn r#type(
        &self,
        _: Request<keywords::Thing>,
    ) -> Result<Response<keywords::Thing>, Status> {
        thing("Type")
    }

    async fn r#match(
        &self,
        _: Request<keywords::Thing>,
    ) -> Result<Response<keywords::Thing>, Status> {
        thing("Match")
    }

    async fn self_(
        &self,
        _: Request<keywords::Thing>,
    ) -> Result<Response<keywords::Thing>, Status> {
        thing("Self")
    }

    async fn r#async(
        &self,
        _: Request<keywords::Thing>,
    ) -> Result<Response<keywords::Thing>, Status> {
        thing("Async")
    }

    async fn r#loop(
        &self,
        _: Request<keywords::Thing>,
    ) -> Result<Response<keywords::Thing>, Status> {
        thing("Loop")
    }

    async fn super_(
        &self,
        _: Request<keywords::Thing>,
    ) -> Result<Response<keywords::Thing>, Status> {
        thing("Super")
    }

    async fn crate_(
        &self,
        _: Request<keywords::Thing>,
    ) -> Result<Response<keywords::Thing>, Status> {
        thing("Crate")
    }

    async fn clone(
        &self,
        _: Request<keywords::Thing>,
    ) -> Result<Response<keywords::Thing>, Status> {
        thing("Clone")
    }
}

/// Answers `Ping` with the next sequence number.
#[derive(Debug, Default)]
pub struct Bare;

impl nopackage::bare_server::Bare for Bare {
    async fn ping(
        &self,
        request: Request<nopackage::Ping>,
    ) -> Result<Response<nopackage::Pong>, Status> {
        Ok(Response::new(nopackage::Pong {
            seq: request.into_inner().seq.wrapping_add(1),
        }))
    }
}

/// `Empty` in, `Empty` out; `Ticks` sends three.
#[derive(Debug, Default)]
pub struct Pinger;

impl empty_io::pinger_server::Pinger for Pinger {
    async fn ping(&self, _: Request<()>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    async fn ticks(&self, _: Request<()>, mut responses: ResponseSink<()>) -> Result<(), Status> {
        for _ in 0..3 {
            responses.send(()).await?;
        }
        Ok(())
    }
}

impl wkt::empty_io::pinger_server::Pinger for Pinger {
    async fn ping(
        &self,
        request: Request<wkt::google::protobuf::Empty>,
    ) -> Result<Response<wkt::google::protobuf::Empty>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    async fn ticks(
        &self,
        _: Request<wkt::google::protobuf::Empty>,
        mut responses: ResponseSink<wkt::google::protobuf::Empty>,
    ) -> Result<(), Status> {
        for _ in 0..3 {
            responses.send(wkt::google::protobuf::Empty {}).await?;
        }
        Ok(())
    }
}

/// Handlers whose message types are named `Get`, `Status`, `Result`, `Option`.
#[derive(Debug, Default)]
pub struct Collide;

impl collide::box_server::Box for Collide {
    async fn get(
        &self,
        request: Request<collide::Get>,
    ) -> Result<Response<collide::Status>, Status> {
        Ok(Response::new(collide::Status {
            state: request.into_inner().key,
        }))
    }

    async fn status(
        &self,
        request: Request<collide::Status>,
    ) -> Result<Response<collide::Result>, Status> {
        Ok(Response::new(collide::Result {
            ok: request.into_inner().state == "up",
        }))
    }

    async fn option(
        &self,
        request: Request<collide::Option>,
    ) -> Result<Response<collide::Option>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// Returns the blob it gets.
#[derive(Debug, Default)]
pub struct BlobStore;

impl blobs::blob_store_server::BlobStore for BlobStore {
    async fn put(&self, request: Request<blobs::Blob>) -> Result<Response<blobs::Blob>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// Forwards `pkg_a.Item`s unchanged.
#[derive(Debug, Default)]
pub struct Relay;

impl ext_user::relay_server::Relay for Relay {
    async fn forward(
        &self,
        request: Request<pkg_a::Item>,
    ) -> Result<Response<pkg_a::Item>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// One router per generated service, as an engine would register them.
pub fn services() -> Vec<Box<dyn Service>> {
    vec![
        Box::new(helloworld::greeter_server::GreeterServer::new(Greeter)),
        Box::new(pkg_b::converter_server::ConverterServer::new(Converter)),
        Box::new(kinds::calculator_server::CalculatorServer::new(
            Calculator::default(),
        )),
        Box::new(kinds::idle_server::IdleServer::new(Idle)),
        Box::new(keywords::async_server::AsyncServer::new(Keywords)),
        Box::new(nopackage::bare_server::BareServer::new(Bare)),
        Box::new(empty_io::pinger_server::PingerServer::new(Pinger)),
        Box::new(collide::box_server::BoxServer::new(Collide)),
        Box::new(blobs::blob_store_server::BlobStoreServer::new(BlobStore)),
        Box::new(ext_user::relay_server::RelayServer::new(Relay)),
        Box::new(wkt::empty_io::pinger_server::PingerServer::new(Pinger)),
    ]
}
