//! HTTP/2 connections (plain TCP, prior knowledge) and the calls the scenarios
//! make on them.

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::net::TcpStream;

use crate::grpc::{check_head, check_status, CallError, MessageScanner, RequestHead};

/// Stream and connection flow-control windows the client advertises: large
/// enough that a server streaming at memory speed over loopback is not held
/// back by the client's window updates.
pub const WINDOW: u32 = 4 * 1024 * 1024;

/// The server to load.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// `host:port` as given, for `:authority`.
    pub authority: String,
}

impl Target {
    /// Resolves `host:port` (the first address it resolves to).
    pub fn resolve(host_port: &str) -> io::Result<Target> {
        let addr = host_port.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host_port} resolves to no address"),
            )
        })?;
        Ok(Target {
            addr,
            authority: host_port.to_owned(),
        })
    }

    /// The target at `addr`.
    pub fn at(addr: SocketAddr) -> Target {
        Target {
            addr,
            authority: addr.to_string(),
        }
    }
}

/// One HTTP/2 connection; its driver runs as a task on the current `LocalSet`.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Opens streams. Clones share the connection.
    pub send: SendRequest<Bytes>,
    closed: Rc<Cell<bool>>,
}

impl Connection {
    /// Whether the connection has ended (closed by either side or failed).
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }
}

/// Connects over TCP (with `TCP_NODELAY`) and starts HTTP/2 with prior
/// knowledge. Must run inside a `LocalSet`: the connection's driver is
/// spawned on it.
pub async fn connect(target: &Target) -> Result<Connection, CallError> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(CallError::Connect)?;
    tcp.set_nodelay(true).map_err(CallError::Connect)?;
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .handshake::<_, Bytes>(tcp)
        .await?;
    let closed = Rc::new(Cell::new(false));
    let flag = closed.clone();
    tokio::task::spawn_local(async move {
        let _ = connection.await;
        flag.set(true);
    });
    Ok(Connection { send, closed })
}

/// A unary call prepared once per run and repeated: head, framed request,
/// expected reply.
#[derive(Debug, Clone)]
pub struct UnaryCall {
    /// Request head.
    pub head: RequestHead,
    /// The framed request message.
    pub body: Bytes,
    /// The reply message expected, unframed.
    pub reply: Bytes,
}

/// Waits until the connection may open another stream.
pub async fn ready(send: &mut SendRequest<Bytes>) -> Result<(), CallError> {
    poll_fn(|cx| send.poll_ready(cx)).await?;
    Ok(())
}

/// Makes one unary call and checks its reply and status.
///
/// Cost beyond h2's own: the request head's clone (two small allocations) and
/// a scan of the reply's first bytes.
pub async fn unary(send: &mut SendRequest<Bytes>, call: &UnaryCall) -> Result<(), CallError> {
    ready(send).await?;
    let (response, mut request_body) = send.send_request(call.head.request(), false)?;
    request_body.send_data(call.body.clone(), true)?;
    let (head, mut body) = response.await?.into_parts();
    if check_head(&head)? {
        return Err(CallError::MessageCount { got: 0, want: 1 });
    }
    let mut scanner = MessageScanner::new(call.reply.clone());
    let mut messages = 0;
    while let Some(data) = body.data().await {
        let data = data?;
        body.flow_control().release_capacity(data.len())?;
        messages += scanner.push(&data)?;
    }
    scanner.finish()?;
    match body.trailers().await? {
        Some(trailers) => check_status(&trailers)?,
        None => return Err(CallError::MissingStatus),
    }
    if messages != 1 {
        return Err(CallError::MessageCount {
            got: messages,
            want: 1,
        });
    }
    Ok(())
}
