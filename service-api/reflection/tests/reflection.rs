//! tonic's client (an independent gRPC implementation) against both
//! reflection versions on a ringrpc server. tonic's generic client carries the
//! crate's own prost messages, so the paths are spelled out here as a client
//! would.

use std::time::Duration;

use prost::Message;
use prost_types::FileDescriptorProto;
use ringrpc_engine::{Server, ServerHandle};
use tonic::transport::Channel;

#[allow(clippy::all)]
mod ringrpc {
    pub mod demo {
        include!(concat!(env!("OUT_DIR"), "/demo/ringrpc.demo.rs"));
        pub mod common {
            include!(concat!(env!("OUT_DIR"), "/demo/ringrpc.demo.common.rs"));
        }
    }
}

use ringrpc_service_api::{Request, Response, Status};

struct Echoer;

impl ringrpc::demo::echo_server::Echo for Echoer {
    async fn say(
        &self,
        request: Request<ringrpc::demo::EchoRequest>,
    ) -> Result<Response<ringrpc::demo::EchoReply>, Status> {
        Ok(Response::new(ringrpc::demo::EchoReply {
            text: request.into_inner().text,
        }))
    }
}

fn start() -> ServerHandle {
    let reporter = ringrpc_health::HealthReporter::new();
    let reflection = ringrpc_reflection::Builder::new()
        .register(ringrpc::demo::FILE_DESCRIPTOR_SET)
        .unwrap()
        .register(ringrpc_health::FILE_DESCRIPTOR_SET)
        .unwrap()
        .build();
    Server::builder()
        .workers(2)
        .add_service(|| ringrpc::demo::echo_server::EchoServer::new(Echoer))
        .add_service(ringrpc_health::service(&reporter))
        .add_service(reflection.v1())
        .add_service(reflection.v1alpha())
        .serve("127.0.0.1:0".parse().unwrap())
        .expect("server starts")
}

async fn channel(server: &ServerHandle) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// What a response said, version-independently.
#[derive(Debug, PartialEq)]
enum Answer {
    Services(Vec<String>),
    /// File names, in the order sent.
    Files(Vec<String>),
    Error(i32),
}

macro_rules! ask_with {
    ($version:ident, $channel:expr, $requests:expr) => {{
        use ringrpc_reflection::$version::server_reflection_request::MessageRequest;
        use ringrpc_reflection::$version::server_reflection_response::MessageResponse;
        use ringrpc_reflection::$version::{ServerReflectionRequest, ServerReflectionResponse};

        let requests: Vec<Query> = $requests;
        let count = requests.len();
        let outbound: Vec<ServerReflectionRequest> = requests
            .into_iter()
            .map(|query| ServerReflectionRequest {
                host: String::new(),
                message_request: Some(match query {
                    Query::List => MessageRequest::ListServices(String::new()),
                    Query::File(name) => MessageRequest::FileByFilename(name.to_owned()),
                    Query::Symbol(name) => MessageRequest::FileContainingSymbol(name.to_owned()),
                }),
            })
            .collect();
        let sent = outbound.clone();
        let mut client = tonic::client::Grpc::new($channel);
        client.ready().await.unwrap();
        let path = format!(
            "/grpc.reflection.{}.ServerReflection/ServerReflectionInfo",
            stringify!($version)
        );
        let mut stream = client
            .streaming::<_, _, ServerReflectionResponse, _>(
                tonic::Request::new(tokio_stream(outbound)),
                tonic::codegen::http::uri::PathAndQuery::try_from(path).unwrap(),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap()
            .into_inner();
        let mut answers = Vec::new();
        for expected in sent {
            let response = tokio::time::timeout(Duration::from_secs(5), stream.message())
                .await
                .expect("an answer within 5 s")
                .unwrap()
                .expect("one answer per request");
            assert_eq!(response.original_request, Some(expected));
            answers.push(match response.message_response.unwrap() {
                MessageResponse::ListServicesResponse(list) => {
                    Answer::Services(list.service.into_iter().map(|s| s.name).collect())
                }
                MessageResponse::FileDescriptorResponse(files) => Answer::Files(
                    files
                        .file_descriptor_proto
                        .iter()
                        .map(|bytes| {
                            FileDescriptorProto::decode(bytes.as_slice())
                                .unwrap()
                                .name()
                                .to_owned()
                        })
                        .collect(),
                ),
                MessageResponse::ErrorResponse(error) => Answer::Error(error.error_code),
                other => panic!("unexpected {other:?}"),
            });
        }
        assert_eq!(answers.len(), count);
        answers
    }};
}

enum Query {
    List,
    File(&'static str),
    Symbol(&'static str),
}

/// A request stream that sends everything, then half-closes.
fn tokio_stream<T: Send + 'static>(
    items: Vec<T>,
) -> impl tonic::codegen::tokio_stream::Stream<Item = T> + Send + 'static {
    tonic::codegen::tokio_stream::iter(items)
}

fn queries() -> Vec<Query> {
    vec![
        Query::List,
        Query::File("demo.proto"),
        Query::Symbol("ringrpc.demo.Echo"),
        Query::Symbol("ringrpc.demo.Echo.Say"),
        Query::Symbol("ringrpc.demo.EchoRequest"),
        Query::Symbol("ringrpc.demo.EchoRequest.Options"),
        Query::Symbol("ringrpc.demo.Mood"),
        Query::Symbol("ringrpc.demo.common.Tag.Kind"),
        Query::Symbol("grpc.health.v1.Health"),
        Query::Symbol("ringrpc.demo.Missing"),
        Query::File("missing.proto"),
    ]
}

fn expected() -> Vec<Answer> {
    let demo = || Answer::Files(vec!["demo.proto".into(), "common.proto".into()]);
    vec![
        Answer::Services(vec![
            "grpc.health.v1.Health".into(),
            "grpc.reflection.v1.ServerReflection".into(),
            "grpc.reflection.v1alpha.ServerReflection".into(),
            "ringrpc.demo.Echo".into(),
        ]),
        demo(),
        demo(),
        demo(),
        demo(),
        demo(),
        demo(),
        Answer::Files(vec!["common.proto".into()]),
        Answer::Files(vec!["grpc/health/v1/health.proto".into()]),
        Answer::Error(tonic::Code::NotFound as i32),
        Answer::Error(tonic::Code::NotFound as i32),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_answers_each_request_in_order() {
    let server = start();
    let answers = ask_with!(v1, channel(&server).await, queries());
    assert_eq!(answers, expected());
    server.shutdown_and_wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1alpha_answers_each_request_in_order() {
    let server = start();
    let answers = ask_with!(v1alpha, channel(&server).await, queries());
    assert_eq!(answers, expected());
    server.shutdown_and_wait();
}

#[test]
fn files_are_sent_once_with_their_imports() {
    // Registering a set twice and a file importing an import already sent must
    // not repeat files.
    let reflection = ringrpc_reflection::Builder::new()
        .register(ringrpc::demo::FILE_DESCRIPTOR_SET)
        .unwrap()
        .register(ringrpc::demo::FILE_DESCRIPTOR_SET)
        .unwrap()
        .build();
    use ringrpc_reflection::v1::server_reflection_request::MessageRequest;
    use ringrpc_reflection::v1::server_reflection_response::MessageResponse;
    let response = reflection.answer(ringrpc_reflection::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileByFilename("demo.proto".into())),
    });
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("{response:?}");
    };
    let names: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|b| {
            FileDescriptorProto::decode(b.as_slice())
                .unwrap()
                .name()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["demo.proto", "common.proto"]);
    assert_eq!(
        reflection.services(),
        [
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "ringrpc.demo.Echo"
        ]
    );
}

#[test]
fn invalid_sets_are_rejected() {
    assert!(ringrpc_reflection::Builder::new()
        .register(b"\x0a\xff")
        .is_err());
}

#[test]
fn extensions_are_found_by_extendee_and_number() {
    use prost_types::{field_descriptor_proto, DescriptorProto, FieldDescriptorProto};
    use ringrpc_reflection::v1::server_reflection_request::MessageRequest;
    use ringrpc_reflection::v1::server_reflection_response::MessageResponse;
    use ringrpc_reflection::v1::{ExtensionNumberResponse, ExtensionRequest};

    let extension = |name: &str, number: i32| FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(field_descriptor_proto::Label::Optional as i32),
        r#type: Some(field_descriptor_proto::Type::Int32 as i32),
        extendee: Some(".ext.Base".into()),
        ..Default::default()
    };
    let base = FileDescriptorProto {
        name: Some("base.proto".into()),
        package: Some("ext".into()),
        syntax: Some("proto2".into()),
        message_type: vec![DescriptorProto {
            name: Some("Base".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let more = FileDescriptorProto {
        name: Some("more.proto".into()),
        package: Some("ext".into()),
        syntax: Some("proto2".into()),
        dependency: vec!["base.proto".into()],
        extension: vec![extension("weight", 100), extension("height", 7)],
        ..Default::default()
    };
    let reflection = ringrpc_reflection::Builder::new()
        .register_files([base, more])
        .build();
    let ask = |request| {
        reflection
            .answer(ringrpc_reflection::v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(request),
            })
            .message_response
            .unwrap()
    };

    let MessageResponse::AllExtensionNumbersResponse(numbers) =
        ask(MessageRequest::AllExtensionNumbersOfType("ext.Base".into()))
    else {
        panic!("no extension numbers");
    };
    assert_eq!(
        numbers,
        ExtensionNumberResponse {
            base_type_name: "ext.Base".into(),
            extension_number: vec![7, 100],
        }
    );

    let MessageResponse::FileDescriptorResponse(files) =
        ask(MessageRequest::FileContainingExtension(ExtensionRequest {
            containing_type: "ext.Base".into(),
            extension_number: 100,
        }))
    else {
        panic!("no file for the extension");
    };
    let names: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|b| {
            FileDescriptorProto::decode(b.as_slice())
                .unwrap()
                .name()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["more.proto", "base.proto"]);

    for request in [
        MessageRequest::FileContainingExtension(ExtensionRequest {
            containing_type: "ext.Base".into(),
            extension_number: 8,
        }),
        MessageRequest::AllExtensionNumbersOfType("ext.Missing".into()),
        // Not a message type.
        MessageRequest::AllExtensionNumbersOfType("ext.weight".into()),
    ] {
        let MessageResponse::ErrorResponse(error) = ask(request) else {
            panic!("no error");
        };
        assert_eq!(error.error_code, tonic::Code::NotFound as i32);
    }
}
