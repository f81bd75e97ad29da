//! Routing `:path` to services, built once per worker core, with each service's
//! interceptors and message size limits.

use rustc_hash::FxHashMap;
use std::sync::Arc;

use ringrpc_service_api::server::Service;
use ringrpc_service_api::Interceptor;

/// Builds one worker's instance of an interceptor.
pub(crate) type InterceptorFactory = Arc<dyn Fn() -> Box<dyn Interceptor> + Send + Sync>;

/// Per-service settings for [`crate::ServerBuilder::add_service_with`]:
/// interceptors that run only for this service's calls (after the server-wide
/// ones), and message size limits that override the server's.
///
/// ```ignore
/// let options = ServiceOptions::new()
///     .interceptor(|| check_token)
///     .max_receive_message_size(64 * 1024);
/// Server::builder().add_service_with(|| GreeterServer::new(MyGreeter), options)
/// ```
#[derive(Clone, Default)]
pub struct ServiceOptions {
    pub(crate) interceptors: Vec<InterceptorFactory>,
    pub(crate) max_receive_message_size: Option<usize>,
    pub(crate) max_send_message_size: Option<usize>,
}

impl ServiceOptions {
    /// No interceptors; the server's limits.
    pub fn new() -> ServiceOptions {
        ServiceOptions::default()
    }

    /// Adds an interceptor for this service's calls. `factory` runs once per
    /// worker (the interceptor may hold per-core state); interceptors run in the
    /// order added, after the server-wide ones. For some methods only, wrap it in
    /// [`ringrpc_service_api::intercept::for_methods`].
    pub fn interceptor<I, F>(mut self, factory: F) -> Self
    where
        I: Interceptor,
        F: Fn() -> I + Send + Sync + 'static,
    {
        self.interceptors.push(Arc::new(move || {
            Box::new(factory()) as Box<dyn Interceptor>
        }));
        self
    }

    /// Largest request message this service accepts, in bytes, after
    /// decompression (a larger one ends the call with RESOURCE_EXHAUSTED).
    /// Default: the server's `codec.max_message_size`, which stays the ceiling:
    /// the connection refuses longer messages before they reach a service.
    pub fn max_receive_message_size(mut self, bytes: usize) -> Self {
        self.max_receive_message_size = Some(bytes);
        self
    }

    /// Largest response message this service sends, in bytes before
    /// compression (a larger one ends the call with RESOURCE_EXHAUSTED, and
    /// nothing of it is sent). Default: the server's
    /// `EngineConfig::max_send_message_size`.
    pub fn max_send_message_size(mut self, bytes: usize) -> Self {
        self.max_send_message_size = Some(bytes);
        self
    }
}

impl std::fmt::Debug for ServiceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceOptions")
            .field("interceptors", &self.interceptors.len())
            .field("max_receive_message_size", &self.max_receive_message_size)
            .field("max_send_message_size", &self.max_send_message_size)
            .finish()
    }
}

/// One worker's instance of a service, with what the engine applies around it.
pub(crate) struct Route {
    pub(crate) service: Box<dyn Service>,
    pub(crate) interceptors: Box<[Box<dyn Interceptor>]>,
    pub(crate) max_receive_message_size: Option<usize>,
    pub(crate) max_send_message_size: Option<usize>,
    /// The server-wide interceptors, built once per router by the first route.
    pub(crate) server_interceptors: Arc<[InterceptorFactory]>,
}

/// The services of one worker, by fully-qualified name, and the server-wide
/// interceptors (run for every call, before the service is looked up).
#[derive(Default)]
pub(crate) struct Router {
    /// By name as bytes: the `:path` is routed without a UTF-8 check, and
    /// FxHash rather than SipHash since the keys are ours, not the client's.
    services: FxHashMap<&'static [u8], Route>,
    interceptors: Option<Box<[Box<dyn Interceptor>]>>,
}

impl Router {
    pub(crate) fn add(&mut self, route: Route) {
        if self.interceptors.is_none() {
            self.interceptors = Some(route.server_interceptors.iter().map(|f| f()).collect());
        }
        self.services.insert(route.service.name().as_bytes(), route);
    }

    /// The route for the `service` part of a `/service/method` path.
    pub(crate) fn find(&self, service: &[u8]) -> Option<&Route> {
        self.services.get(service)
    }

    /// Interceptors every call passes, in order.
    pub(crate) fn interceptors(&self) -> &[Box<dyn Interceptor>] {
        self.interceptors.as_deref().unwrap_or(&[])
    }
}
