//! The soak's client: connections made with the `h2` crate, each running a few
//! call loops that pick every call's kind and fate from a seeded PRNG.
//!
//! A connection lives for a random number of calls and then closes gracefully,
//! unless one of its calls is a planned disconnect: that call starts, and once it
//! is under way the whole connection is dropped (half the time with a TCP reset)
//! while the other loops' calls are in flight too. Either way the driver then
//! opens a new connection, until the soak has issued all its RPCs.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderMap, HeaderValue, Method, Uri};
use prost::Message;
use tokio::task::JoinHandle;

use crate::rng::Rng;
use crate::service::helloworld::{HelloReply, HelloRequest};
use crate::service::ringrpc::bench::{Chunk, StreamDownRequest, UpSummary};
use crate::service::SLEEP_HEADER;

/// How a call ended, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `grpc-status: 0` and the expected response.
    Ok,
    /// The client reset the stream with CANCEL.
    Cancelled,
    /// `grpc-status: 4` from the server's deadline.
    DeadlineExceeded,
    /// The connection was dropped while the call was in flight.
    Disconnected,
}

/// The RPC kinds.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Unary,
    ServerStream,
    ClientStream,
    Bidi,
}

/// What a call is meant to go through.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Plan {
    /// Run to completion.
    Normal,
    /// Reset with CANCEL once the handler is running.
    Cancel,
    /// A `grpc-timeout` of a few milliseconds, with a handler that sleeps longer.
    Deadline,
    /// Once the call is under way, drop its connection.
    Disconnect,
}

impl Plan {
    fn expected(self) -> Outcome {
        match self {
            Plan::Normal => Outcome::Ok,
            Plan::Cancel => Outcome::Cancelled,
            Plan::Deadline => Outcome::DeadlineExceeded,
            Plan::Disconnect => Outcome::Disconnected,
        }
    }
}

/// How often each plan is picked, per 1,000 calls; the rest are normal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Calls reset with CANCEL mid-way. Default 120.
    pub cancel: u64,
    /// Calls whose deadline expires while the handler sleeps. Default 120.
    pub deadline: u64,
    /// Calls whose connection is dropped under them (and with them every call
    /// in flight on it). Default 2.
    pub disconnect: u64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            cancel: 120,
            deadline: 120,
            disconnect: 2,
        }
    }
}

impl Mix {
    /// Picks a call's plan and kind; kinds are 55% unary, 15% each streaming
    /// kind.
    fn pick(&self, rng: &mut Rng) -> (Kind, Plan) {
        let n = rng.below(1000);
        let plan = if n < self.disconnect {
            Plan::Disconnect
        } else if n < self.disconnect + self.cancel {
            Plan::Cancel
        } else if n < self.disconnect + self.cancel + self.deadline {
            Plan::Deadline
        } else {
            Plan::Normal
        };
        let kind = match rng.below(100) {
            0..55 => Kind::Unary,
            55..70 => Kind::ServerStream,
            70..85 => Kind::ClientStream,
            _ => Kind::Bidi,
        };
        (kind, plan)
    }
}

/// Counters shared by all client threads and the monitor.
pub(crate) struct Tally {
    target: u64,
    issued: AtomicU64,
    pub(crate) completed: AtomicU64,
    /// Set when the time cap passes: issue no more calls.
    pub(crate) stop: AtomicBool,
    outcomes: [AtomicU64; 4],
    unexpected: AtomicU64,
    plans: [AtomicU64; 4],
    connections: AtomicU64,
    /// Abrupt disconnects: [with FIN, with RST].
    drops: [AtomicU64; 2],
    /// The first few unexpected results, for the report.
    samples: Mutex<Vec<String>>,
}

/// Unexpected results kept word for word.
const SAMPLES: usize = 10;

/// A snapshot of [`Tally`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCounts {
    /// RPCs started.
    pub issued: u64,
    /// Calls that ended OK.
    pub ok: u64,
    /// Calls the client cancelled.
    pub cancelled: u64,
    /// Calls that ended with DEADLINE_EXCEEDED.
    pub deadline_exceeded: u64,
    /// Calls cut short by a dropped connection.
    pub disconnected: u64,
    /// Calls that ended otherwise than planned (a wrong status, a wrong response,
    /// an HTTP/2 error on a connection the client did not drop), plus connections
    /// that failed to open or to close.
    pub unexpected: u64,
    /// Calls planned as normal, cancelled, deadline-exceeded, disconnect.
    pub planned: [u64; 4],
    /// Connections opened.
    pub connections: u64,
    /// Connections dropped abruptly with FIN.
    pub dropped_fin: u64,
    /// Connections dropped abruptly with RST.
    pub dropped_rst: u64,
    /// The first unexpected results.
    pub samples: Vec<String>,
}

impl Tally {
    pub(crate) fn new(target: u64) -> Tally {
        Tally {
            target,
            issued: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            outcomes: Default::default(),
            unexpected: AtomicU64::new(0),
            plans: Default::default(),
            connections: AtomicU64::new(0),
            drops: Default::default(),
            samples: Mutex::new(Vec::new()),
        }
    }

    /// Claims one RPC of the target; false once all are issued or time is up.
    fn take_ticket(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && self
                .issued
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < self.target).then_some(n + 1)
                })
                .is_ok()
    }

    fn exhausted(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.issued.load(Ordering::Relaxed) >= self.target
    }

    fn outcome(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// A call that ended unexpectedly (`call` true) or a connection that failed.
    fn unexpected(&self, what: String, call: bool) {
        self.unexpected.fetch_add(1, Ordering::Relaxed);
        if call {
            self.completed.fetch_add(1, Ordering::Relaxed);
        }
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() < SAMPLES {
            samples.push(what);
        }
    }

    pub(crate) fn counts(&self) -> ClientCounts {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        ClientCounts {
            issued: get(&self.issued),
            ok: get(&self.outcomes[Outcome::Ok as usize]),
            cancelled: get(&self.outcomes[Outcome::Cancelled as usize]),
            deadline_exceeded: get(&self.outcomes[Outcome::DeadlineExceeded as usize]),
            disconnected: get(&self.outcomes[Outcome::Disconnected as usize]),
            unexpected: get(&self.unexpected),
            planned: self.plans.each_ref().map(get),
            connections: get(&self.connections),
            dropped_fin: get(&self.drops[0]),
            dropped_rst: get(&self.drops[1]),
            samples: self
                .samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// What a call can fail with.
enum CallError {
    H2(h2::Error),
    /// The server answered, but not as it should have.
    Wrong(String),
}

impl From<h2::Error> for CallError {
    fn from(error: h2::Error) -> Self {
        CallError::H2(error)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::H2(error) => write!(f, "HTTP/2 error: {error}"),
            CallError::Wrong(what) => f.write_str(what),
        }
    }
}

fn wrong(what: impl Into<String>) -> CallError {
    CallError::Wrong(what.into())
}

/// What one client thread shares between its connections.
pub(crate) struct Client {
    pub(crate) addr: SocketAddr,
    pub(crate) tally: std::sync::Arc<Tally>,
    /// Most calls one connection runs at once.
    pub(crate) max_streams: u64,
    pub(crate) mix: Mix,
    say_hello: Uri,
    stream_down: Uri,
    stream_up: Uri,
    ping_pong: Uri,
    /// Request payloads are slices of this.
    payload: Bytes,
}

impl Client {
    pub(crate) fn new(
        addr: SocketAddr,
        tally: std::sync::Arc<Tally>,
        max_streams: u64,
        mix: Mix,
    ) -> Client {
        let uri =
            |path: &str| -> Uri { format!("http://{addr}{path}").parse().expect("a valid URI") };
        Client {
            addr,
            tally,
            max_streams,
            mix,
            say_hello: uri("/helloworld.Greeter/SayHello"),
            stream_down: uri("/ringrpc.bench.Bench/StreamDown"),
            stream_up: uri("/ringrpc.bench.Bench/StreamUp"),
            ping_pong: uri("/ringrpc.bench.Bench/PingPong"),
            payload: Bytes::from(vec![0x3c; 4096]),
        }
    }

    fn uri(&self, kind: Kind) -> Uri {
        match kind {
            Kind::Unary => self.say_hello.clone(),
            Kind::ServerStream => self.stream_down.clone(),
            Kind::ClientStream => self.stream_up.clone(),
            Kind::Bidi => self.ping_pong.clone(),
        }
    }

    /// A `Chunk` request message of `size` payload bytes, framed.
    fn chunk(&self, size: usize) -> Bytes {
        frame(&Chunk {
            payload: self.payload.slice(..size.min(self.payload.len())),
        })
    }
}

/// `message` with its 5-byte gRPC prefix.
fn frame(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut out = Vec::with_capacity(5 + len);
    out.push(0);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    message.encode(&mut out).expect("a Vec grows");
    out.into()
}

/// The one message of a unary response body.
fn unframe<M: Message + Default>(body: &[u8]) -> Result<M, CallError> {
    let message = body
        .get(5..)
        .filter(|m| {
            body[0] == 0
                && m.len() == u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize
        })
        .ok_or_else(|| wrong(format!("not one uncompressed message: {body:?}")))?;
    M::decode(message).map_err(|e| wrong(format!("undecodable response: {e}")))
}

/// One open connection.
struct Connection {
    send: RefCell<Option<SendRequest<Bytes>>>,
    task: RefCell<Option<JoinHandle<Result<(), h2::Error>>>>,
    /// A second descriptor of the socket, so SO_LINGER can be set on it before
    /// an abrupt drop. It keeps the socket open: dropped right after the h2 side.
    socket: RefCell<Option<std::net::TcpStream>>,
    /// The client dropped this connection on purpose.
    aborted: Cell<bool>,
    /// Calls this connection still makes before closing gracefully.
    budget: Cell<u64>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Result<Rc<Connection>, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let std = tcp.into_std().map_err(|e| format!("into_std: {e}"))?;
        let second = std.try_clone().map_err(|e| format!("dup: {e}"))?;
        let tcp = tokio::net::TcpStream::from_std(std).map_err(|e| format!("from_std: {e}"))?;
        let (send, connection) = h2::client::handshake(tcp)
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        let task = tokio::task::spawn_local(connection);
        Ok(Rc::new(Connection {
            send: RefCell::new(Some(send)),
            task: RefCell::new(Some(task)),
            socket: RefCell::new(Some(second)),
            aborted: Cell::new(false),
            budget: Cell::new(0),
        }))
    }

    /// Drops the connection now, with whatever is in flight on it; with a TCP
    /// reset if `reset`.
    fn abort(&self, tally: &Tally, reset: bool) {
        self.aborted.set(true);
        if let Some(socket) = self.socket.borrow_mut().take() {
            if reset {
                let _ = socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO));
            }
        }
        if let Some(task) = self.task.borrow().as_ref() {
            task.abort();
        }
        tally.drops[usize::from(reset)].fetch_add(1, Ordering::Relaxed);
    }

    /// Ends the connection once its calls are done: gracefully (GOAWAY, then the
    /// h2 side closes) unless it was dropped already.
    async fn close(&self, tally: &Tally) {
        self.send.borrow_mut().take();
        let task = self.task.borrow_mut().take();
        if let Some(mut task) = task {
            if self.aborted.get() {
                let _ = task.await;
            } else {
                match tokio::time::timeout(Duration::from_secs(10), &mut task).await {
                    Ok(Ok(Ok(()))) => {}
                    Ok(Ok(Err(error))) => {
                        tally.unexpected(format!("connection ended with {error}"), false)
                    }
                    Ok(Err(error)) => tally.unexpected(format!("connection task: {error}"), false),
                    Err(_) => {
                        task.abort();
                        tally.unexpected("connection did not close within 10 s".into(), false);
                    }
                }
            }
        }
        self.socket.borrow_mut().take();
    }
}

/// Runs connections one after the other until the soak has issued all its RPCs.
pub(crate) async fn drive(client: Rc<Client>, mut rng: Rng) {
    while !client.tally.exhausted() {
        let connection = match Connection::open(client.addr).await {
            Ok(connection) => connection,
            Err(error) => {
                client.tally.unexpected(error, false);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        client.tally.connections.fetch_add(1, Ordering::Relaxed);
        connection.budget.set(rng.range(100, 5000));
        let loops: Vec<_> = (0..rng.range(1, client.max_streams))
            .map(|_| {
                tokio::task::spawn_local(call_loop(client.clone(), connection.clone(), rng.fork()))
            })
            .collect();
        for call_loop in loops {
            if let Err(error) = call_loop.await {
                std::panic::resume_unwind(error.into_panic());
            }
        }
        connection.close(&client.tally).await;
    }
}

/// Makes calls one after another on `connection` until its budget, or the
/// soak's, is spent, or the connection is gone.
async fn call_loop(client: Rc<Client>, connection: Rc<Connection>, mut rng: Rng) {
    let Some(mut send) = connection.send.borrow().clone() else {
        return;
    };
    let tally = &*client.tally;
    loop {
        let budget = connection.budget.get();
        if connection.aborted.get() || budget == 0 || !tally.take_ticket() {
            break;
        }
        connection.budget.set(budget - 1);
        let (kind, plan) = client.mix.pick(&mut rng);
        tally.plans[plan as usize].fetch_add(1, Ordering::Relaxed);
        let result = call(&client, &connection, &mut send, kind, plan, &mut rng).await;
        match result {
            Ok(outcome) if outcome == plan.expected() => tally.outcome(outcome),
            // A call a planned disconnect on another loop overtook.
            Ok(Outcome::Ok) if connection.aborted.get() => tally.outcome(Outcome::Ok),
            Ok(outcome) => tally.unexpected(
                format!("{kind:?} call planned {plan:?} ended {outcome:?}"),
                true,
            ),
            Err(_) if connection.aborted.get() => tally.outcome(Outcome::Disconnected),
            Err(error) => {
                tally.unexpected(format!("{kind:?} call planned {plan:?}: {error}"), true);
                // The connection may be broken; the driver opens a new one.
                break;
            }
        }
    }
}

/// Request headers: a gRPC client's, plus a deadline and a handler sleep.
fn request(uri: Uri, timeout_ms: Option<u64>, sleep_ms: Option<u64>) -> http::Request<()> {
    let mut request = http::Request::new(());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    if let Some(ms) = timeout_ms {
        let value = HeaderValue::try_from(format!("{ms}m")).expect("ASCII");
        headers.insert("grpc-timeout", value);
    }
    if let Some(ms) = sleep_ms {
        headers.insert(SLEEP_HEADER, HeaderValue::from(ms));
    }
    request
}

async fn open(
    send: &mut SendRequest<Bytes>,
    request: http::Request<()>,
) -> Result<(ResponseFuture, SendStream<Bytes>), CallError> {
    poll_fn(|cx| send.poll_ready(cx)).await?;
    Ok(send.send_request(request, false)?)
}

/// A whole response.
struct Answer {
    /// `grpc-status`, from the trailers or a Trailers-Only head.
    status: Option<u32>,
    body: Vec<u8>,
}

impl Answer {
    fn outcome(&self) -> Result<Outcome, CallError> {
        match self.status {
            Some(0) => Ok(Outcome::Ok),
            Some(4) => Ok(Outcome::DeadlineExceeded),
            Some(code) => Err(wrong(format!("grpc-status {code}"))),
            None => Err(wrong("no grpc-status")),
        }
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Reads the rest of a response whose head has arrived.
async fn finish(
    head: &http::response::Parts,
    mut recv: RecvStream,
    mut body: Vec<u8>,
) -> Result<Answer, CallError> {
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        recv.flow_control().release_capacity(chunk.len())?;
        body.extend_from_slice(&chunk);
    }
    let trailers = recv.trailers().await?;
    let status = match &trailers {
        Some(trailers) => grpc_status(trailers),
        None => grpc_status(&head.headers),
    };
    Ok(Answer { status, body })
}

async fn answer(response: ResponseFuture) -> Result<Answer, CallError> {
    let (head, recv) = response.await?.into_parts();
    finish(&head, recv, Vec::new()).await
}

/// Reads until at least `len` body bytes arrived in all, appending to `body`.
async fn read_at_least(
    recv: &mut RecvStream,
    body: &mut Vec<u8>,
    len: usize,
) -> Result<(), CallError> {
    while body.len() < len {
        let Some(chunk) = recv.data().await else {
            return Err(wrong("the response ended early"));
        };
        let chunk = chunk?;
        recv.flow_control().release_capacity(chunk.len())?;
        body.extend_from_slice(&chunk);
    }
    Ok(())
}

/// A short pause, up to `max_micros` (timer resolution is 1 ms).
async fn pause(rng: &mut Rng, max_micros: u64) {
    let micros = rng.below(max_micros + 1);
    if micros == 0 {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(Duration::from_micros(micros)).await;
    }
}

async fn call(
    client: &Client,
    connection: &Connection,
    send: &mut SendRequest<Bytes>,
    kind: Kind,
    plan: Plan,
    rng: &mut Rng,
) -> Result<Outcome, CallError> {
    match plan {
        Plan::Normal => normal(client, send, kind, rng).await,
        Plan::Deadline => deadline(client, send, kind, rng).await,
        Plan::Cancel => {
            let mut call = midway(client, send, kind, rng).await?;
            call.stream.send_reset(h2::Reason::CANCEL);
            Ok(Outcome::Cancelled)
        }
        Plan::Disconnect => {
            let call = midway(client, send, kind, rng).await?;
            connection.abort(&client.tally, rng.below(2) == 1);
            // The call must now fail, not complete.
            let answer = match call.response {
                Response::Head(response) => answer(response).await?,
                Response::Body(head, recv, body) => finish(&head, recv, body).await?,
            };
            answer.outcome()
        }
    }
}

/// A call run to completion, its response checked.
async fn normal(
    client: &Client,
    send: &mut SendRequest<Bytes>,
    kind: Kind,
    rng: &mut Rng,
) -> Result<Outcome, CallError> {
    // One call in five has a generous deadline and a short sleep: timers that
    // are armed and never fire.
    let (timeout, sleep) = if rng.below(5) == 0 {
        (Some(10_000), Some(rng.range(1, 3)))
    } else {
        (None, None)
    };
    let (response, mut stream) = open(send, request(client.uri(kind), timeout, sleep)).await?;
    match kind {
        Kind::Unary => {
            let name = format!("soak-{}", rng.below(1_000_000));
            stream.send_data(frame(&HelloRequest { name: name.clone() }), true)?;
            let answer = answer(response).await?;
            let outcome = answer.outcome()?;
            let reply: HelloReply = unframe(&answer.body)?;
            if reply.message != format!("Hello {name}!") {
                return Err(wrong(format!("SayHello answered {:?}", reply.message)));
            }
            Ok(outcome)
        }
        Kind::ServerStream => {
            let message_size = rng.below(4097) as u32;
            let count = rng.range(1, 16);
            let request = StreamDownRequest {
                message_size,
                count,
            };
            stream.send_data(frame(&request), true)?;
            let answer = answer(response).await?;
            let outcome = answer.outcome()?;
            let expected = count as usize * client.chunk(message_size as usize).len();
            if answer.body.len() != expected {
                return Err(wrong(format!(
                    "StreamDown({message_size} B x {count}) sent {} bytes, not {expected}",
                    answer.body.len()
                )));
            }
            Ok(outcome)
        }
        Kind::ClientStream => {
            let count = rng.range(1, 8);
            let mut bytes = 0;
            for i in 0..count {
                let size = rng.below(2049) as usize;
                bytes += size as u64;
                stream.send_data(client.chunk(size), i + 1 == count)?;
            }
            let answer = answer(response).await?;
            let outcome = answer.outcome()?;
            let summary: UpSummary = unframe(&answer.body)?;
            if summary.bytes != bytes || summary.messages != count {
                return Err(wrong(format!(
                    "StreamUp of {count} messages, {bytes} bytes, answered {summary:?}"
                )));
            }
            Ok(outcome)
        }
        Kind::Bidi => {
            // One message, its echo, the next: a conversation.
            let count = rng.range(1, 8);
            let first = client.chunk(rng.below(2049) as usize);
            let mut sent = first.len();
            stream.send_data(first, count == 1)?;
            let (head, mut recv) = response.await?.into_parts();
            let mut body = Vec::new();
            for i in 1..count {
                read_at_least(&mut recv, &mut body, sent).await?;
                let next = client.chunk(rng.below(2049) as usize);
                sent += next.len();
                stream.send_data(next, i + 1 == count)?;
            }
            let answer = finish(&head, recv, body).await?;
            let outcome = answer.outcome()?;
            if answer.body.len() != sent {
                return Err(wrong(format!(
                    "PingPong echoed {} bytes of {sent}",
                    answer.body.len()
                )));
            }
            Ok(outcome)
        }
    }
}

/// A call whose deadline (1 to 10 ms) passes while its handler sleeps (30 to
/// 80 ms): the server must end it with DEADLINE_EXCEEDED.
async fn deadline(
    client: &Client,
    send: &mut SendRequest<Bytes>,
    kind: Kind,
    rng: &mut Rng,
) -> Result<Outcome, CallError> {
    let timeout = rng.range(1, 10);
    let sleep = rng.range(30, 80);
    let (response, mut stream) =
        open(send, request(client.uri(kind), Some(timeout), Some(sleep))).await?;
    match kind {
        Kind::Unary => {
            let name = "soak-late".to_owned();
            stream.send_data(frame(&HelloRequest { name }), true)?;
        }
        Kind::ServerStream => {
            let request = StreamDownRequest {
                message_size: 64,
                count: 4,
            };
            stream.send_data(frame(&request), true)?;
        }
        Kind::ClientStream | Kind::Bidi => {
            let count = rng.range(1, 3);
            for i in 0..count {
                stream.send_data(client.chunk(rng.below(1025) as usize), i + 1 == count)?;
            }
        }
    }
    answer(response).await?.outcome()
}

/// A response in progress.
enum Response {
    /// The head has not been awaited.
    Head(ResponseFuture),
    /// The head has arrived, and this much of the body.
    Body(http::response::Parts, RecvStream, Vec<u8>),
}

/// A call left mid-way, to be cancelled or cut off.
struct Midway {
    stream: SendStream<Bytes>,
    response: Response,
}

/// Starts a call and takes it to where its handler is busy: sleeping (unary),
/// streaming without end (server streaming), waiting for more requests (client
/// streaming), or in a conversation (bidi).
async fn midway(
    client: &Client,
    send: &mut SendRequest<Bytes>,
    kind: Kind,
    rng: &mut Rng,
) -> Result<Midway, CallError> {
    match kind {
        Kind::Unary => {
            let (response, mut stream) =
                open(send, request(client.uri(kind), None, Some(200))).await?;
            let name = "soak-midway".to_owned();
            stream.send_data(frame(&HelloRequest { name }), true)?;
            pause(rng, 2000).await;
            Ok(Midway {
                stream,
                response: Response::Head(response),
            })
        }
        Kind::ServerStream => {
            let (response, mut stream) = open(send, request(client.uri(kind), None, None)).await?;
            let request = StreamDownRequest {
                message_size: rng.below(1025) as u32,
                count: 0,
            };
            stream.send_data(frame(&request), true)?;
            let (head, mut recv) = response.await?.into_parts();
            let mut body = Vec::new();
            read_at_least(&mut recv, &mut body, 1).await?;
            Ok(Midway {
                stream,
                response: Response::Body(head, recv, body),
            })
        }
        Kind::ClientStream => {
            let (response, mut stream) = open(send, request(client.uri(kind), None, None)).await?;
            for _ in 0..rng.range(1, 3) {
                stream.send_data(client.chunk(rng.below(1025) as usize), false)?;
            }
            pause(rng, 2000).await;
            Ok(Midway {
                stream,
                response: Response::Head(response),
            })
        }
        Kind::Bidi => {
            let (response, mut stream) = open(send, request(client.uri(kind), None, None)).await?;
            let first = client.chunk(rng.below(1025) as usize);
            let len = first.len();
            stream.send_data(first, false)?;
            let (head, mut recv) = response.await?.into_parts();
            let mut body = Vec::new();
            read_at_least(&mut recv, &mut body, len).await?;
            Ok(Midway {
                stream,
                response: Response::Body(head, recv, body),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_every_plan_and_kind() {
        let mut rng = Rng::new(7);
        let mut plans = [0u32; 4];
        let mut kinds = [0u32; 4];
        for _ in 0..100_000 {
            let (kind, plan) = Mix::default().pick(&mut rng);
            plans[plan as usize] += 1;
            kinds[kind as usize] += 1;
        }
        // 0.2% / 12% / 12% of 100,000, within a generous margin.
        assert!(
            (100..400).contains(&plans[Plan::Disconnect as usize]),
            "{plans:?}"
        );
        assert!(
            (11_000..13_000).contains(&plans[Plan::Cancel as usize]),
            "{plans:?}"
        );
        assert!(
            (11_000..13_000).contains(&plans[Plan::Deadline as usize]),
            "{plans:?}"
        );
        assert!(kinds.iter().all(|&n| n > 10_000), "{kinds:?}");
    }

    #[test]
    fn unframe_takes_exactly_one_message() {
        let reply = HelloReply {
            message: "Hello x!".into(),
        };
        let framed = frame(&reply);
        assert_eq!(unframe::<HelloReply>(&framed).ok(), Some(reply));
        assert!(unframe::<HelloReply>(&framed[..framed.len() - 1]).is_err());
        assert!(unframe::<HelloReply>(&[]).is_err());
    }
}
