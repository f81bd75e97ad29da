//! TLS for the engine's listeners: rustls's connection state machine, driven over
//! the same owned-buffer reads and writes as a plaintext connection, on either
//! backend.
//!
//! rustls's buffered connection API does no I/O of its own: ciphertext goes in
//! through `read_tls` from a byte slice and comes out through `write_tls` into any
//! `io::Write`. So a TLS connection reads ciphertext into a pooled buffer (the ring
//! owns it while the kernel fills it), hands the bytes to rustls and appends the
//! plaintext to the codec's input buffer; the codec's output is encrypted through
//! `writer()` and collected with `write_tls` into an owned buffer, which the ring
//! writes. No extra thread, no `AsyncRead`/`AsyncWrite` wrapper.
//!
//! Copies are the ones the buffered API makes: ciphertext into rustls's record
//! buffer, plaintext out of it into the codec's buffer; on the way out, plaintext
//! into a record and the sealed record into the outgoing buffer.
//!
//! The handshake runs before the connection's reader and writer start, within
//! `codec.handshake_timeout` of the accept (the same budget then covers the HTTP/2
//! preface: a client gets one deadline to reach a working connection). A client
//! that is too slow, speaks something else, fails certificate checks or does not
//! negotiate `h2` is logged at debug level, counted in
//! [`Counters::tls_handshake_failures`](crate::Counters::tls_handshake_failures)
//! and disconnected.
//!
//! The crypto provider is rustls's `ring` one: it builds with a C compiler alone,
//! where aws-lc-rs needs cmake (and nasm on some targets) at build time. A ready
//! `ServerConfig` ([`TlsConfig::from_rustls`]) may use any provider.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use ringrpc_service_api::PeerCertificates;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use crate::conn::{self, Shared};
use crate::io::{Socket, Transport};
use crate::worker::WorkerContext;

/// The only application protocol gRPC runs over TLS (RFC 9113 §3.2).
const ALPN_H2: &[u8] = b"h2";

/// Bytes a sealed record adds to its payload, at most: a 5-byte header, the
/// content type and the AEAD tag (TLS 1.3), or the explicit nonce and tag
/// (TLS 1.2 AES-GCM); rounded up.
const RECORD_OVERHEAD: usize = 64;

/// Largest plaintext of one TLS record (RFC 8446 §5.1).
const MAX_RECORD_PAYLOAD: usize = 16 * 1024;

/// Whether a server with a client CA insists on a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Clients without a certificate signed by the CA fail the handshake.
    Required,
    /// Clients may present no certificate (handlers then see
    /// `peer_certificates() == None`); one they present must be signed by the CA.
    Optional,
}

/// The TLS settings of a listener ([`ServerBuilder::listen_tls`],
/// [`ServerBuilder::serve_tls`]): the server's certificate chain and private key,
/// and optionally the CA that client certificates must chain to (mutual TLS).
///
/// TLS 1.3 and 1.2 are offered, and ALPN offers `h2` only: gRPC over TLS is
/// HTTP/2 negotiated with ALPN (RFC 9113 §3.2), every gRPC client offers it, and a
/// client that does not negotiate `h2` is disconnected after the handshake.
///
/// ```ignore
/// let tls = TlsConfig::from_pem_files("server.pem", "server.key")?
///     .client_ca_pem_file("ca.pem", ClientAuth::Required)?; // mutual TLS
/// Server::builder().add_service(..).serve_tls(addr, tls)?;
/// ```
///
/// [`ServerBuilder::listen_tls`]: crate::ServerBuilder::listen_tls
/// [`ServerBuilder::serve_tls`]: crate::ServerBuilder::serve_tls
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
    /// What `server` was built from, to build it again with a client CA; `None`
    /// for a ready config given by the caller.
    identity: Option<Arc<Identity>>,
}

struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl TlsConfig {
    /// The server's certificate chain (its own certificate first, then the
    /// intermediates) and its private key (PKCS#8, PKCS#1 or SEC1), as PEM text.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<TlsConfig, TlsError> {
        let chain = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(TlsError::Pem)?;
        let key = match PrivateKeyDer::from_pem_slice(key) {
            Ok(key) => key,
            Err(rustls::pki_types::pem::Error::NoItemsFound) => return Err(TlsError::NoPrivateKey),
            Err(error) => return Err(TlsError::Pem(error)),
        };
        TlsConfig::from_der(chain, key)
    }

    /// [`TlsConfig::from_pem`] with the PEM text read from two files.
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsConfig, TlsError> {
        TlsConfig::from_pem(&read(chain.as_ref())?, &read(key.as_ref())?)
    }

    /// The server's certificate chain and private key, DER-encoded.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsConfig, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let identity = Arc::new(Identity { chain, key });
        Ok(TlsConfig {
            server: build(&identity, None)?,
            identity: Some(identity),
        })
    }

    /// A rustls configuration built by the caller, for what the other
    /// constructors do not cover (a certificate resolver for SNI, another
    /// crypto provider, session tickets). Its `alpn_protocols` must offer `h2`;
    /// when it offers nothing, `h2` is set.
    pub fn from_rustls(config: Arc<ServerConfig>) -> Result<TlsConfig, TlsError> {
        let mut server = config;
        if server.alpn_protocols.is_empty() {
            Arc::make_mut(&mut server).alpn_protocols = vec![ALPN_H2.to_vec()];
        } else if !server.alpn_protocols.iter().any(|p| p == ALPN_H2) {
            return Err(TlsError::NoH2Alpn);
        }
        Ok(TlsConfig {
            server,
            identity: None,
        })
    }

    /// Mutual TLS: clients authenticate with a certificate that chains to one of
    /// the CA certificates in `pem`. Handlers and interceptors see the chain the
    /// client presented (`CallContext::peer_certificates`).
    pub fn client_ca_pem(self, pem: &[u8], auth: ClientAuth) -> Result<TlsConfig, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots
                .add(cert.map_err(TlsError::Pem)?)
                .map_err(TlsError::Rustls)?;
        }
        self.client_ca_roots(roots, auth)
    }

    /// [`TlsConfig::client_ca_pem`] with the PEM text read from a file.
    pub fn client_ca_pem_file(
        self,
        path: impl AsRef<Path>,
        auth: ClientAuth,
    ) -> Result<TlsConfig, TlsError> {
        let pem = read(path.as_ref())?;
        self.client_ca_pem(&pem, auth)
    }

    /// Mutual TLS with the trust anchors in `roots`.
    pub fn client_ca_roots(
        self,
        roots: RootCertStore,
        auth: ClientAuth,
    ) -> Result<TlsConfig, TlsError> {
        if roots.is_empty() {
            return Err(TlsError::NoClientCa);
        }
        let Some(identity) = self.identity else {
            return Err(TlsError::ReadyConfig);
        };
        Ok(TlsConfig {
            server: build(&identity, Some((Arc::new(roots), auth)))?,
            identity: Some(identity),
        })
    }

    /// The rustls configuration connections are made with.
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.server
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("alpn_protocols", &self.server.alpn_protocols)
            .field("from_rustls", &self.identity.is_none())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A rustls server configuration on the `ring` provider: TLS 1.3 and 1.2, ALPN
/// `h2`, and client certificates checked against `client` if given.
fn build(
    identity: &Identity,
    client: Option<(Arc<RootCertStore>, ClientAuth)>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Rustls)?;
    let builder = match client {
        None => builder.with_no_client_auth(),
        Some((roots, auth)) => {
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            if auth == ClientAuth::Optional {
                verifier = verifier.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(verifier.build().map_err(TlsError::ClientCa)?)
        }
    };
    let mut config = builder
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(TlsError::Rustls)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// Why a [`TlsConfig`] could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// PEM text that does not parse.
    Pem(rustls::pki_types::pem::Error),
    /// The certificate chain is empty.
    NoCertificate,
    /// No private key in the key PEM.
    NoPrivateKey,
    /// No CA certificate for client authentication.
    NoClientCa,
    /// rustls refused a certificate or key (e.g. a key that does not match the
    /// certificate, or of a type the crypto provider does not support).
    Rustls(rustls::Error),
    /// The client CA cannot verify certificates.
    ClientCa(VerifierBuilderError),
    /// A ready rustls configuration whose ALPN protocols do not include `h2`.
    NoH2Alpn,
    /// A client CA cannot be added to a configuration from
    /// [`TlsConfig::from_rustls`]: set its client verifier there.
    ReadyConfig,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            TlsError::Pem(error) => write!(f, "bad PEM: {error}"),
            TlsError::NoCertificate => f.write_str("no certificate in the certificate chain"),
            TlsError::NoPrivateKey => f.write_str("no private key in the key PEM"),
            TlsError::NoClientCa => f.write_str("no CA certificate for client authentication"),
            TlsError::Rustls(error) => write!(f, "rustls refused the configuration: {error}"),
            TlsError::ClientCa(error) => write!(f, "cannot verify client certificates: {error}"),
            TlsError::NoH2Alpn => {
                f.write_str("the rustls configuration's ALPN protocols do not include h2")
            }
            TlsError::ReadyConfig => f.write_str(
                "a client CA cannot be added to a ready rustls configuration; set its verifier there",
            ),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Read { source, .. } => Some(source),
            TlsError::Pem(error) => Some(error),
            TlsError::Rustls(error) => Some(error),
            TlsError::ClientCa(error) => Some(error),
            _ => None,
        }
    }
}

impl From<TlsError> for io::Error {
    fn from(error: TlsError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

/// Why a handshake did not lead to a connection.
#[derive(Debug)]
enum HandshakeError {
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// The client closed the connection mid-handshake.
    Closed,
    /// Not done within the handshake timeout.
    TimedOut,
    /// rustls rejected what the client sent (not TLS, no shared cipher suite,
    /// a missing or untrusted client certificate...); the alert saying so was
    /// sent.
    Tls(rustls::Error),
    /// The client did not negotiate `h2` with ALPN.
    NotH2(Option<Vec<u8>>),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Io(error) => write!(f, "I/O error: {error}"),
            HandshakeError::Closed => f.write_str("closed by the client"),
            HandshakeError::TimedOut => f.write_str("timed out"),
            HandshakeError::Tls(error) => write!(f, "{error}"),
            HandshakeError::NotH2(None) => f.write_str("the client negotiated no ALPN protocol"),
            HandshakeError::NotH2(Some(protocol)) => write!(
                f,
                "the client negotiated ALPN {:?}, not h2",
                String::from_utf8_lossy(protocol)
            ),
        }
    }
}

/// Runs a TLS connection: the handshake, then the connection driver over it.
pub(crate) async fn serve(
    socket: Socket,
    config: Arc<ServerConfig>,
    shared: Rc<Shared>,
    worker: Rc<WorkerContext>,
    peer: Option<SocketAddr>,
) {
    match accept(socket, config, worker.clone()).await {
        Ok((stream, certificates)) => {
            if let Some(certificates) = certificates {
                shared.set_peer_certificates(certificates);
            }
            conn::serve(stream, shared).await;
        }
        Err(error) => {
            worker.stats.tls_handshake_failed();
            tracing::debug!(?peer, %error, "TLS handshake failed");
        }
    }
}

/// The handshake, within the handshake timeout; the socket is shut down when it
/// fails.
async fn accept(
    socket: Socket,
    config: Arc<ServerConfig>,
    worker: Rc<WorkerContext>,
) -> Result<(TlsStream, Option<PeerCertificates>), HandshakeError> {
    let deadline = Instant::now() + worker.config.codec.handshake_timeout;
    let mut tls = ServerConnection::new(config).map_err(HandshakeError::Tls)?;
    let mut incoming = worker.take_buffer();
    let mut outgoing = worker.take_buffer();
    let handshake = handshake(&socket, &mut tls, &mut incoming, &mut outgoing, &worker);
    let result = match tokio::time::timeout_at(deadline.into(), handshake).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::TimedOut),
    };
    let result = result.and_then(|read| match tls.alpn_protocol() {
        Some(ALPN_H2) => Ok(read),
        other => Err(HandshakeError::NotH2(other.map(<[u8]>::to_vec))),
    });
    let read = match result {
        Ok(read) => read,
        Err(error) => {
            // Ends a read the timeout left pending in the ring, so the descriptor
            // closes now rather than when the client next sends something.
            socket.shutdown();
            worker.give_back_buffer(incoming);
            worker.give_back_buffer(outgoing);
            return Err(error);
        }
    };
    let certificates = tls.peer_certificates().map(|chain| {
        let chain: Vec<Bytes> = chain
            .iter()
            .map(|der| Bytes::copy_from_slice(der))
            .collect();
        PeerCertificates::new(chain)
    });
    let stream = TlsStream {
        socket,
        tls: RefCell::new(tls),
        incoming: Cell::new(incoming),
        spare: Cell::new(outgoing),
        unreported: Cell::new(read),
        peer_closed: Cell::new(false),
        write_closed: Cell::new(false),
        worker,
    };
    Ok((stream, certificates))
}

/// Drives the handshake to its end; returns the bytes read from the socket. What
/// the client sent after its last handshake message is left, as ciphertext in
/// `incoming` and as plaintext inside `tls`, for the connection's first read.
async fn handshake(
    socket: &Socket,
    tls: &mut ServerConnection,
    incoming: &mut BytesMut,
    outgoing: &mut BytesMut,
    worker: &WorkerContext,
) -> Result<usize, HandshakeError> {
    let read_size = worker.config.read_buffer_size;
    let mut read = 0;
    loop {
        if tls.wants_write() {
            flush(socket, tls, outgoing, worker).await?;
        }
        if !tls.is_handshaking() {
            return Ok(read);
        }
        let (result, buf) = socket.read(std::mem::take(incoming), read_size).await;
        *incoming = buf;
        match result {
            Ok(0) => return Err(HandshakeError::Closed),
            Ok(n) => read += n,
            Err(error) => return Err(HandshakeError::Io(error)),
        }
        if let Err(error) = feed_handshake(tls, incoming) {
            if tls.wants_write() {
                // The alert that tells the client why.
                let _ = flush(socket, tls, outgoing, worker).await;
            }
            return Err(error);
        }
    }
}

/// Hands `incoming` to rustls until it is used up or the handshake is done.
fn feed_handshake(
    tls: &mut ServerConnection,
    incoming: &mut BytesMut,
) -> Result<(), HandshakeError> {
    while !incoming.is_empty() && tls.is_handshaking() {
        let mut input = &incoming[..];
        let taken = tls.read_tls(&mut input).map_err(HandshakeError::Io)?;
        if taken == 0 {
            // A close_notify: rustls reads nothing more.
            return Err(HandshakeError::Closed);
        }
        incoming.advance(taken);
        tls.process_new_packets().map_err(HandshakeError::Tls)?;
    }
    Ok(())
}

/// Writes every record rustls has queued.
async fn flush(
    socket: &Socket,
    tls: &mut ServerConnection,
    outgoing: &mut BytesMut,
    worker: &WorkerContext,
) -> Result<(), HandshakeError> {
    outgoing.clear();
    collect_records(tls, outgoing).map_err(HandshakeError::Io)?;
    let (result, buf) = socket.write_all(std::mem::take(outgoing)).await;
    *outgoing = buf;
    result.map_err(HandshakeError::Io)?;
    worker.stats.bytes_written(outgoing.len());
    Ok(())
}

/// Appends every record rustls has queued to `out`.
fn collect_records(tls: &mut ServerConnection, out: &mut BytesMut) -> io::Result<()> {
    while tls.wants_write() {
        tls.write_tls(&mut Append(out))?;
    }
    Ok(())
}

/// `io::Write` into a `BytesMut`, for `write_tls`.
struct Append<'a>(&'a mut BytesMut);

impl Write for Append<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.0.reserve(len);
        for buf in bufs {
            self.0.extend_from_slice(buf);
        }
        Ok(len)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Moves the plaintext rustls has decrypted to the end of `plain`.
fn take_plaintext(tls: &mut ServerConnection, plain: &mut BytesMut) {
    let mut reader = tls.reader();
    while let Ok(chunk) = reader.fill_buf() {
        if chunk.is_empty() {
            break;
        }
        let len = chunk.len();
        plain.extend_from_slice(chunk);
        reader.consume(len);
    }
}

/// An established TLS connection: the socket and rustls's state, shared by the
/// connection's reader (which decrypts) and writer (which encrypts).
pub(crate) struct TlsStream {
    socket: Socket,
    tls: RefCell<ServerConnection>,
    /// Ciphertext read from the socket. Everything read is handed to rustls
    /// before the next read is awaited (rustls keeps a partial record itself),
    /// so a read dropped while pending loses no data.
    incoming: Cell<BytesMut>,
    /// The buffer the previous write went out of, for the next write's records.
    spare: Cell<BytesMut>,
    /// Bytes the handshake read, reported (with what they carried past the
    /// handshake) by the first read.
    unreported: Cell<usize>,
    /// The client sent close_notify: nothing more will be read.
    peer_closed: Cell<bool>,
    /// Nothing more may be sent: close_notify went out, or a fatal alert did.
    write_closed: Cell<bool>,
    worker: Rc<WorkerContext>,
}

impl TlsStream {
    /// Decrypts `incoming` (and whatever rustls holds already) into `plain`.
    fn open(&self, incoming: &[u8], plain: &mut BytesMut) -> io::Result<()> {
        let mut tls = self.tls.borrow_mut();
        take_plaintext(&mut tls, plain);
        let mut input = incoming;
        while !input.is_empty() {
            if tls.read_tls(&mut input)? == 0 {
                break;
            }
            let state = match tls.process_new_packets() {
                Ok(state) => state,
                Err(error) => {
                    // rustls queued a fatal alert; the writer sends it, and
                    // nothing after it.
                    self.write_closed.set(true);
                    tracing::debug!(%error, "TLS error; closing the connection");
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
            };
            plain.reserve(state.plaintext_bytes_to_read());
            take_plaintext(&mut tls, plain);
            if state.peer_has_closed() {
                self.peer_closed.set(true);
                break;
            }
        }
        Ok(())
    }
}

impl Transport for TlsStream {
    /// One socket read, decrypted. Returns the bytes read from the socket, so a
    /// read that carried only TLS records of its own (a key update) returns
    /// without plaintext, and the writer gets woken for any answer rustls has.
    async fn read(&self, mut buf: BytesMut, want: usize) -> (io::Result<usize>, BytesMut) {
        if self.peer_closed.get() {
            return (Ok(0), buf);
        }
        let mut incoming = self.incoming.take();
        let mut read = self.unreported.replace(0);
        if read == 0 {
            let (result, returned) = self.socket.read(incoming, want).await;
            incoming = returned;
            match result {
                Ok(n) if n > 0 => read = n,
                other => {
                    self.incoming.set(incoming);
                    return (other, buf);
                }
            }
        }
        let opened = self.open(&incoming, &mut buf);
        incoming.clear();
        self.incoming.set(incoming);
        (opened.map(|()| read), buf)
    }

    /// Encrypts `out` in place of itself (the records are written into the spare
    /// buffer, which then trades places with `out`), after any records rustls
    /// queued on its own, and ends with close_notify when `closing`.
    fn seal(&self, out: &mut BytesMut, closing: bool) -> io::Result<()> {
        let mut tls = self.tls.borrow_mut();
        let close = closing && out.is_empty() && !self.write_closed.get();
        if out.is_empty() && !close && !tls.wants_write() {
            return Ok(());
        }
        let mut records = self.spare.take();
        records.clear();
        let records_in = out.len().div_ceil(MAX_RECORD_PAYLOAD) + 1;
        records.reserve(out.len() + records_in * RECORD_OVERHEAD);
        let mut plain = &out[..];
        let result = loop {
            if let Err(error) = collect_records(&mut tls, &mut records) {
                break Err(error);
            }
            if plain.is_empty() {
                break Ok(());
            }
            // rustls bounds what it queues, so a large write takes turns with
            // collecting its records.
            match tls.writer().write(plain) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => plain = &plain[n..],
                Err(error) => break Err(error),
            }
        };
        let result = result.and_then(|()| {
            if close {
                self.write_closed.set(true);
                tls.send_close_notify();
                collect_records(&mut tls, &mut records)?;
            }
            Ok(())
        });
        std::mem::swap(out, &mut records);
        self.spare.set(records);
        result
    }

    async fn write_all(&self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        self.socket.write_all(buf).await
    }

    fn shutdown(&self) {
        self.socket.shutdown();
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        self.worker.give_back_buffer(self.incoming.take());
        self.worker.give_back_buffer(self.spare.take());
    }
}
