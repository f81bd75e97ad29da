//! The load scenarios and how a run is carried out.
//!
//! A run uses `threads` client threads, each with its own current-thread tokio
//! runtime and `LocalSet`, like the servers' thread-per-core design: connection
//! `i` belongs to thread `i % threads`, its tasks share the thread's [`Tally`]
//! through an `Rc<RefCell<..>>` and nothing is locked per request. All threads
//! connect first, then share one time window: an optional warm-up, then the
//! measured window. Completions are counted when they land inside the measured
//! window; errors are counted over the whole run. At the end of the window the
//! tasks are cancelled (their streams reset), except StreamUp, which half-closes
//! its stream and checks the server's summary first.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io::Read as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::task::{JoinHandle, LocalSet};

use crate::client::{self, connect, Connection, Target, UnaryCall};
use crate::grpc::{
    self, check_head, check_status, CallError, MessageScanner, RequestHead, UpSummary,
};
use crate::pacer::Pacer;
use crate::report::{Report, Tally, Unit};

/// Time from the end of connection set-up to the start of the schedule, so
/// every thread is waiting when it begins.
const LEAD: Duration = Duration::from_millis(10);

/// Bytes of small StreamUp messages sent together, as one DATA frame: the
/// default largest frame.
const UP_FRAME: usize = 16 * 1024;

/// How long StreamUp may take to deliver its summary after the window ends.
const FINISH_GRACE: Duration = Duration::from_secs(2);

/// Connections an idle run has in set-up at once, over all threads: below the
/// smallest common listen backlog (128, Rust's standard library's, which
/// tonic's listener uses), so the server's accept queue never overflows and no
/// SYN waits a second for its retransmission.
const IDLE_CONCURRENCY: usize = 100;

/// How long a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Warm-up before the measured window: load runs, nothing is counted but errors.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// Unary SayHello(name = "world").
#[derive(Debug, Clone, PartialEq)]
pub struct UnaryLoad {
    /// Connections.
    pub conns: usize,
    /// Closed loop: concurrent streams per connection. Open loop: the most
    /// outstanding requests per connection.
    pub streams: usize,
    /// When set, an open loop at this many requests per second in total.
    pub rate: Option<f64>,
    /// Warm-up and measured window.
    pub timing: Timing,
}

/// A streaming scenario: one call per connection moving `message_size`-byte payloads.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowLoad {
    /// Connections, one call each.
    pub conns: usize,
    /// Payload bytes per message.
    pub message_size: u32,
    /// Warm-up and measured window.
    pub timing: Timing,
}

/// How long an idle run holds its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// This long.
    For(Duration),
    /// Until standard input reaches end of file.
    UntilStdinCloses,
}

/// Idle connections: each makes one SayHello, then all stay open, idle.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleLoad {
    /// Connections.
    pub conns: usize,
    /// How long to hold them.
    pub hold: Hold,
}

/// A scenario with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    /// `unary`: SayHello, closed loop or open loop (`rate`).
    Unary(UnaryLoad),
    /// `stream`: server streaming, one StreamDown(count = 0) per connection.
    Stream(FlowLoad),
    /// `pingpong`: one PingPong per connection, one message in flight.
    PingPong(FlowLoad),
    /// `up`: client streaming, one StreamUp per connection.
    Up(FlowLoad),
    /// `idle`: many idle connections.
    Idle(IdleLoad),
}

impl Scenario {
    /// The name used on the command line and in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Unary(_) => "unary",
            Scenario::Stream(_) => "stream",
            Scenario::PingPong(_) => "pingpong",
            Scenario::Up(_) => "up",
            Scenario::Idle(_) => "idle",
        }
    }

    fn conns(&self) -> usize {
        match self {
            Scenario::Unary(u) => u.conns,
            Scenario::Stream(f) | Scenario::PingPong(f) | Scenario::Up(f) => f.conns,
            Scenario::Idle(i) => i.conns,
        }
    }

    fn timing(&self) -> Timing {
        match self {
            Scenario::Unary(u) => u.timing,
            Scenario::Stream(f) | Scenario::PingPong(f) | Scenario::Up(f) => f.timing,
            Scenario::Idle(_) => Timing {
                warmup: Duration::ZERO,
                duration: Duration::ZERO,
            },
        }
    }

    fn unit(&self) -> Unit {
        match self {
            Scenario::Unary(_) | Scenario::Idle(_) => Unit::Requests,
            _ => Unit::Messages,
        }
    }
}

/// Moments of a run the caller may act on (on the calling thread).
#[derive(Debug)]
pub enum Event<'a> {
    /// The measured window begins.
    MeasureStart,
    /// The measured window ends.
    MeasureEnd,
    /// Idle: every connection is set up; the report covers the set-up.
    Ready(&'a Report),
}

/// Runs `scenario` against `target` on `threads` client threads (the calling
/// thread is one of them) and reports the measured window.
pub fn run(target: &Target, threads: usize, scenario: &Scenario) -> Report {
    run_observed(target, threads, scenario, &mut |_| {})
}

/// [`run`], calling `observer` on the calling thread at the [`Event`]s of the run.
pub fn run_observed(
    target: &Target,
    threads: usize,
    scenario: &Scenario,
    observer: &mut dyn FnMut(Event<'_>),
) -> Report {
    let threads = threads.clamp(1, scenario.conns().max(1));
    let shared = Shared {
        target: target.clone(),
        scenario: scenario.clone(),
        threads,
        barrier: Barrier::new(threads),
        start: OnceLock::new(),
        idle_release: tokio::sync::watch::channel(false).0,
        idle_setup: OnceLock::new(),
        connected: AtomicUsize::new(0),
    };
    let timing = scenario.timing();
    let (tallies_tx, tallies_rx) = mpsc::channel::<Tally>();
    let tally = std::thread::scope(|scope| {
        let shared = &shared;
        let workers: Vec<_> = (1..threads)
            .map(|index| {
                let tallies_tx = tallies_tx.clone();
                scope.spawn(move || client_thread(shared, index, None, &tallies_tx))
            })
            .collect();
        let mut tally = client_thread(shared, 0, Some((observer, &tallies_rx)), &tallies_tx);
        for worker in workers {
            match worker.join() {
                Ok(other) => tally.merge(&other),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        tally
    });
    let seconds = match scenario {
        Scenario::Idle(_) => shared.idle_setup.get().copied().unwrap_or(0.0),
        _ => timing.duration.as_secs_f64(),
    };
    report(scenario, &tally, seconds)
}

fn report(scenario: &Scenario, tally: &Tally, seconds: f64) -> Report {
    let (throughput, latency) = match scenario {
        Scenario::Unary(_) | Scenario::PingPong(_) | Scenario::Idle(_) => (false, true),
        Scenario::Stream(_) | Scenario::Up(_) => (true, false),
    };
    Report::new(
        scenario.name(),
        scenario.unit(),
        tally,
        seconds,
        throughput,
        latency,
    )
}

/// What the client threads of one run share.
struct Shared {
    target: Target,
    scenario: Scenario,
    threads: usize,
    barrier: Barrier,
    /// The common start of the schedule, set by the first thread past the barrier.
    start: OnceLock<Instant>,
    /// Idle: set when the hold is over.
    idle_release: tokio::sync::watch::Sender<bool>,
    /// Idle: seconds from the start until every connection was set up.
    idle_setup: OnceLock<f64>,
    /// Connections set up, over all threads.
    connected: AtomicUsize,
}

/// The time window of a run.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    measure_start: Instant,
    end: Instant,
}

impl Window {
    fn measures(&self, t: Instant) -> bool {
        t >= self.measure_start && t <= self.end
    }
}

type Observer<'a, 'b> = (&'a mut dyn FnMut(Event<'_>), &'b mpsc::Receiver<Tally>);

fn client_thread(
    shared: &Shared,
    index: usize,
    observer: Option<Observer<'_, '_>>,
    tallies: &mpsc::Sender<Tally>,
) -> Tally {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for a client thread");
    let local = LocalSet::new();
    let tally = Rc::new(RefCell::new(Tally::default()));
    let indices: Vec<usize> = (index..shared.scenario.conns())
        .step_by(shared.threads)
        .collect();
    if let Scenario::Idle(idle) = &shared.scenario {
        return idle_thread(
            shared, &runtime, &local, indices, idle, tally, observer, tallies,
        );
    }
    let connections = local.block_on(&runtime, connect_all(&shared.target, &indices, &tally));
    shared
        .connected
        .fetch_add(connections.len(), Ordering::Relaxed);
    shared.barrier.wait();
    if shared.connected.load(Ordering::Relaxed) == 0 {
        // Nothing to measure: fail now rather than after the whole duration.
        let tally = tally.borrow().clone();
        return tally;
    }
    let start = *shared.start.get_or_init(|| Instant::now() + LEAD);
    let timing = shared.scenario.timing();
    let measure_start = start + timing.warmup;
    let window = Window {
        start,
        measure_start,
        end: measure_start + timing.duration,
    };
    let mut observer = observer.map(|(observer, _)| observer);
    local.block_on(
        &runtime,
        drive(shared, connections, window, &tally, &mut observer),
    );
    drop(local);
    let tally = tally.borrow().clone();
    tally
}

async fn connect_all(
    target: &Target,
    indices: &[usize],
    tally: &Rc<RefCell<Tally>>,
) -> Vec<(usize, Connection)> {
    let tasks: Vec<_> = indices
        .iter()
        .map(|&i| {
            let target = target.clone();
            (
                i,
                tokio::task::spawn_local(async move { connect(&target).await }),
            )
        })
        .collect();
    let mut connections = Vec::with_capacity(tasks.len());
    for (i, task) in tasks {
        match task.await.expect("connect task") {
            Ok(connection) => connections.push((i, connection)),
            Err(error) => tally.borrow_mut().error(&error),
        }
    }
    connections
}

async fn drive(
    shared: &Shared,
    connections: Vec<(usize, Connection)>,
    window: Window,
    tally: &Rc<RefCell<Tally>>,
    observer: &mut Option<&mut dyn FnMut(Event<'_>)>,
) {
    let authority = &shared.target.authority;
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut schedules: Vec<Rc<Schedule>> = Vec::new();
    let mut join_at_end = false;
    match &shared.scenario {
        Scenario::Unary(load) => {
            let call = Rc::new(UnaryCall {
                head: RequestHead::new(authority, grpc::SAY_HELLO).expect("valid authority"),
                body: grpc::framed(&grpc::hello_request("world")),
                reply: grpc::hello_reply("world").into(),
            });
            match load.rate {
                None => {
                    for (_, connection) in connections {
                        for _ in 0..load.streams.max(1) {
                            let send = connection.send.clone();
                            let (call, tally) = (call.clone(), tally.clone());
                            tasks.push(spawn(unary_closed(send, call, tally, window)));
                        }
                    }
                }
                Some(rate) => {
                    // This thread's share of the rate, on one schedule over its
                    // connections; threads start a fraction of an interval apart.
                    let first_index = connections.first().map_or(0, |(i, _)| *i);
                    let thread_rate = rate * connections.len() as f64 / load.conns as f64;
                    let schedule = Rc::new(Schedule {
                        first: window.start + Duration::from_secs_f64(first_index as f64 / rate),
                        interval_ns: 1e9 / thread_rate,
                        next: Cell::new(0),
                    });
                    schedules.push(schedule.clone());
                    let sends = connections.into_iter().map(|(_, c)| c.send).collect();
                    let streams = load.streams.max(1);
                    tasks.push(spawn(unary_open(
                        sends,
                        call,
                        tally.clone(),
                        window,
                        schedule,
                        streams,
                    )));
                }
            }
        }
        Scenario::Stream(load) => {
            let call = Rc::new(FlowCall::new(authority, grpc::STREAM_DOWN, load).with_body(
                grpc::framed(&grpc::stream_down_request(load.message_size, 0)),
            ));
            for (_, connection) in connections {
                let (call, tally) = (call.clone(), tally.clone());
                tasks.push(spawn(report_error(
                    tally.clone(),
                    stream_down(connection.send, call, tally, window),
                )));
            }
        }
        Scenario::PingPong(load) => {
            let call = Rc::new(FlowCall::new(authority, grpc::PING_PONG, load));
            for (_, connection) in connections {
                let (call, tally) = (call.clone(), tally.clone());
                tasks.push(spawn(report_error(
                    tally.clone(),
                    ping_pong(connection.send, call, tally, window),
                )));
            }
        }
        Scenario::Up(load) => {
            join_at_end = true;
            let call = Rc::new(FlowCall::new(authority, grpc::STREAM_UP, load).batched());
            for (_, connection) in connections {
                let (call, tally) = (call.clone(), tally.clone());
                tasks.push(spawn(report_error(
                    tally.clone(),
                    stream_up(connection.send, call, tally, window),
                )));
            }
        }
        Scenario::Idle(_) => unreachable!("idle runs in idle_thread"),
    }

    // Tasks end before the window does only when their calls or connections
    // failed: then there is nothing left to wait for.
    let mut all_done = sleep_or_all_done(window.measure_start, &mut tasks).await;
    if let Some(observer) = observer {
        observer(Event::MeasureStart);
    }
    if !all_done {
        all_done = sleep_or_all_done(window.end, &mut tasks).await;
    }
    if let Some(observer) = observer {
        observer(Event::MeasureEnd);
    }
    if join_at_end && !all_done {
        let _ = tokio::time::timeout(FINISH_GRACE, join_all(&mut tasks)).await;
    }
    for task in &tasks {
        task.abort();
    }
    let mut tally = tally.borrow_mut();
    for schedule in schedules {
        tally.late += schedule.unsent_in(&window);
    }
}

/// Sleeps until `deadline`; returns early, with `true`, once every task has ended.
async fn sleep_or_all_done(deadline: Instant, tasks: &mut [JoinHandle<()>]) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(deadline.into()) => false,
        _ = join_all(tasks) => true,
    }
}

async fn join_all(tasks: &mut [JoinHandle<()>]) {
    for task in tasks {
        let _ = task.await;
    }
}

fn spawn(task: impl Future<Output = ()> + 'static) -> JoinHandle<()> {
    tokio::task::spawn_local(task)
}

async fn report_error(
    tally: Rc<RefCell<Tally>>,
    call: impl Future<Output = Result<(), CallError>>,
) {
    if let Err(error) = call.await {
        tally.borrow_mut().error(&error);
    }
}

/// One SayHello, its latency from `from` recorded if it ends inside the measured
/// window, or its error counted; false after an error that ended the connection.
async fn unary_recorded(
    send: &mut h2::client::SendRequest<Bytes>,
    call: &UnaryCall,
    tally: &RefCell<Tally>,
    window: Window,
    from: Instant,
) -> bool {
    let result = client::unary(send, call).await;
    let done = Instant::now();
    match result {
        Ok(()) => {
            if window.measures(done) {
                tally.borrow_mut().record(done - from);
            }
            true
        }
        Err(error) => {
            tally.borrow_mut().error(&error);
            !error.is_connection_error()
        }
    }
}

/// Closed loop: one stream sends the next request as soon as the last answer is in.
async fn unary_closed(
    mut send: h2::client::SendRequest<Bytes>,
    call: Rc<UnaryCall>,
    tally: Rc<RefCell<Tally>>,
    window: Window,
) {
    loop {
        let started = Instant::now();
        if started >= window.end {
            return;
        }
        if !unary_recorded(&mut send, &call, &tally, window, started).await {
            return;
        }
    }
}

/// The open-loop send times of one connection: `first + k * interval`.
#[derive(Debug)]
struct Schedule {
    first: Instant,
    interval_ns: f64,
    /// The next ticket: requests `0..next` have been taken by a worker.
    next: Cell<u64>,
}

impl Schedule {
    fn intended(&self, k: u64) -> Instant {
        self.first + Duration::from_nanos((k as f64 * self.interval_ns) as u64)
    }

    /// Requests intended inside the measured window that no worker took.
    fn unsent_in(&self, window: &Window) -> u64 {
        let mut unsent = 0;
        let mut k = self.next.get();
        loop {
            let t = self.intended(k);
            if t >= window.end {
                return unsent;
            }
            if t >= window.measure_start {
                unsent += 1;
            }
            k += 1;
        }
    }
}

/// Open loop: one dispatcher per thread sends each request at its intended
/// time, round-robin over the thread's connections, as a task of its own, with
/// at most `streams` in flight per connection. A request whose time came while
/// every stream was busy is sent as soon as one is free and counted late.
/// Latency runs from the intended time either way, so a slow server shows as
/// latency rather than as a lower send rate.
///
/// One timer for the whole thread (rather than one per stream) keeps the
/// generator's own cost per request low: at high rates requests fall due less
/// than the pacer's wake-up margin apart and no timer is armed at all.
async fn unary_open(
    sends: Vec<h2::client::SendRequest<Bytes>>,
    call: Rc<UnaryCall>,
    tally: Rc<RefCell<Tally>>,
    window: Window,
    schedule: Rc<Schedule>,
    streams: usize,
) {
    struct Lane {
        send: h2::client::SendRequest<Bytes>,
        in_flight: Cell<usize>,
        failed: Cell<bool>,
    }
    let lanes: Rc<Vec<Lane>> = Rc::new(
        sends
            .into_iter()
            .map(|send| Lane {
                send,
                in_flight: Cell::new(0),
                failed: Cell::new(false),
            })
            .collect(),
    );
    let freed = Rc::new(tokio::sync::Notify::new());
    let mut pacer = Pacer::new();
    let mut next_lane = 0;
    loop {
        let k = schedule.next.get();
        let intended = schedule.intended(k);
        if intended >= window.end {
            return;
        }
        pacer.wait_until(intended).await;
        let mut late = false;
        let lane = loop {
            let n = lanes.len();
            let free = (0..n)
                .map(|j| (next_lane + j) % n)
                .find(|&i| !lanes[i].failed.get() && lanes[i].in_flight.get() < streams);
            if let Some(lane) = free {
                break lane;
            }
            if lanes.iter().all(|lane| lane.failed.get()) {
                return;
            }
            late = true;
            freed.notified().await;
        };
        schedule.next.set(k + 1);
        if late && window.measures(intended) {
            tally.borrow_mut().late += 1;
        }
        next_lane = (lane + 1) % lanes.len();
        lanes[lane].in_flight.set(lanes[lane].in_flight.get() + 1);
        let (lanes, call, tally, freed) =
            (lanes.clone(), call.clone(), tally.clone(), freed.clone());
        tokio::task::spawn_local(async move {
            let mut send = lanes[lane].send.clone();
            if !unary_recorded(&mut send, &call, &tally, window, intended).await {
                lanes[lane].failed.set(true);
            }
            lanes[lane].in_flight.set(lanes[lane].in_flight.get() - 1);
            freed.notify_one();
        });
    }
}

/// A streaming call prepared once per run.
#[derive(Debug)]
struct FlowCall {
    head: RequestHead,
    /// The request body: StreamDown's request, or one framed Chunk to send repeatedly.
    body: Bytes,
    /// The Chunk expected in responses, unframed.
    chunk: Bytes,
    payload: u64,
    /// Messages in `body` (StreamUp sends several small ones per DATA frame).
    batch: u64,
}

impl FlowCall {
    fn new(authority: &str, path: &str, load: &FlowLoad) -> FlowCall {
        let chunk = grpc::chunk(load.message_size as usize);
        FlowCall {
            head: RequestHead::new(authority, path).expect("valid authority"),
            body: grpc::framed(&chunk),
            chunk: chunk.into(),
            payload: u64::from(load.message_size),
            batch: 1,
        }
    }

    /// Makes `body` as many framed messages as fit in [`UP_FRAME`] bytes (at
    /// least one), sent with one `send_data`: gRPC clients buffer small stream
    /// messages into larger DATA frames, and h2 servers treat a stream of tiny
    /// frames as abuse.
    fn batched(self) -> FlowCall {
        let batch = (UP_FRAME / self.body.len()).max(1);
        let body = self.body.repeat(batch).into();
        FlowCall {
            body,
            batch: batch as u64,
            ..self
        }
    }

    fn with_body(self, body: Bytes) -> FlowCall {
        FlowCall { body, ..self }
    }
}

/// Reads the response head of a stream that must not be trailers-only.
async fn streaming_response(
    response: h2::client::ResponseFuture,
) -> Result<h2::RecvStream, CallError> {
    let (head, body) = response.await?.into_parts();
    if check_head(&head)? {
        return Err(CallError::Ended);
    }
    Ok(body)
}

/// The response body ended: an error for streams that should not end.
async fn ended(mut body: h2::RecvStream) -> Result<(), CallError> {
    match body.trailers().await? {
        Some(trailers) => check_status(&trailers)?,
        None => return Err(CallError::MissingStatus),
    }
    Err(CallError::Ended)
}

/// One StreamDown(count = 0), read until cancelled, capacity released per chunk.
async fn stream_down(
    mut send: h2::client::SendRequest<Bytes>,
    call: Rc<FlowCall>,
    tally: Rc<RefCell<Tally>>,
    window: Window,
) -> Result<(), CallError> {
    client::ready(&mut send).await?;
    let (response, mut request_body) = send.send_request(call.head.request(), false)?;
    request_body.send_data(call.body.clone(), true)?;
    let mut body = streaming_response(response).await?;
    let mut scanner = MessageScanner::new(call.chunk.clone());
    while let Some(data) = body.data().await {
        let data = data?;
        body.flow_control().release_capacity(data.len())?;
        let messages = scanner.push(&data)?;
        if messages > 0 && window.measures(Instant::now()) {
            let mut tally = tally.borrow_mut();
            tally.completed += messages;
            tally.bytes += messages * call.payload;
        }
    }
    ended(body).await
}

/// One PingPong: send a message, wait for its echo, repeat.
async fn ping_pong(
    mut send: h2::client::SendRequest<Bytes>,
    call: Rc<FlowCall>,
    tally: Rc<RefCell<Tally>>,
    window: Window,
) -> Result<(), CallError> {
    client::ready(&mut send).await?;
    let (response, mut request_body) = send.send_request(call.head.request(), false)?;
    let mut sent_at = Instant::now();
    request_body.send_data(call.body.clone(), false)?;
    // The server's head may come with the first echo.
    let mut body = streaming_response(response).await?;
    let mut scanner = MessageScanner::new(call.chunk.clone());
    loop {
        let mut echoed = 0;
        while echoed == 0 {
            let Some(data) = body.data().await else {
                return ended(body).await;
            };
            let data = data?;
            body.flow_control().release_capacity(data.len())?;
            echoed = scanner.push(&data)?;
        }
        if echoed > 1 {
            return Err(CallError::MessageCount {
                got: echoed,
                want: 1,
            });
        }
        let now = Instant::now();
        if window.measures(now) {
            tally.borrow_mut().record(now - sent_at);
        }
        if now >= window.end {
            return Ok(());
        }
        sent_at = now;
        request_body.send_data(call.body.clone(), false)?;
    }
}

/// One StreamUp: send as fast as flow control allows, then half-close and
/// check that the server's summary matches what was sent.
async fn stream_up(
    mut send: h2::client::SendRequest<Bytes>,
    call: Rc<FlowCall>,
    tally: Rc<RefCell<Tally>>,
    window: Window,
) -> Result<(), CallError> {
    client::ready(&mut send).await?;
    let (response, mut request_body) = send.send_request(call.head.request(), false)?;
    let message_len = call.body.len();
    let mut sent = UpSummary::default();
    let sending = async {
        let mut now = Instant::now();
        while now < window.end {
            // Send only into assigned window: h2 would otherwise buffer without
            // bound. A message larger than the capacity is sent in part and the
            // rest buffered; capacity shows again once that has gone out.
            request_body.reserve_capacity(message_len);
            while request_body.capacity() == 0 {
                match poll_fn(|cx| request_body.poll_capacity(cx)).await {
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error.into()),
                    None => return Err(CallError::Ended),
                }
            }
            request_body.send_data(call.body.clone(), false)?;
            sent.messages += call.batch;
            sent.bytes += call.batch * call.payload;
            now = Instant::now();
            if window.measures(now) {
                let mut tally = tally.borrow_mut();
                tally.completed += call.batch;
                tally.bytes += call.batch * call.payload;
            }
        }
        request_body.send_data(Bytes::new(), true)?;
        Ok::<(), CallError>(())
    }
    .await;
    if let Err(send_error) = sending {
        // The server may have ended the call early: its status says why.
        let answer = tokio::time::timeout(Duration::from_secs(1), unary_reply(response)).await;
        return Err(match answer {
            Ok(Err(status @ CallError::Status { .. })) => status,
            _ => send_error,
        });
    }
    let reply = unary_reply(response).await?;
    let got = match reply.split_first_chunk::<{ grpc::PREFIX_LEN }>() {
        Some((prefix, message))
            if prefix[0] == 0
                && u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize
                    == message.len() =>
        {
            UpSummary::decode(message)
        }
        _ => None,
    };
    match got {
        Some(got) if got == sent => Ok(()),
        Some(got) => Err(CallError::Summary { got, sent }),
        None => Err(CallError::MessageCount { got: 0, want: 1 }),
    }
}

/// Reads a single-message response: its status must be OK; returns the
/// framed message bytes (not checked here).
async fn unary_reply(response: h2::client::ResponseFuture) -> Result<Vec<u8>, CallError> {
    let (head, mut body) = response.await?.into_parts();
    if check_head(&head)? {
        return Err(CallError::MessageCount { got: 0, want: 1 });
    }
    let mut reply = Vec::new();
    while let Some(data) = body.data().await {
        let data = data?;
        body.flow_control().release_capacity(data.len())?;
        reply.extend_from_slice(&data);
    }
    match body.trailers().await? {
        Some(trailers) => check_status(&trailers)?,
        None => return Err(CallError::MissingStatus),
    }
    Ok(reply)
}

/// Idle: connect, at most [`IDLE_CONCURRENCY`] at a time, one SayHello each,
/// report readiness, hold.
#[allow(clippy::too_many_arguments)]
fn idle_thread(
    shared: &Shared,
    runtime: &tokio::runtime::Runtime,
    local: &LocalSet,
    indices: Vec<usize>,
    idle: &IdleLoad,
    tally: Rc<RefCell<Tally>>,
    observer: Option<Observer<'_, '_>>,
    tallies: &mpsc::Sender<Tally>,
) -> Tally {
    let in_setup = Rc::new(tokio::sync::Semaphore::new(
        (IDLE_CONCURRENCY / shared.threads).max(1),
    ));
    let started = Instant::now();
    let connections = local.block_on(runtime, async {
        let call = Rc::new(UnaryCall {
            head: RequestHead::new(&shared.target.authority, grpc::SAY_HELLO)
                .expect("valid authority"),
            body: grpc::framed(&grpc::hello_request("world")),
            reply: grpc::hello_reply("world").into(),
        });
        let tasks: Vec<_> = indices
            .iter()
            .map(|_| {
                let (target, call) = (shared.target.clone(), call.clone());
                let in_setup = in_setup.clone();
                tokio::task::spawn_local(async move {
                    let _permit = in_setup.acquire().await.expect("semaphore is never closed");
                    let begun = Instant::now();
                    let mut connection = connect(&target).await?;
                    client::unary(&mut connection.send, &call).await?;
                    Ok::<_, CallError>((connection, begun.elapsed()))
                })
            })
            .collect();
        let mut connections = Vec::with_capacity(indices.len());
        for task in tasks {
            match task.await.expect("connect task") {
                Ok((connection, elapsed)) => {
                    tally.borrow_mut().record(elapsed);
                    connections.push(connection);
                }
                Err(error) => tally.borrow_mut().error(&error),
            }
        }
        connections
    });
    let mut release = shared.idle_release.subscribe();
    match observer {
        Some((observer, tallies_rx)) => {
            let mut all = tally.borrow().clone();
            for _ in 1..shared.threads {
                if let Ok(other) = tallies_rx.recv() {
                    all.merge(&other);
                }
            }
            let seconds = *shared
                .idle_setup
                .get_or_init(|| started.elapsed().as_secs_f64());
            let ready = report(&shared.scenario, &all, seconds);
            observer(Event::Ready(&ready));
            if ready.succeeded() {
                local.block_on(runtime, hold(idle.hold));
            }
            shared.idle_release.send_replace(true);
        }
        None => {
            let _ = tallies.send(tally.borrow().clone());
            local.block_on(runtime, async {
                let _ = release.wait_for(|released| *released).await;
            });
        }
    }
    let closed = connections.iter().filter(|c| c.is_closed()).count();
    let mut tally = tally.borrow().clone();
    if closed > 0 {
        tally.errors += closed as u64;
        tally.first_error = Some(format!("{closed} connections were closed while held idle"));
    }
    tally
}

async fn hold(hold: Hold) {
    match hold {
        Hold::For(duration) => tokio::time::sleep(duration).await,
        Hold::UntilStdinCloses => {
            let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
            // A plain thread: reading stdin blocks, and it is read only to see EOF.
            std::thread::spawn(move || {
                let mut sink = [0u8; 4096];
                let mut stdin = std::io::stdin().lock();
                while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
                let _ = closed_tx.send(());
            });
            let _ = closed_rx.await;
        }
    }
}
