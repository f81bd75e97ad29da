//! TLS listeners on both backends: tonic's rustls client for calls of every
//! kind, mutual TLS (accepted and refused), plaintext and TLS listeners on one
//! server, and clients that never complete a handshake. A raw rustls client
//! covers what tonic does not let a test choose (TLS 1.2 only, ALPN).
//!
//! Certificates are made when the tests run (rcgen): a CA, a server certificate
//! for `localhost` and 127.0.0.1, a client certificate the CA signed and a
//! self-signed one the CA knows nothing of.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use ringrpc_engine::{
    Backend, ClientAuth, EngineConfig, Server, ServerBuilder, TlsConfig, TlsError,
};
use ringrpc_engine_e2e::client::test_service_client::TestServiceClient;
use ringrpc_engine_e2e::client::{Payload, StreamRequest};
use ringrpc_engine_e2e::server::test_service_server::{TestService, TestServiceServer};
use ringrpc_engine_e2e::server::{self as api, Summary};
use ringrpc_engine_e2e::{frame, runtime, unframe, Tester, BACKENDS};
use ringrpc_service_api::{InterceptRequest, Request, Response, ResponseSink, Status, Streaming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// PEM text of every certificate and key the tests use.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
    /// The CA-signed client certificate, DER: what handlers must see.
    client_der: Vec<u8>,
    /// Self-signed, so a server trusting only the CA refuses it.
    rogue_cert: String,
    rogue_key: String,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "ringrpc test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca.self_signed(&ca_key).unwrap();

        let leaf = |names: &[&str], purpose: ExtendedKeyUsagePurpose, name: &str| {
            let mut params =
                CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                    .unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![purpose];
            params
        };
        let server_key = KeyPair::generate().unwrap();
        let server = leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            "localhost",
        )
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = leaf(&[], ExtendedKeyUsagePurpose::ClientAuth, "test client")
            .signed_by(&client_key, &ca, &ca_key)
            .unwrap();
        let rogue_key = KeyPair::generate().unwrap();
        let rogue = leaf(&[], ExtendedKeyUsagePurpose::ClientAuth, "test client")
            .self_signed(&rogue_key)
            .unwrap();
        Pki {
            ca: ca.pem(),
            server_cert: server.pem(),
            server_key: server_key.serialize_pem(),
            client_cert: client.pem(),
            client_key: client_key.serialize_pem(),
            client_der: client.der().to_vec(),
            rogue_cert: rogue.pem(),
            rogue_key: rogue_key.serialize_pem(),
        }
    })
}

/// The server's TLS settings; with a client CA when `client_auth` is given.
fn tls(client_auth: Option<ClientAuth>) -> TlsConfig {
    let pki = pki();
    let tls = TlsConfig::from_pem(pki.server_cert.as_bytes(), pki.server_key.as_bytes()).unwrap();
    match client_auth {
        None => tls,
        Some(auth) => tls.client_ca_pem(pki.ca.as_bytes(), auth).unwrap(),
    }
}

fn builder(backend: Backend) -> ServerBuilder {
    Server::builder().config(EngineConfig {
        backend,
        workers: 2,
        shutdown_grace: Duration::from_secs(5),
        ..EngineConfig::default()
    })
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A tonic channel over TLS to `addr`, trusting the test CA, presenting
/// `identity` (certificate and key PEM) when given.
async fn tls_channel(
    addr: SocketAddr,
    identity: Option<(&str, &str)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki().ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

/// One unary call over a new TLS connection; what the handler put in the
/// response, or why the call failed (at the handshake or at the call: with
/// TLS 1.3 a refused client certificate surfaces at the first call).
async fn tls_unary(
    addr: SocketAddr,
    identity: Option<(&str, &str)>,
    body: &'static [u8],
) -> Result<tonic::Response<Payload>, String> {
    let channel = tls_channel(addr, identity)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    TestServiceClient::new(channel)
        .unary(Payload {
            body: Bytes::from_static(body),
        })
        .await
        .map_err(|status| format!("call: {status:?}"))
}

fn header<'a>(response: &'a tonic::Response<Payload>, name: &str) -> &'a str {
    response
        .metadata()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Reports in its unary response what the engine told the handler and the
/// interceptors about the client's certificates: the body is the client's own
/// certificate (DER; empty without one), `x-peer-certificates` the chain's
/// length, `x-intercepted` the length an interceptor saw.
struct PeerEcho;

impl TestService for PeerEcho {
    async fn unary(
        &self,
        request: Request<api::Payload>,
    ) -> Result<Response<api::Payload>, Status> {
        let chain = request.peer_certificates();
        let count = chain.map_or(0, <[Bytes]>::len);
        let leaf = chain.and_then(|c| c.first().cloned()).unwrap_or_default();
        // The context a handler may pass on carries the same chain.
        assert_eq!(request.context().peer_certificates(), chain);
        let intercepted = request
            .metadata()
            .get("x-intercepted")
            .unwrap_or("none")
            .to_owned();
        let mut response = Response::new(api::Payload { body: leaf });
        let headers = response.metadata_mut();
        headers
            .insert("x-peer-certificates", count.to_string())
            .unwrap();
        headers.insert("x-intercepted", intercepted).unwrap();
        Ok(response)
    }

    async fn server_stream(
        &self,
        _: Request<api::StreamRequest>,
        _: ResponseSink<api::Payload>,
    ) -> Result<(), Status> {
        Err(Status::unimplemented("unary only"))
    }

    async fn client_stream(
        &self,
        _: Request<Streaming<api::Payload>>,
    ) -> Result<Response<Summary>, Status> {
        Err(Status::unimplemented("unary only"))
    }

    async fn bidi(
        &self,
        _: Request<Streaming<api::Payload>>,
        _: ResponseSink<api::Payload>,
    ) -> Result<(), Status> {
        Err(Status::unimplemented("unary only"))
    }
}

/// A server with [`PeerEcho`] behind an interceptor that notes how many
/// certificates it saw.
fn peer_echo(backend: Backend) -> ServerBuilder {
    builder(backend)
        .interceptor(|| {
            |mut request: InterceptRequest| {
                let seen = request.peer_certificates().map_or(0, <[Bytes]>::len);
                request
                    .metadata_mut()
                    .insert("x-intercepted", seen.to_string())
                    .unwrap();
                Ok(request)
            }
        })
        .add_service(|| TestServiceServer::new(PeerEcho))
}

#[test]
fn unary_and_streaming_calls_over_tls() {
    for backend in BACKENDS {
        let server = builder(backend)
            .add_service(|| TestServiceServer::new(Tester))
            .serve_tls(any_port(), tls(None))
            .unwrap();
        let addr = server.local_addr();
        runtime().block_on(async {
            let channel = tls_channel(addr, None).await.unwrap();
            let mut client = TestServiceClient::new(channel)
                .max_decoding_message_size(8 << 20)
                .max_encoding_message_size(8 << 20);

            let reply = client
                .unary(Payload {
                    body: Bytes::from_static(b"over TLS"),
                })
                .await
                .unwrap();
            assert_eq!(&reply.get_ref().body[..], b"over TLS", "{backend:?}");

            // 2 MiB each way: many records, and far more than rustls queues
            // for sending at once.
            let big = Bytes::from((0..2 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
            let reply = client.unary(Payload { body: big.clone() }).await.unwrap();
            assert!(
                reply.get_ref().body == big,
                "{backend:?}: 2 MiB echo differs"
            );

            let mut stream = client
                .server_stream(StreamRequest {
                    count: 200,
                    size: 10_000,
                })
                .await
                .unwrap()
                .into_inner();
            let mut received = 0;
            while let Some(message) = stream.message().await.unwrap() {
                assert_eq!(message.body.len(), 10_000);
                received += 1;
            }
            assert_eq!(received, 200, "{backend:?}");

            let uploads = (0..64)
                .map(|_| Payload {
                    body: Bytes::from(vec![3u8; 32 * 1024]),
                })
                .collect();
            let summary = client
                .client_stream(stream_of(uploads))
                .await
                .unwrap()
                .into_inner();
            assert_eq!((summary.count, summary.bytes), (64, 64 * 32 * 1024));

            let pings: Vec<Payload> = (0..50u8)
                .map(|i| Payload {
                    body: Bytes::from(vec![i; 100]),
                })
                .collect();
            let mut echoes = client
                .bidi(stream_of(pings.clone()))
                .await
                .unwrap()
                .into_inner();
            let mut back = Vec::new();
            while let Some(message) = echoes.message().await.unwrap() {
                back.push(message);
            }
            assert_eq!(back, pings, "{backend:?}");
        });
        let stats = server.stats().total;
        assert_eq!(stats.tls_handshake_failures, 0, "{backend:?}");
        // Socket bytes, so ciphertext: more than the messages' plaintext (2 MiB
        // and 64 × 32 KiB in, 2 MiB and 200 × 10 000 bytes out).
        assert!(stats.bytes_read > 4 << 20, "{backend:?}: {stats:?}");
        assert!(
            stats.bytes_written > (2 << 20) + 2_000_000,
            "{backend:?}: {stats:?}"
        );
        server.shutdown_and_wait();
    }
}

/// `items` as a stream, for tonic's streaming requests.
fn stream_of(items: Vec<Payload>) -> impl futures_core::Stream<Item = Payload> + Send + 'static {
    struct Iter(std::vec::IntoIter<Payload>);
    impl futures_core::Stream for Iter {
        type Item = Payload;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Payload>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(items.into_iter())
}

/// A rustls client configuration trusting the test CA.
fn rustls_client(
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::CertificateDer::from_pem_slice(pki().ca.as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn rustls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

#[test]
fn tls_1_2_with_h2_works_and_other_alpn_is_refused() {
    for backend in BACKENDS {
        let server = builder(backend)
            .add_service(|| TestServiceServer::new(Tester))
            .serve_tls(any_port(), tls(None))
            .unwrap();
        let addr = server.local_addr();
        runtime().block_on(async {
            let config = rustls_client(&[&rustls::version::TLS12], &[b"h2"]);
            let tls = rustls_connect(addr, config).await.unwrap();
            assert_eq!(
                tls.get_ref().1.protocol_version(),
                Some(rustls::ProtocolVersion::TLSv1_2)
            );
            let ping = Payload {
                body: Bytes::from_static(b"TLS 1.2"),
            }
            .encode_to_vec();
            let (status, messages) = h2_unary(tls, &ping).await;
            assert_eq!(status, "0", "{backend:?}");
            assert_eq!(messages, vec![ping], "{backend:?}");

            // ALPN without h2: rustls answers no_application_protocol.
            let config = rustls_client(&[&rustls::version::TLS13], &[b"http/1.1"]);
            let error = rustls_connect(addr, config).await.err();
            assert!(
                error.is_some(),
                "{backend:?}: handshake without h2 succeeded"
            );

            // No ALPN at all: HTTP/2 over TLS requires it (RFC 9113 §3.2), so
            // the server hangs up right after the handshake.
            let config = rustls_client(&[&rustls::version::TLS13], &[]);
            let mut tls = rustls_connect(addr, config).await.unwrap();
            assert_closed(&mut tls, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        });
        assert_eq!(
            server.stats().total.tls_handshake_failures,
            2,
            "{backend:?}"
        );
        server.shutdown_and_wait();
    }
}

/// A unary TestService call with the `h2` client over `io`:
/// (grpc-status, response messages).
async fn h2_unary<T>(io: T, message: &[u8]) -> (String, Vec<Vec<u8>>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut client, connection) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::post("https://localhost/ringrpc.test.TestService/Unary")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.send_data(frame(false, message).into(), true).unwrap();
    let (head, mut body) = response.await.unwrap().into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap();
    let status = trailers
        .as_ref()
        .unwrap_or(&head.headers)
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, unframe(&data).into_iter().map(|(_, m)| m).collect())
}

/// Sends `bytes` and expects the server to close the connection (EOF or a
/// reset) within 5 s; returns how long that took.
async fn assert_closed<S>(stream: &mut S, bytes: &[u8]) -> Duration
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let start = Instant::now();
    // The server may already be gone: a failed write is a close too.
    let _ = stream.write_all(bytes).await;
    let mut sink = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => assert!(
            matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
            ),
            "{error:?}"
        ),
        Err(_) => panic!("the server left the connection open"),
    }
    start.elapsed()
}

#[test]
fn mutual_tls_accepts_a_ca_signed_client_and_handlers_see_its_certificate() {
    let pki = pki();
    for backend in BACKENDS {
        let server = peer_echo(backend)
            .serve_tls(any_port(), tls(Some(ClientAuth::Required)))
            .unwrap();
        let addr = server.local_addr();
        let reply = runtime()
            .block_on(tls_unary(
                addr,
                Some((&pki.client_cert, &pki.client_key)),
                b"",
            ))
            .unwrap();
        assert_eq!(
            reply.get_ref().body,
            pki.client_der,
            "{backend:?}: the handler saw another certificate"
        );
        assert_eq!(header(&reply, "x-peer-certificates"), "1", "{backend:?}");
        assert_eq!(header(&reply, "x-intercepted"), "1", "{backend:?}");
        assert_eq!(server.stats().total.tls_handshake_failures, 0);
        server.shutdown_and_wait();
    }
}

#[test]
fn mutual_tls_refuses_clients_without_a_certificate_from_the_ca() {
    let pki = pki();
    for backend in BACKENDS {
        let server = peer_echo(backend)
            .serve_tls(any_port(), tls(Some(ClientAuth::Required)))
            .unwrap();
        let addr = server.local_addr();
        runtime().block_on(async {
            let without = tls_unary(addr, None, b"no certificate").await;
            assert!(
                without.is_err(),
                "{backend:?}: served without a certificate"
            );
            let rogue = tls_unary(addr, Some((&pki.rogue_cert, &pki.rogue_key)), b"").await;
            assert!(
                rogue.is_err(),
                "{backend:?}: served a self-signed certificate"
            );
            // The right certificate still works on the same server.
            let good = tls_unary(addr, Some((&pki.client_cert, &pki.client_key)), b"").await;
            assert!(good.is_ok(), "{backend:?}: {good:?}");
        });
        // At least one refused handshake per client (tonic may try again).
        let failures = server.stats().total.tls_handshake_failures;
        assert!(failures >= 2, "{backend:?}: {failures} handshakes failed");
        server.shutdown_and_wait();
    }
}

#[test]
fn optional_client_auth_serves_anonymous_clients_and_still_checks_certificates() {
    let pki = pki();
    for backend in BACKENDS {
        let server = peer_echo(backend)
            .serve_tls(any_port(), tls(Some(ClientAuth::Optional)))
            .unwrap();
        let addr = server.local_addr();
        runtime().block_on(async {
            let anonymous = tls_unary(addr, None, b"").await.unwrap();
            assert_eq!(header(&anonymous, "x-peer-certificates"), "0");
            assert_eq!(header(&anonymous, "x-intercepted"), "0");
            assert!(anonymous.get_ref().body.is_empty());

            let known = tls_unary(addr, Some((&pki.client_cert, &pki.client_key)), b"")
                .await
                .unwrap();
            assert_eq!(known.get_ref().body, pki.client_der, "{backend:?}");

            let rogue = tls_unary(addr, Some((&pki.rogue_cert, &pki.rogue_key)), b"").await;
            assert!(
                rogue.is_err(),
                "{backend:?}: served a self-signed certificate"
            );
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn plaintext_and_tls_listeners_on_one_server() {
    let pki = pki();
    for backend in BACKENDS {
        let server = peer_echo(backend)
            .listen_tls(any_port(), tls(Some(ClientAuth::Required)))
            .listen(any_port())
            .start()
            .unwrap();
        let [tls_addr, plain_addr] = server.local_addrs() else {
            panic!("two listeners, got {:?}", server.local_addrs());
        };
        let (tls_addr, plain_addr) = (*tls_addr, *plain_addr);
        assert_ne!(tls_addr, plain_addr);
        assert_eq!(server.local_addr(), tls_addr);
        runtime().block_on(async {
            // At once, over both listeners.
            let secure = tls_unary(tls_addr, Some((&pki.client_cert, &pki.client_key)), b"");
            let plain = async {
                let mut client = ringrpc_engine_e2e::client(plain_addr).await;
                client
                    .unary(Payload {
                        body: Bytes::from_static(b"h2c"),
                    })
                    .await
                    .unwrap()
            };
            let (secure, plain) = tokio::join!(secure, plain);
            let secure = secure.unwrap();
            assert_eq!(secure.get_ref().body, pki.client_der, "{backend:?}");
            assert_eq!(header(&plain, "x-peer-certificates"), "0", "{backend:?}");
            assert_eq!(header(&plain, "x-intercepted"), "0", "{backend:?}");

            // Each port speaks only its own protocol.
            let mut tcp = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
            assert_closed(&mut tcp, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
            let refused = tls_unary(plain_addr, Some((&pki.client_cert, &pki.client_key)), b"");
            assert!(refused.await.is_err(), "{backend:?}: TLS on the h2c port");
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn clients_that_never_finish_a_handshake_are_closed() {
    for backend in BACKENDS {
        let timeout = Duration::from_millis(1500);
        let mut config = EngineConfig {
            backend,
            workers: 1,
            shutdown_grace: Duration::from_secs(5),
            ..EngineConfig::default()
        };
        config.codec.handshake_timeout = timeout;
        let server = Server::builder()
            .config(config)
            .add_service(|| TestServiceServer::new(Tester))
            .serve_tls(any_port(), tls(None))
            .unwrap();
        let addr = server.local_addr();
        runtime().block_on(async {
            // Plaintext HTTP/2 to the TLS port: not TLS, refused at once.
            let mut h2c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let took = assert_closed(&mut h2c, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
            assert!(
                took < timeout,
                "{backend:?}: not refused at once ({took:?})"
            );

            // Silent, and a ClientHello that stops after its first bytes: both
            // closed by the handshake timeout, at the same time.
            let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut partial = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (silent, partial) = tokio::join!(
                assert_closed(&mut silent, b""),
                assert_closed(&mut partial, &[0x16, 0x03, 0x01, 0x02]),
            );
            for took in [silent, partial] {
                assert!(
                    took >= timeout - Duration::from_millis(200),
                    "{backend:?}: closed after {took:?}, before the timeout"
                );
            }
        });
        let stats = server.stats().total;
        assert_eq!(stats.tls_handshake_failures, 3, "{backend:?}");
        assert_eq!(stats.active_connections, 0, "{backend:?}");
        server.shutdown_and_wait();
    }
}

/// A directory of its own under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("ringrpc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn tls_config_from_pem_files_and_what_it_refuses() {
    let pki = pki();
    let dir = TempDir::new("tls-config");
    let file = |name: &str, text: &str| {
        let path = dir.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cert = file("server.pem", &pki.server_cert);
    let key = file("server.key", &pki.server_key);
    let ca = file("ca.pem", &pki.ca);

    let config = TlsConfig::from_pem_files(&cert, &key)
        .unwrap()
        .client_ca_pem_file(&ca, ClientAuth::Required)
        .unwrap();
    assert_eq!(config.server_config().alpn_protocols, vec![b"h2".to_vec()]);
    let server = peer_echo(Backend::Epoll)
        .serve_tls(any_port(), config)
        .unwrap();
    let reply = runtime()
        .block_on(tls_unary(
            server.local_addr(),
            Some((&pki.client_cert, &pki.client_key)),
            b"",
        ))
        .unwrap();
    assert_eq!(reply.get_ref().body, pki.client_der);
    server.shutdown_and_wait();

    let missing = TlsConfig::from_pem_files(dir.0.join("nothing.pem"), &key);
    assert!(matches!(missing, Err(TlsError::Read { .. })), "{missing:?}");
    let no_key = TlsConfig::from_pem(pki.server_cert.as_bytes(), pki.server_cert.as_bytes());
    assert!(matches!(no_key, Err(TlsError::NoPrivateKey)), "{no_key:?}");
    let no_cert = TlsConfig::from_pem(b"", pki.server_key.as_bytes());
    assert!(
        matches!(no_cert, Err(TlsError::NoCertificate)),
        "{no_cert:?}"
    );
    let wrong_key = TlsConfig::from_pem(pki.server_cert.as_bytes(), pki.rogue_key.as_bytes());
    assert!(
        matches!(wrong_key, Err(TlsError::Rustls(_))),
        "{wrong_key:?}"
    );
    let no_ca = tls(None).client_ca_pem(b"", ClientAuth::Required);
    assert!(matches!(no_ca, Err(TlsError::NoClientCa)), "{no_ca:?}");

    // A ready rustls configuration: h2 is added when it names no protocol,
    // refused when it names others.
    let ready = || {
        let chain = rustls::pki_types::CertificateDer::pem_slice_iter(pki.server_cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap()
    };
    let config = TlsConfig::from_rustls(Arc::new(ready())).unwrap();
    assert_eq!(config.server_config().alpn_protocols, vec![b"h2".to_vec()]);
    let mut http1 = ready();
    http1.alpn_protocols = vec![b"http/1.1".to_vec()];
    let not_h2 = TlsConfig::from_rustls(Arc::new(http1));
    assert!(matches!(not_h2, Err(TlsError::NoH2Alpn)), "{not_h2:?}");
    let client_ca = config.client_ca_pem(pki.ca.as_bytes(), ClientAuth::Required);
    assert!(
        matches!(client_ca, Err(TlsError::ReadyConfig)),
        "{client_ca:?}"
    );
}
