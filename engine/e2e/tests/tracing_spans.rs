//! The per-RPC `rpc` span, seen by a minimal subscriber installed for the whole
//! process (workers run on their own threads).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ringrpc_engine::{EngineConfig, Server};
use ringrpc_engine_e2e::server::Payload;
use ringrpc_engine_e2e::{h2_call, runtime, start, BACKENDS};
use ringrpc_service_api::server::{unary, CallSlot, Service};
use ringrpc_service_api::{Call, Request, Response, Status};
use std::pin::Pin;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// The fields of one span, as recorded.
#[derive(Clone, Debug, Default)]
struct Fields {
    method: Option<String>,
    status: Option<u64>,
    duration_us: Option<u64>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "method" {
            self.method = Some(value.to_owned());
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "status" => self.status = Some(value),
            "duration_us" => self.duration_us = Some(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

/// Keeps the `rpc` spans: open ones by id (with their handle count), closed
/// ones in order, and the `rpc` span current when a handler's event fired.
#[derive(Default)]
struct Recorder {
    next: AtomicU64,
    open: Mutex<HashMap<u64, (usize, Fields)>>,
    closed: Mutex<Vec<Fields>>,
    /// For each event: the method of the `rpc` span it happened in.
    events: Mutex<Vec<Option<String>>>,
}

thread_local! {
    /// Spans entered on this thread, innermost last.
    static ENTERED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Subscriber for &'static Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() || metadata.name() == "rpc"
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = Fields::default();
        span.record(&mut fields);
        self.open.lock().unwrap().insert(id, (1, fields));
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some((_, fields)) = self.open.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(fields);
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {
        let current = ENTERED.with(|e| e.borrow().last().copied());
        let method = current.and_then(|id| {
            let open = self.open.lock().unwrap();
            open.get(&id).and_then(|(_, fields)| fields.method.clone())
        });
        self.events.lock().unwrap().push(method);
    }

    fn enter(&self, span: &Id) {
        ENTERED.with(|e| e.borrow_mut().push(span.into_u64()));
    }

    fn exit(&self, _: &Id) {
        ENTERED.with(|e| e.borrow_mut().pop());
    }

    fn clone_span(&self, span: &Id) -> Id {
        if let Some((handles, _)) = self.open.lock().unwrap().get_mut(&span.into_u64()) {
            *handles += 1;
        }
        span.clone()
    }

    fn try_close(&self, id: Id) -> bool {
        let mut open = self.open.lock().unwrap();
        let Some((handles, _)) = open.get_mut(&id.into_u64()) else {
            return false;
        };
        *handles -= 1;
        if *handles > 0 {
            return false;
        }
        let (_, fields) = open.remove(&id.into_u64()).unwrap();
        self.closed.lock().unwrap().push(fields);
        true
    }
}

fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<&'static Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static Recorder = Box::leak(Box::default());
        tracing::subscriber::set_global_default(recorder).unwrap();
        recorder
    })
}

/// Takes the closed span whose method is `method`, waiting for it to close.
/// (Tests in this file run in parallel; each uses its own methods.)
fn closed_span(method: &str) -> Fields {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut closed = recorder().closed.lock().unwrap();
        if let Some(i) = closed
            .iter()
            .position(|f| f.method.as_deref() == Some(method))
        {
            return closed.remove(i);
        }
        drop(closed);
        assert!(Instant::now() < deadline, "no closed span for {method}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn each_call_has_an_rpc_span_with_method_status_and_duration() {
    recorder();
    for backend in BACKENDS {
        let server = start(backend, 1);
        runtime().block_on(async {
            let ok = h2_call(
                server.local_addr(),
                "/ringrpc.test.TestService/Unary",
                &[("x-sleep-ms", "20")],
                b"",
            )
            .await;
            assert_eq!(ok.grpc_status(), Some("0"));
        });
        let span = closed_span("/ringrpc.test.TestService/Unary");
        assert_eq!(span.status, Some(0), "{backend:?}: {span:?}");
        // The handler slept for 20 ms within the span.
        assert!(span.duration_us.unwrap() >= 20_000, "{backend:?}: {span:?}");

        runtime().block_on(async {
            let failed = h2_call(
                server.local_addr(),
                "/ringrpc.test.TestService/ClientStream",
                &[("x-status", "9")],
                b"",
            )
            .await;
            assert_eq!(failed.grpc_status(), Some("9"));
        });
        let span = closed_span("/ringrpc.test.TestService/ClientStream");
        assert_eq!(span.status, Some(9), "{backend:?}: {span:?}");
        assert!(span.duration_us.is_some(), "{backend:?}: {span:?}");
        server.shutdown_and_wait();
    }
}

/// A service whose handler logs one event.
struct Probe;

impl Service for Probe {
    fn name(&self) -> &'static str {
        "trace.Probe"
    }

    fn call(&self, method: &[u8], call: Call, slot: Pin<&mut CallSlot>) -> bool {
        if method != b"Log" {
            return false;
        }
        slot.put(unary(call, |request: Request<Payload>| async move {
            tracing::info!("handling");
            Ok::<_, Status>(Response::new(request.into_inner()))
        }));
        true
    }
}

#[test]
fn handler_events_happen_inside_the_rpc_span() {
    let recorder = recorder();
    for backend in BACKENDS {
        let server = Server::builder()
            .config(EngineConfig {
                backend,
                workers: 1,
                ..EngineConfig::default()
            })
            .add_service(|| Probe)
            .serve("127.0.0.1:0".parse().unwrap())
            .unwrap();
        runtime().block_on(async {
            let reply = h2_call(server.local_addr(), "/trace.Probe/Log", &[], b"").await;
            assert_eq!(reply.grpc_status(), Some("0"));
        });
        let span = closed_span("/trace.Probe/Log");
        assert_eq!(span.status, Some(0), "{backend:?}");
        let events = std::mem::take(&mut *recorder.events.lock().unwrap());
        assert!(
            events.contains(&Some("/trace.Probe/Log".to_owned())),
            "{backend:?}: {events:?}"
        );
        server.shutdown_and_wait();
    }
}
