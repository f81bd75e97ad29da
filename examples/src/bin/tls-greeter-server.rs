//! helloworld.Greeter over TLS, optionally with mutual TLS.
//!
//! ```text
//! tls-greeter-server --cert server.pem --key server.key [--client-ca ca.pem]
//! tls-greeter-server --gen-certs DIR [--client-ca DIR/ca.pem]
//! ```
//!
//! `--gen-certs DIR` first writes a throwaway CA and certificates signed by it
//! into DIR (`ca.pem`, `server.pem` and `server.key` for `localhost` and
//! 127.0.0.1, `client.pem` and `client.key` for a client), then serves with the
//! server's pair unless `--cert`/`--key` name others. `--client-ca` requires
//! clients to present a certificate that CA signed. Handlers greet a client that
//! did by its certificate's size, to show that they see it.
//!
//! Also takes the common flags (`--host`, `--port`, `--workers`); prints
//! `listening on ADDR` once serving and drains on SIGTERM or Ctrl-C.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use ringrpc_engine::{ClientAuth, Server, TlsConfig};
use ringrpc_examples::server::helloworld::greeter_server::{Greeter, GreeterServer};
use ringrpc_examples::server::helloworld::{HelloReply, HelloRequest};
use ringrpc_examples::Flags;
use ringrpc_service_api::{Request, Response, Status};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let client = match request.peer_certificates().and_then(|chain| chain.first()) {
            Some(der) => format!(" (client certificate of {} bytes)", der.len()),
            None => String::new(),
        };
        let name = request.into_inner().name;
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}!{client}"),
        }))
    }
}

fn main() {
    if let Err(error) = run() {
        eprintln!("tls-greeter-server: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let flags = Flags::parse();
    let generated = flags.get("--gen-certs").map(PathBuf::from);
    if let Some(dir) = &generated {
        generate_certificates(dir)?;
    }
    let pair = match (flags.get("--cert"), flags.get("--key"), &generated) {
        (Some(cert), Some(key), _) => (PathBuf::from(cert), PathBuf::from(key)),
        (None, None, Some(dir)) => (dir.join("server.pem"), dir.join("server.key")),
        _ => {
            eprintln!(
                "usage: tls-greeter-server (--cert FILE --key FILE | --gen-certs DIR) \
                 [--client-ca FILE] [--host H] [--port P] [--workers N]"
            );
            std::process::exit(2);
        }
    };
    let mut tls = TlsConfig::from_pem_files(&pair.0, &pair.1)?;
    if let Some(ca) = flags.get("--client-ca") {
        tls = tls.client_ca_pem_file(ca, ClientAuth::Required)?;
    }
    let server = Server::builder()
        .config(flags.engine_config())
        .add_service(|| GreeterServer::new(MyGreeter))
        .serve_tls(flags.addr(), tls)?;
    println!("listening on {}", server.local_addr());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), std::io::Error>(())
    })?;
    eprintln!("shutting down: draining in-flight calls");
    server.shutdown_and_wait();
    Ok(())
}

/// A CA, a server certificate for `localhost` and 127.0.0.1 and a client
/// certificate, both signed by the CA, as PEM files in `dir`. For local tests
/// only: the CA's key is thrown away, and the keys are written unencrypted.
fn generate_certificates(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "tls-greeter-server test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca.self_signed(&ca_key)?;

    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server = server.signed_by(&server_key, &ca, &ca_key)?;

    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, "tls-greeter client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate()?;
    let client = client.signed_by(&client_key, &ca, &ca_key)?;

    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("server.pem"), server.pem())?;
    write_private(&dir.join("server.key"), &server_key.serialize_pem())?;
    std::fs::write(dir.join("client.pem"), client.pem())?;
    write_private(&dir.join("client.key"), &client_key.serialize_pem())?;
    Ok(())
}

/// Writes a key readable by its owner only.
fn write_private(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(pem.as_bytes())
}
