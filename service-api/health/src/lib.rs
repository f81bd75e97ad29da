//! The gRPC health checking service, `grpc.health.v1.Health`, for ringrpc
//! servers.
//!
//! A [`HealthReporter`] holds the serving status of the whole server (the
//! empty service name) and of each named service. It is cheap to clone and may
//! be used from any thread; every worker core's copy of the service reads the
//! same state, and `Watch` calls on any core see changes as they happen.
//!
//! ```ignore
//! let reporter = ringrpc_health::HealthReporter::new();
//! reporter.set_serving("helloworld.Greeter");
//! let server = Server::builder()
//!     .add_service(ringrpc_health::service(&reporter))
//!     // The whole server reports NOT_SERVING as soon as shutdown begins, so
//!     // load balancers stop sending work while in-flight calls drain.
//!     .on_shutdown(reporter.shutdown_hook())
//!     .serve(addr)?;
//! ```
//!
//! # Semantics
//!
//! - `Check` answers the stored status, or NOT_FOUND for a service never set.
//! - `Watch` sends the current status at once (SERVICE_UNKNOWN for an unknown
//!   service, which is not an error), then each change, until the client ends
//!   the call.
//! - `List` answers every known status, the server's (`""`) included.
//! - After [`HealthReporter::enter_terminal_state`] every status is NOT_SERVING
//!   and further updates are ignored: a server going down must not be
//!   reported healthy again by code still running.

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ringrpc_service_api::{Request, Response, ResponseSink, Status};
use tokio::sync::watch;

/// Messages and server glue generated from `grpc/health/v1/health.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
}

pub use pb::health_check_response::ServingStatus;
use pb::health_server::{Health, HealthServer};
use pb::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};

/// The encoded `FileDescriptorSet` of `grpc/health/v1/health.proto`, for
/// registering with server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = pb::FILE_DESCRIPTOR_SET;

/// The fully-qualified name of the health service.
pub const SERVICE_NAME: &str = pb::health_server::SERVICE_NAME;

/// Sets the serving status the health service reports. Clones share state.
#[derive(Clone, Debug)]
pub struct HealthReporter {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Bumped on every change; `Watch` calls wait on it, on whatever thread.
    changed: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    statuses: BTreeMap<String, ServingStatus>,
    terminal: bool,
}

impl Default for HealthReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthReporter {
    /// A reporter where the whole server (`""`) is SERVING and no service is known.
    pub fn new() -> HealthReporter {
        let mut state = State::default();
        state.statuses.insert(String::new(), ServingStatus::Serving);
        HealthReporter {
            inner: Arc::new(Shared {
                state: Mutex::new(state),
                changed: watch::channel(0).0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever a panicking holder did: every
        // update is a single map operation.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn notify(&self) {
        self.inner.changed.send_modify(|version| *version += 1);
    }

    /// Sets the status of `service` (`""` for the whole server).
    pub fn set_status(&self, service: &str, status: ServingStatus) {
        {
            let mut state = self.lock();
            if state.terminal {
                return;
            }
            if state.statuses.get(service) == Some(&status) {
                return;
            }
            state.statuses.insert(service.to_owned(), status);
        }
        self.notify();
    }

    /// Marks `service` SERVING.
    pub fn set_serving(&self, service: &str) {
        self.set_status(service, ServingStatus::Serving);
    }

    /// Marks `service` NOT_SERVING.
    pub fn set_not_serving(&self, service: &str) {
        self.set_status(service, ServingStatus::NotServing);
    }

    /// Forgets `service`: `Check` answers NOT_FOUND and watchers see
    /// SERVICE_UNKNOWN.
    pub fn clear(&self, service: &str) {
        {
            let mut state = self.lock();
            if state.terminal || state.statuses.remove(service).is_none() {
                return;
            }
        }
        self.notify();
    }

    /// The status of `service`, if known.
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        self.lock().statuses.get(service).copied()
    }

    /// Marks the server and every known service NOT_SERVING and ignores every
    /// later update. Called when the server begins shutting down.
    pub fn enter_terminal_state(&self) {
        {
            let mut state = self.lock();
            state.terminal = true;
            for status in state.statuses.values_mut() {
                *status = ServingStatus::NotServing;
            }
        }
        self.notify();
    }

    /// A hook for `ServerBuilder::on_shutdown` that calls
    /// [`enter_terminal_state`](Self::enter_terminal_state).
    pub fn shutdown_hook(&self) -> impl Fn() + Send + Sync + 'static {
        let reporter = self.clone();
        move || reporter.enter_terminal_state()
    }
}

/// The service factory for `ServerBuilder::add_service`: each worker's copy
/// reads `reporter`.
pub fn service(
    reporter: &HealthReporter,
) -> impl Fn() -> HealthServer<HealthService> + Send + Sync + 'static {
    let reporter = reporter.clone();
    move || HealthServer::new(HealthService::new(reporter.clone()))
}

/// The `grpc.health.v1.Health` handlers, answering from a [`HealthReporter`].
#[derive(Debug, Clone)]
pub struct HealthService {
    reporter: HealthReporter,
}

impl HealthService {
    /// Handlers answering from `reporter`.
    pub fn new(reporter: HealthReporter) -> HealthService {
        HealthService { reporter }
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
    }
}

impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        match self.reporter.status(&service) {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(Status::not_found(format!("unknown service {service:?}"))),
        }
    }

    async fn list(
        &self,
        _: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        let statuses = self
            .reporter
            .lock()
            .statuses
            .iter()
            .map(|(name, status)| (name.clone(), response(*status)))
            .collect();
        Ok(Response::new(HealthListResponse { statuses }))
    }

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
        mut responses: ResponseSink<HealthCheckResponse>,
    ) -> Result<(), Status> {
        let service = request.into_inner().service;
        let mut changes = self.reporter.inner.changed.subscribe();
        let mut last = None;
        loop {
            // Marking the version seen before reading the state means a change
            // made after the read always wakes the loop again.
            changes.borrow_and_update();
            let status = self
                .reporter
                .status(&service)
                .unwrap_or(ServingStatus::ServiceUnknown);
            if last != Some(status) {
                responses.send(response(status)).await?;
                last = Some(status);
            }
            if changes.changed().await.is_err() {
                // Unreachable while this handler holds a reporter; end cleanly anyway.
                return Ok(());
            }
        }
    }
}
