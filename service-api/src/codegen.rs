//! Code generation from `.proto` files, for use from `build.rs`.
//!
//! Parsing is pure Rust ([protox]), so builds need no `protoc`. Messages come
//! from prost; for each service this module adds, next to its messages, a module
//! `<service>_server` holding a handler trait and a router:
//!
//! ```text
//! pub mod greeter_server {
//!     pub const SERVICE_NAME: &str = "helloworld.Greeter";
//!     pub trait Greeter: 'static {
//!         async fn say_hello(&self, request: Request<HelloRequest>)
//!             -> Result<Response<HelloReply>, Status>;
//!     }
//!     pub struct GreeterServer<T> { .. }   // implements server::Service
//! }
//! ```
//!
//! The four RPC kinds map to handler methods as follows:
//!
//! | proto                                  | handler signature                                        |
//! |----------------------------------------|----------------------------------------------------------|
//! | `rpc M(A) returns (B)`                 | `(&self, Request<A>) -> Result<Response<B>, Status>`     |
//! | `rpc M(A) returns (stream B)`          | `(&self, Request<A>, ResponseSink<B>) -> Result<(), Status>` |
//! | `rpc M(stream A) returns (B)`          | `(&self, Request<Streaming<A>>) -> Result<Response<B>, Status>` |
//! | `rpc M(stream A) returns (stream B)`   | `(&self, Request<Streaming<A>>, ResponseSink<B>) -> Result<(), Status>` |
//!
//! Each package module with services also gets
//! `pub const FILE_DESCRIPTOR_SET: &[u8]`: the encoded
//! `google.protobuf.FileDescriptorSet` of every compiled file and its imports
//! (embedded with `include_bytes!` from a `<package>.fds.bin` written next to the
//! generated file), which is what server reflection serves.
//!
//! Handler methods are `async fn`s without a `Send` bound: each worker core runs
//! its own copy of a service, so handlers may hold `Rc` and `RefCell`.
//!
//! # Usage
//!
//! ```no_run
//! // build.rs
//! fn main() -> std::io::Result<()> {
//!     ringrpc_service_api::codegen::compile_protos(&["proto/helloworld.proto"], &["proto"])
//! }
//! ```
//!
//! ```ignore
//! // src/lib.rs: one file per proto package, named after it.
//! pub mod helloworld {
//!     include!(concat!(env!("OUT_DIR"), "/helloworld.rs"));
//! }
//! ```
//!
//! Package modules must mirror the proto package hierarchy (`a.b` in
//! `a::b`), because types of other packages are referred to by relative paths.
//! Messages refer to prost through this crate, so the user crate needs no
//! `prost` dependency of its own. `google.protobuf.Empty` becomes `()`, other
//! well-known types come from `prost-types` unless
//! [`Builder::compile_well_known_types`] is set.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use heck::{ToSnakeCase, ToUpperCamelCase};

/// How generated messages reach prost: through this crate's re-export.
const PROST_PATH: &str = "::ringrpc_service_api::__codegen::prost";

/// The crate generated services refer to.
const API: &str = "::ringrpc_service_api";

/// Compiles `protos` (found in `includes`) into `OUT_DIR`, one `<package>.rs`
/// per proto package (`_.rs` for files without a package), with server glue for
/// every service. Call it from `build.rs`.
///
/// Equivalent to `configure().compile(protos, includes)`.
pub fn compile_protos(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> io::Result<()> {
    configure().compile(protos, includes)
}

/// A [`Builder`] with the defaults of [`compile_protos`].
pub fn configure() -> Builder {
    Builder {
        out_dir: None,
        file_descriptor_set_path: None,
        build_server: true,
        bytes: Vec::new(),
        extern_paths: Vec::new(),
        compile_well_known_types: false,
    }
}

/// Options for code generation; made by [`configure`].
#[derive(Debug, Clone)]
pub struct Builder {
    out_dir: Option<PathBuf>,
    file_descriptor_set_path: Option<PathBuf>,
    build_server: bool,
    bytes: Vec<String>,
    extern_paths: Vec<(String, String)>,
    compile_well_known_types: bool,
}

impl Builder {
    /// Generates `bytes` fields under these proto paths (e.g. `"."` for all,
    /// `".pkg.Msg"`, `".pkg.Msg.field"`) as `Bytes` instead of `Vec<u8>`.
    /// Decoding then slices the received buffer instead of copying it.
    pub fn bytes<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.bytes
            .extend(paths.into_iter().map(|p| p.as_ref().to_owned()));
        self
    }

    /// Where the generated files go, instead of `OUT_DIR`. Created if missing.
    pub fn out_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(path.into());
        self
    }

    /// Also writes the encoded `FileDescriptorSet` of the compiled files and their
    /// imports, with source info, to `path` (for server reflection). A relative
    /// path is relative to the working directory: in `build.rs`, the package root;
    /// usually this is a file in `OUT_DIR`.
    pub fn file_descriptor_set_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.file_descriptor_set_path = Some(path.into());
        self
    }

    /// Whether to generate the server glue (default `true`); without it, only
    /// messages are generated.
    pub fn build_server(mut self, enable: bool) -> Self {
        self.build_server = enable;
        self
    }

    /// Uses an existing Rust type for the proto type or package `proto_path`
    /// (fully qualified, with a leading dot) instead of generating one. The Rust
    /// path should be absolute (`::other_crate::pkg`, `crate::pkg`): generated
    /// services use it as given, from a module nested in the package module.
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Generates the `google.protobuf` types used by the protos (into
    /// `google.protobuf.rs`) instead of taking them from `prost-types` and
    /// mapping `Empty` to `()`.
    pub fn compile_well_known_types(mut self) -> Self {
        self.compile_well_known_types = true;
        self
    }

    /// Compiles `protos`, found in `includes`, with these options.
    pub fn compile(
        self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> io::Result<()> {
        self.compile_with_config(prost_build::Config::new(), protos, includes)
    }

    /// Like [`compile`](Self::compile), starting from a prost configuration for
    /// options this builder does not cover (attributes, map types, ...). Set
    /// extern paths and well-known types here, not on `config`: the generated
    /// services need to know where message types live.
    pub fn compile_with_config(
        self,
        mut config: prost_build::Config,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> io::Result<()> {
        let mut compiler = protox::Compiler::new(includes).map_err(protox_error)?;
        compiler.include_source_info(true).include_imports(true);
        compiler.open_files(protos).map_err(protox_error)?;

        // Every file read from disk, imports included: a change to any of them
        // changes the output.
        for file in compiler.files() {
            if let Some(path) = file.path() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }

        if let Some(path) = &self.file_descriptor_set_path {
            create_parent(path)?;
            std::fs::write(path, compiler.encode_file_descriptor_set())?;
        }

        let out_dir = match &self.out_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                config.out_dir(dir);
                dir.clone()
            }
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        "OUT_DIR is not set: call from build.rs or set Builder::out_dir",
                    )
                })?,
        };
        config.prost_path(PROST_PATH);
        config.bytes(&self.bytes);
        for (proto_path, rust_path) in &self.extern_paths {
            config.extern_path(proto_path, rust_path);
        }
        if self.compile_well_known_types {
            config.compile_well_known_types();
        }
        let mut extern_prefixes: Vec<String> = self
            .extern_paths
            .iter()
            .map(|(proto, _)| proto.clone())
            .collect();
        if !self.compile_well_known_types {
            extern_prefixes.push(".google.protobuf".to_owned());
        }
        // Every package with services embeds the descriptor set (prost calls
        // `finalize_package` for exactly those), written next to its Rust file.
        let descriptor_set = compiler.encode_file_descriptor_set();
        for file in &compiler.file_descriptor_set().file {
            if !file.service.is_empty() {
                std::fs::write(
                    out_dir.join(descriptor_set_file(file.package())),
                    &descriptor_set,
                )?;
            }
        }
        // Always installed: besides the service glue it embeds the descriptor set.
        config.service_generator(Box::new(ServiceGenerator {
            extern_prefixes,
            build_server: self.build_server,
        }));
        config.compile_fds(compiler.file_descriptor_set())
    }
}

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent),
        _ => Ok(()),
    }
}

/// protox's `Debug` output is the useful one: it names the file, line and column.
fn protox_error(error: protox::Error) -> io::Error {
    let kind = if error.is_file_not_found() {
        io::ErrorKind::NotFound
    } else {
        io::ErrorKind::InvalidInput
    };
    io::Error::new(kind, format!("{error:?}"))
}

/// Plugs into prost-build: renders each service prost finds, and gives each
/// package with services its `FILE_DESCRIPTOR_SET`.
struct ServiceGenerator {
    /// Proto paths mapped to existing Rust types; their Rust paths are used as given.
    extern_prefixes: Vec<String>,
    build_server: bool,
}

/// The descriptor set's file for `package`, named like prost's Rust file for it
/// so one package's set cannot overwrite another's.
fn descriptor_set_file(package: &str) -> String {
    format!("{}.fds.bin", if package.is_empty() { "_" } else { package })
}

impl prost_build::ServiceGenerator for ServiceGenerator {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        if self.build_server {
            ServiceModel::from_prost(&service, &self.extern_prefixes).render(buf);
        }
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        let file = descriptor_set_file(package);
        // A relative path resolves against the file holding the macro, i.e. the
        // generated file, wherever it is included from.
        let _ = write!(
            buf,
            r#"
/// The encoded `google.protobuf.FileDescriptorSet` of the compiled `.proto`
/// files and everything they import, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("{file}");
"#
        );
    }
}

/// What the generated code needs to know about a service, independent of prost.
#[derive(Debug)]
struct ServiceModel {
    /// `package.Service`, or `Service` without a package: what clients put in the path.
    full_name: String,
    /// The module holding the glue, `<service>_server`.
    module: String,
    /// The handler trait.
    trait_name: String,
    /// The router struct implementing `server::Service`.
    server_name: String,
    /// Rendered `///` lines for the trait.
    docs: String,
    methods: Vec<MethodModel>,
}

#[derive(Debug)]
struct MethodModel {
    /// The method name on the wire.
    proto_name: String,
    /// The handler method: snake case, keywords escaped.
    rust_name: String,
    /// Message types, as paths valid inside the service module.
    input: String,
    output: String,
    kind: Kind,
    /// Rendered `///` lines.
    docs: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unary,
    ServerStreaming,
    ClientStreaming,
    Bidi,
}

impl Kind {
    fn new(client_streaming: bool, server_streaming: bool) -> Kind {
        match (client_streaming, server_streaming) {
            (false, false) => Kind::Unary,
            (false, true) => Kind::ServerStreaming,
            (true, false) => Kind::ClientStreaming,
            (true, true) => Kind::Bidi,
        }
    }

    /// The glue function in `server` running this kind.
    fn glue(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::ServerStreaming => "server_streaming",
            Kind::ClientStreaming => "client_streaming",
            Kind::Bidi => "bidi_streaming",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::ServerStreaming => "server streaming",
            Kind::ClientStreaming => "client streaming",
            Kind::Bidi => "bidirectional streaming",
        }
    }

    fn has_sink(self) -> bool {
        matches!(self, Kind::ServerStreaming | Kind::Bidi)
    }

    fn has_stream(self) -> bool {
        matches!(self, Kind::ClientStreaming | Kind::Bidi)
    }
}

impl ServiceModel {
    fn from_prost(service: &prost_build::Service, extern_prefixes: &[String]) -> ServiceModel {
        let full_name = if service.package.is_empty() {
            service.proto_name.clone()
        } else {
            format!("{}.{}", service.package, service.proto_name)
        };
        let camel = service.proto_name.to_upper_camel_case();
        let mut docs = String::new();
        service.comments.append_with_indent(1, &mut docs);
        if service.comments.leading.is_empty() && service.comments.trailing.is_empty() {
            docs.push_str(&format!("    /// Handlers for `{full_name}`.\n"));
        }
        let methods = service
            .methods
            .iter()
            .map(|method| {
                let kind = Kind::new(method.client_streaming, method.server_streaming);
                let mut docs = String::new();
                method.comments.append_with_indent(2, &mut docs);
                if method.comments.leading.is_empty() && method.comments.trailing.is_empty() {
                    docs.push_str(&format!(
                        "        /// `{}` ({}).\n",
                        method.proto_name,
                        kind.describe()
                    ));
                }
                MethodModel {
                    proto_name: method.proto_name.clone(),
                    rust_name: rust_ident(&method.proto_name.to_snake_case()),
                    input: message_path(
                        &method.input_type,
                        &method.input_proto_type,
                        extern_prefixes,
                    ),
                    output: message_path(
                        &method.output_type,
                        &method.output_proto_type,
                        extern_prefixes,
                    ),
                    kind,
                    docs,
                }
            })
            .collect();
        ServiceModel {
            full_name,
            module: format!("{}_server", service.proto_name.to_snake_case()),
            trait_name: rust_ident(&camel),
            server_name: format!("{camel}Server"),
            docs,
            methods,
        }
    }

    fn render(&self, buf: &mut String) {
        let ServiceModel {
            full_name,
            module,
            trait_name,
            server_name,
            docs,
            methods,
        } = self;
        // A service named `T` must not be shadowed by the generic parameter.
        let t = if trait_name == "T" { "Handler" } else { "T" };
        // Everything is spelled with absolute paths and message types through
        // `super::`, so no proto name (a message `Result`, a service `Box`) can
        // shadow what the glue means. `async_fn_in_trait` warns that callers
        // cannot require the futures to be `Send`, which is the point here; the
        // clippy groups are allowed because a router for a large service trips
        // size lints users cannot act on.
        let _ = write!(
            buf,
            r#"
/// Server side of `{full_name}`: the handler trait [`{module}::{trait_name}`] and the router [`{module}::{server_name}`].
pub mod {module} {{
    #![allow(async_fn_in_trait, clippy::all, clippy::pedantic, clippy::nursery)]

    /// The fully-qualified service name.
    pub const SERVICE_NAME: &str = "{full_name}";

{docs}    ///
    /// Handlers need not be `Send`: each worker core has its own copy.
    pub trait {trait_name}: 'static {{
"#
        );
        for method in methods {
            let request = if method.kind.has_stream() {
                format!("{API}::Request<{API}::Streaming<{}>>", method.input)
            } else {
                format!("{API}::Request<{}>", method.input)
            };
            let (sink, returns) = if method.kind.has_sink() {
                (
                    format!(", responses: {API}::ResponseSink<{}>", method.output),
                    "()".to_owned(),
                )
            } else {
                (String::new(), format!("{API}::Response<{}>", method.output))
            };
            let _ = writeln!(
                buf,
                "{docs}        async fn {name}(&self, request: {request}{sink}) -> ::core::result::Result<{returns}, {API}::Status>;",
                docs = method.docs,
                name = method.rust_name,
            );
        }
        let _ = write!(
            buf,
            r#"    }}

    /// Routes calls of `{full_name}` to a [`{trait_name}`]. Cloning shares the handler; the engine
    /// keeps one per worker core.
    pub struct {server_name}<{t}> {{
        inner: ::std::rc::Rc<{t}>,
    }}

    impl<{t}: {trait_name}> {server_name}<{t}> {{
        /// Serves `inner`.
        pub fn new(inner: {t}) -> Self {{
            Self::from_rc(::std::rc::Rc::new(inner))
        }}

        /// Serves a handler shared with other code on this core.
        pub const fn from_rc(inner: ::std::rc::Rc<{t}>) -> Self {{
            Self {{ inner }}
        }}
    }}

    impl<{t}> ::core::clone::Clone for {server_name}<{t}> {{
        fn clone(&self) -> Self {{
            Self {{ inner: ::std::rc::Rc::clone(&self.inner) }}
        }}
    }}

    impl<{t}> ::core::fmt::Debug for {server_name}<{t}> {{
        fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{
            f.write_str("{server_name}")
        }}
    }}

    impl<{t}: {trait_name}> {API}::server::Service for {server_name}<{t}> {{
        fn name(&self) -> &'static str {{
            SERVICE_NAME
        }}

        fn call(&self, method: &[u8], call: {API}::Call, slot: ::core::pin::Pin<&mut {API}::server::CallSlot>) -> bool {{
"#
        );
        if methods.is_empty() {
            buf.push_str("            let _ = (method, call, slot);\n            false\n");
        } else {
            buf.push_str("            match method {\n");
            for method in methods {
                let (params, args) = if method.kind.has_sink() {
                    ("request, responses", "request, responses")
                } else {
                    ("request", "request")
                };
                let _ = write!(
                    buf,
                    r#"                b"{proto}" => {{
                    let inner = ::std::rc::Rc::clone(&self.inner);
                    slot.put_with(move || {API}::server::{glue}(call, move |{params}| async move {{
                        <{t} as {trait_name}>::{name}(&inner, {args}).await
                    }}));
                    true
                }}
"#,
                    proto = method.proto_name,
                    glue = method.kind.glue(),
                    name = method.rust_name,
                );
            }
            buf.push_str("                _ => false,\n            }\n");
        }
        buf.push_str("        }\n    }\n}\n");
    }
}

/// The Rust path of a method's message type as seen from the service module.
///
/// prost resolves local types relative to the package module; the service module
/// sits one level below it, so those paths need one more `super::`. Types mapped
/// elsewhere (extern paths, `prost-types`, `()` for `Empty`) are used as given.
fn message_path(rust_path: &str, proto_type: &str, extern_prefixes: &[String]) -> String {
    let is_extern = extern_prefixes.iter().any(|prefix| {
        proto_type
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    });
    if is_extern {
        rust_path.to_owned()
    } else {
        format!("super::{rust_path}")
    }
}

/// Makes `ident` usable as an identifier: keywords become raw identifiers, and
/// those that cannot be raw (`self`, `Self`, `super`, `crate`, `extern`, `_`)
/// get a trailing underscore.
fn rust_ident(ident: &str) -> String {
    match ident {
        "self" | "Self" | "super" | "crate" | "extern" | "_" => format!("{ident}_"),
        "as" | "break" | "const" | "continue" | "else" | "enum" | "false" | "fn" | "for" | "if"
        | "impl" | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub" | "ref"
        | "return" | "static" | "struct" | "trait" | "true" | "type" | "unsafe" | "use"
        | "where" | "while" | "async" | "await" | "dyn" | "abstract" | "become" | "box" | "do"
        | "final" | "macro" | "override" | "priv" | "typeof" | "unsized" | "virtual" | "yield"
        | "try" | "gen" => format!("r#{ident}"),
        _ => ident.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_become_raw_or_suffixed() {
        assert_eq!(rust_ident(&"Type".to_snake_case()), "r#type");
        assert_eq!(rust_ident(&"Match".to_snake_case()), "r#match");
        assert_eq!(rust_ident(&"Async".to_snake_case()), "r#async");
        assert_eq!(rust_ident(&"Self".to_snake_case()), "self_");
        assert_eq!(rust_ident(&"Super".to_snake_case()), "super_");
        assert_eq!(rust_ident(&"Crate".to_snake_case()), "crate_");
        assert_eq!(rust_ident("Self"), "Self_");
        assert_eq!(rust_ident(&"SayHello".to_snake_case()), "say_hello");
    }

    #[test]
    fn local_types_get_one_more_super() {
        let externs = vec![".google.protobuf".to_owned(), ".shared".to_owned()];
        assert_eq!(
            message_path("HelloRequest", ".helloworld.HelloRequest", &externs),
            "super::HelloRequest"
        );
        assert_eq!(
            message_path("super::pkg_a::Item", ".pkg_a.Item", &externs),
            "super::super::pkg_a::Item"
        );
        assert_eq!(
            message_path("outer::Inner", ".pkg.Outer.Inner", &externs),
            "super::outer::Inner"
        );
        assert_eq!(message_path("()", ".google.protobuf.Empty", &externs), "()");
        assert_eq!(
            message_path("crate::shared::X", ".shared.X", &externs),
            "crate::shared::X"
        );
        // A package merely starting with an extern prefix is still local.
        assert_eq!(
            message_path("super::shared_more::X", ".shared_more.X", &externs),
            "super::super::shared_more::X"
        );
    }
}
