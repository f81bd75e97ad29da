//! Routing `:path` to services, built once per worker core.

use std::collections::HashMap;

use ringrpc_service_api::server::Service;

/// The services of one worker, by fully-qualified name.
#[derive(Default)]
pub(crate) struct Router {
    services: HashMap<&'static str, Box<dyn Service>>,
}

impl Router {
    pub(crate) fn add(&mut self, service: Box<dyn Service>) {
        self.services.insert(service.name(), service);
    }

    /// The service for the `service` part of a `/service/method` path.
    pub(crate) fn find(&self, service: &[u8]) -> Option<&dyn Service> {
        let name = std::str::from_utf8(service).ok()?;
        self.services.get(name).map(|s| &**s)
    }
}
