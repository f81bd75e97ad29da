//! gRPC server reflection for ringrpc servers: `grpc.reflection.v1` and the
//! older `grpc.reflection.v1alpha` (still what many clients ask for), answered
//! from the descriptor sets the code generator embeds.
//!
//! ```ignore
//! let reflection = ringrpc_reflection::Builder::new()
//!     .register(helloworld::FILE_DESCRIPTOR_SET)?
//!     .register(ringrpc_health::FILE_DESCRIPTOR_SET)?
//!     .build();
//! let server = Server::builder()
//!     .add_service(|| GreeterServer::new(MyGreeter))
//!     .add_service(reflection.v1())
//!     .add_service(reflection.v1alpha())
//!     .serve(addr)?;
//! ```
//!
//! # What is answered
//!
//! - `list_services`: every service in the registered sets, the reflection
//!   services themselves included.
//! - `file_by_filename`, `file_containing_symbol` (services, methods, messages,
//!   enums and enum values, nested types, fields, extensions): the file and
//!   everything it imports, transitively, each file once, the requested one
//!   first.
//! - `file_containing_extension`, `all_extension_numbers_of_type`: from the
//!   extensions declared in the registered files.
//! - Unknown names get an `error_response` with NOT_FOUND; a request without a
//!   query gets INVALID_ARGUMENT. Errors answer the one request; the stream
//!   stays open.

#![deny(missing_docs)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use prost::Message;
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet};
use ringrpc_service_api::{Code, Request, ResponseSink, Status, Streaming};

/// `grpc.reflection.v1`: messages and server glue.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/grpc.reflection.v1.rs"));
}

/// `grpc.reflection.v1alpha`: messages and server glue.
#[allow(missing_docs, clippy::all)]
pub mod v1alpha {
    include!(concat!(env!("OUT_DIR"), "/grpc.reflection.v1alpha.rs"));
}

use v1::server_reflection_request::MessageRequest;
use v1::server_reflection_response::MessageResponse;

/// The encoded `FileDescriptorSet` of both reflection protos; always served.
pub const FILE_DESCRIPTOR_SET: &[u8] = v1::FILE_DESCRIPTOR_SET;

/// A registered descriptor set did not decode.
#[derive(Debug)]
pub struct InvalidDescriptorSet(prost::DecodeError);

impl fmt::Display for InvalidDescriptorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid file descriptor set: {}", self.0)
    }
}

impl std::error::Error for InvalidDescriptorSet {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Collects descriptor sets; [`build`](Self::build) indexes them.
#[derive(Debug, Clone)]
pub struct Builder {
    files: Vec<FileDescriptorProto>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder already holding the reflection protos.
    pub fn new() -> Builder {
        let own = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET)
            .expect("the embedded reflection descriptors decode");
        Builder { files: own.file }
    }

    /// Adds the files of an encoded `FileDescriptorSet`, such as a generated
    /// package's `FILE_DESCRIPTOR_SET`. A file registered twice (a shared import)
    /// is kept once: the first registration wins.
    pub fn register(mut self, encoded: &[u8]) -> Result<Builder, InvalidDescriptorSet> {
        let set = FileDescriptorSet::decode(encoded).map_err(InvalidDescriptorSet)?;
        self.files.extend(set.file);
        Ok(self)
    }

    /// Adds already decoded files.
    pub fn register_files(mut self, files: impl IntoIterator<Item = FileDescriptorProto>) -> Self {
        self.files.extend(files);
        self
    }

    /// Indexes the registered files.
    pub fn build(self) -> Reflection {
        Reflection {
            index: Arc::new(Index::new(self.files)),
        }
    }
}

/// The indexed descriptors, shared by every worker's copy of the services.
#[derive(Clone)]
pub struct Reflection {
    index: Arc<Index>,
}

impl fmt::Debug for Reflection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reflection")
            .field("services", &self.index.services)
            .finish_non_exhaustive()
    }
}

impl Reflection {
    /// The factory of the `grpc.reflection.v1` service for `add_service`.
    pub fn v1(
        &self,
    ) -> impl Fn() -> v1::server_reflection_server::ServerReflectionServer<ReflectionService>
           + Send
           + Sync
           + 'static {
        let index = self.index.clone();
        move || {
            v1::server_reflection_server::ServerReflectionServer::new(ReflectionService {
                index: index.clone(),
            })
        }
    }

    /// The factory of the `grpc.reflection.v1alpha` service for `add_service`.
    pub fn v1alpha(
        &self,
    ) -> impl Fn() -> v1alpha::server_reflection_server::ServerReflectionServer<ReflectionService>
           + Send
           + Sync
           + 'static {
        let index = self.index.clone();
        move || {
            v1alpha::server_reflection_server::ServerReflectionServer::new(ReflectionService {
                index: index.clone(),
            })
        }
    }

    /// The fully-qualified names of the services listed, sorted.
    pub fn services(&self) -> &[String] {
        &self.index.services
    }

    /// Answers one request, as the services do. Both versions share the v1
    /// message types' encoding.
    pub fn answer(&self, request: v1::ServerReflectionRequest) -> v1::ServerReflectionResponse {
        self.index.answer(request)
    }
}

/// The handlers of both reflection versions.
#[derive(Clone)]
pub struct ReflectionService {
    index: Arc<Index>,
}

impl fmt::Debug for ReflectionService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReflectionService")
    }
}

impl v1::server_reflection_server::ServerReflection for ReflectionService {
    async fn server_reflection_info(
        &self,
        request: Request<Streaming<v1::ServerReflectionRequest>>,
        mut responses: ResponseSink<v1::ServerReflectionResponse>,
    ) -> Result<(), Status> {
        let mut requests = request.into_inner();
        while let Some(request) = requests.message().await? {
            responses.send(self.index.answer(request)).await?;
        }
        Ok(())
    }
}

impl v1alpha::server_reflection_server::ServerReflection for ReflectionService {
    async fn server_reflection_info(
        &self,
        request: Request<Streaming<v1alpha::ServerReflectionRequest>>,
        mut responses: ResponseSink<v1alpha::ServerReflectionResponse>,
    ) -> Result<(), Status> {
        let mut requests = request.into_inner();
        while let Some(request) = requests.message().await? {
            // The two versions differ only in their package name: same fields,
            // same numbers, so re-encoding converts.
            let request = v1::ServerReflectionRequest::decode(request.encode_to_vec().as_slice())
                .map_err(|e| Status::internal(e.to_string()))?;
            let response = self.index.answer(request);
            let response =
                v1alpha::ServerReflectionResponse::decode(response.encode_to_vec().as_slice())
                    .map_err(|e| Status::internal(e.to_string()))?;
            responses.send(response).await?;
        }
        Ok(())
    }
}

/// Files by name and symbols by fully-qualified name.
struct Index {
    /// Name → (encoded file, its direct imports).
    files: HashMap<String, (Vec<u8>, Vec<String>)>,
    /// Fully-qualified symbol (no leading dot) → file name.
    symbols: HashMap<String, String>,
    /// Fully-qualified message types, the only valid extendees.
    messages: BTreeSet<String>,
    /// (extendee without leading dot, number) → file name.
    extensions: BTreeMap<(String, i32), String>,
    services: Vec<String>,
}

fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

impl Index {
    fn new(files: Vec<FileDescriptorProto>) -> Index {
        let mut index = Index {
            files: HashMap::new(),
            symbols: HashMap::new(),
            messages: BTreeSet::new(),
            extensions: BTreeMap::new(),
            services: Vec::new(),
        };
        let mut services = BTreeSet::new();
        for file in files {
            let name = file.name().to_owned();
            if index.files.contains_key(&name) {
                continue;
            }
            let package = file.package();
            for service in &file.service {
                let full = qualify(package, service.name());
                for method in &service.method {
                    index.add_symbol(qualify(&full, method.name()), &name);
                }
                services.insert(full.clone());
                index.add_symbol(full, &name);
            }
            for message in &file.message_type {
                index.add_message(package, message, &name);
            }
            for enumeration in &file.enum_type {
                index.add_enum(package, enumeration, &name);
            }
            for extension in &file.extension {
                index.add_extension(package, extension, &name);
            }
            index
                .files
                .insert(name, (file.encode_to_vec(), file.dependency.clone()));
        }
        index.services = services.into_iter().collect();
        index
    }

    fn add_symbol(&mut self, symbol: String, file: &str) {
        self.symbols
            .entry(symbol)
            .or_insert_with(|| file.to_owned());
    }

    fn add_message(&mut self, scope: &str, message: &DescriptorProto, file: &str) {
        let full = qualify(scope, message.name());
        for field in &message.field {
            self.add_symbol(qualify(&full, field.name()), file);
        }
        for oneof in &message.oneof_decl {
            self.add_symbol(qualify(&full, oneof.name()), file);
        }
        for nested in &message.nested_type {
            self.add_message(&full, nested, file);
        }
        for enumeration in &message.enum_type {
            self.add_enum(&full, enumeration, file);
        }
        for extension in &message.extension {
            self.add_extension(&full, extension, file);
        }
        self.messages.insert(full.clone());
        self.add_symbol(full, file);
    }

    fn add_enum(
        &mut self,
        scope: &str,
        enumeration: &prost_types::EnumDescriptorProto,
        file: &str,
    ) {
        // Enum values are scoped like siblings of their enum, as in C++.
        for value in &enumeration.value {
            self.add_symbol(qualify(scope, value.name()), file);
        }
        self.add_symbol(qualify(scope, enumeration.name()), file);
    }

    fn add_extension(&mut self, scope: &str, extension: &FieldDescriptorProto, file: &str) {
        self.add_symbol(qualify(scope, extension.name()), file);
        let extendee = extension.extendee().trim_start_matches('.').to_owned();
        self.extensions
            .entry((extendee, extension.number()))
            .or_insert_with(|| file.to_owned());
    }

    /// `name` and its transitive imports, each once, `name` first.
    fn file_with_imports(&self, name: &str) -> Option<v1::FileDescriptorResponse> {
        self.files.get(name)?;
        let mut seen = BTreeSet::new();
        let mut pending = vec![name.to_owned()];
        let mut out = Vec::new();
        while let Some(next) = pending.pop() {
            if !seen.insert(next.clone()) {
                continue;
            }
            // An import missing from the registered sets is skipped: the client
            // gets what there is and reports the gap itself.
            if let Some((encoded, imports)) = self.files.get(&next) {
                out.push(encoded.clone());
                pending.extend(imports.iter().rev().cloned());
            }
        }
        Some(v1::FileDescriptorResponse {
            file_descriptor_proto: out,
        })
    }

    fn answer(&self, request: v1::ServerReflectionRequest) -> v1::ServerReflectionResponse {
        let response = match &request.message_request {
            None => error(Code::InvalidArgument, "no request".to_owned()),
            Some(MessageRequest::ListServices(_)) => {
                MessageResponse::ListServicesResponse(v1::ListServiceResponse {
                    service: self
                        .services
                        .iter()
                        .map(|name| v1::ServiceResponse { name: name.clone() })
                        .collect(),
                })
            }
            Some(MessageRequest::FileByFilename(name)) => match self.file_with_imports(name) {
                Some(files) => MessageResponse::FileDescriptorResponse(files),
                None => error(Code::NotFound, format!("file not found: {name}")),
            },
            Some(MessageRequest::FileContainingSymbol(symbol)) => {
                let symbol = symbol.trim_start_matches('.');
                match self
                    .symbols
                    .get(symbol)
                    .and_then(|file| self.file_with_imports(file))
                {
                    Some(files) => MessageResponse::FileDescriptorResponse(files),
                    None => error(Code::NotFound, format!("symbol not found: {symbol}")),
                }
            }
            Some(MessageRequest::FileContainingExtension(request)) => {
                let key = (
                    request.containing_type.trim_start_matches('.').to_owned(),
                    request.extension_number,
                );
                match self
                    .extensions
                    .get(&key)
                    .and_then(|file| self.file_with_imports(file))
                {
                    Some(files) => MessageResponse::FileDescriptorResponse(files),
                    None => error(
                        Code::NotFound,
                        format!("extension not found: {} {}", key.0, key.1),
                    ),
                }
            }
            Some(MessageRequest::AllExtensionNumbersOfType(name)) => {
                let name = name.trim_start_matches('.');
                if self.messages.contains(name) {
                    MessageResponse::AllExtensionNumbersResponse(v1::ExtensionNumberResponse {
                        base_type_name: name.to_owned(),
                        extension_number: self
                            .extensions
                            .range((name.to_owned(), i32::MIN)..=(name.to_owned(), i32::MAX))
                            .map(|((_, number), _)| *number)
                            .collect(),
                    })
                } else {
                    error(Code::NotFound, format!("message type not found: {name}"))
                }
            }
        };
        v1::ServerReflectionResponse {
            valid_host: request.host.clone(),
            original_request: Some(request),
            message_response: Some(response),
        }
    }
}

fn error(code: Code, message: String) -> MessageResponse {
    MessageResponse::ErrorResponse(v1::ErrorResponse {
        error_code: code.as_i32(),
        error_message: message,
    })
}
