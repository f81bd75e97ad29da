//! Interceptors: code that runs before a handler, sees the request head, and may
//! reject the call or attach values for the handler.
//!
//! The shape is tonic's `Interceptor`: a request goes in, and either the
//! (possibly changed) request comes out or a [`Status`] ends the call. Two
//! differences:
//!
//! - **Interceptors may be async.** [`Interceptor::intercept`] returns an
//!   [`Intercept`], which is either ready at once (a plain closure
//!   `Fn(InterceptRequest) -> Result<InterceptRequest, Status>` is an
//!   interceptor, as in tonic) or a future ([`async_interceptor`]), e.g. to look
//!   a token up in a remote store. Synchronous interceptors allocate nothing;
//!   an async one costs one boxed future per call.
//! - **Interceptors need not be `Send`.** Like services, they are built once per
//!   worker core by a factory and only run on that core, so they may keep
//!   per-core state in `Rc`/`RefCell`.
//!
//! The request is the call's head before the handler runs: the `:path`
//! (service and method), metadata (mutable), the peer's address, the deadline,
//! and [`Extensions`] the handler reads back with `Request::extensions`.
//! Interceptors only see the head; request messages are not read until the
//! handler runs.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;

use crate::{CallHead, Extensions, Metadata, Status};

/// The head of a call on its way to the handler, as interceptors see it.
#[derive(Debug, Default)]
pub struct InterceptRequest {
    path: Bytes,
    head: CallHead,
}

impl InterceptRequest {
    /// A request for `path` (`/package.Service/Method`) with `head`. Made by the
    /// engine; public for testing interceptors directly.
    pub fn new(path: Bytes, head: CallHead) -> InterceptRequest {
        InterceptRequest { path, head }
    }

    /// The `:path`, `/package.Service/Method` (empty if it was not UTF-8).
    pub fn path(&self) -> &str {
        std::str::from_utf8(&self.path).unwrap_or("")
    }

    fn split(&self) -> (&str, &str) {
        let path = self.path();
        path.strip_prefix('/')
            .and_then(|rest| rest.split_once('/'))
            .unwrap_or(("", ""))
    }

    /// The `:path` as received, without the UTF-8 check [`path`](Self::path)
    /// makes.
    pub fn path_bytes(&self) -> &[u8] {
        &self.path
    }

    /// The fully-qualified service name, e.g. `helloworld.Greeter`.
    pub fn service(&self) -> &str {
        self.split().0
    }

    /// The method name, e.g. `SayHello`.
    pub fn method(&self) -> &str {
        self.split().1
    }

    /// Custom request metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.head.metadata
    }

    /// Custom request metadata, mutable: changes are what the handler sees.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.head.metadata
    }

    /// Values for the handler (`Request::extensions`).
    pub fn extensions(&self) -> &Extensions {
        &self.head.extensions
    }

    /// Values for the handler, mutable.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.head.extensions
    }

    /// The client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.head.remote_addr
    }

    /// When the client gives up, if it set a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.head.deadline
    }

    /// The certificate chain the client presented over TLS (DER, leaf first);
    /// `None` on a plaintext connection or when the client sent none.
    pub fn peer_certificates(&self) -> Option<&[Bytes]> {
        self.head.peer_certificates.as_deref()
    }

    /// The whole head.
    pub fn head(&self) -> &CallHead {
        &self.head
    }

    /// The whole head, mutable.
    pub fn head_mut(&mut self) -> &mut CallHead {
        &mut self.head
    }

    /// The path and the head.
    pub fn into_parts(self) -> (Bytes, CallHead) {
        (self.path, self.head)
    }
}

/// A future that finishes an interception.
pub type InterceptFuture = Pin<Box<dyn Future<Output = Result<InterceptRequest, Status>>>>;

/// What an interceptor decided, or will decide.
pub enum Intercept {
    /// Decided now: go on with this request, or end the call with the status.
    Ready(Result<InterceptRequest, Status>),
    /// Decided when the future completes. It runs on the call's core, within
    /// the call's deadline, and is dropped if the call is cancelled.
    Pending(InterceptFuture),
}

impl std::fmt::Debug for Intercept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Intercept::Ready(result) => f.debug_tuple("Ready").field(result).finish(),
            Intercept::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

impl From<Result<InterceptRequest, Status>> for Intercept {
    fn from(result: Result<InterceptRequest, Status>) -> Intercept {
        Intercept::Ready(result)
    }
}

/// Runs before a handler; see the [module docs](self).
pub trait Interceptor: 'static {
    /// Inspects (and may change) `request`, or rejects the call.
    fn intercept(&self, request: InterceptRequest) -> Intercept;
}

impl<F> Interceptor for F
where
    F: Fn(InterceptRequest) -> Result<InterceptRequest, Status> + 'static,
{
    fn intercept(&self, request: InterceptRequest) -> Intercept {
        Intercept::Ready(self(request))
    }
}

impl Interceptor for Box<dyn Interceptor> {
    fn intercept(&self, request: InterceptRequest) -> Intercept {
        (**self).intercept(request)
    }
}

/// An interceptor from an async function; see [`async_interceptor`].
#[derive(Clone, Debug)]
pub struct AsyncInterceptor<F>(F);

/// Makes an interceptor of `f`, which returns a future deciding the call:
///
/// ```
/// # use ringrpc_service_api::intercept::async_interceptor;
/// # use ringrpc_service_api::Status;
/// let check = async_interceptor(|request| async move {
///     // e.g. ask a session store, then attach the user to `request`
///     Ok::<_, Status>(request)
/// });
/// ```
pub fn async_interceptor<F, Fut>(f: F) -> AsyncInterceptor<F>
where
    F: Fn(InterceptRequest) -> Fut + 'static,
    Fut: Future<Output = Result<InterceptRequest, Status>> + 'static,
{
    AsyncInterceptor(f)
}

impl<F, Fut> Interceptor for AsyncInterceptor<F>
where
    F: Fn(InterceptRequest) -> Fut + 'static,
    Fut: Future<Output = Result<InterceptRequest, Status>> + 'static,
{
    fn intercept(&self, request: InterceptRequest) -> Intercept {
        Intercept::Pending(Box::pin((self.0)(request)))
    }
}

/// An interceptor that only runs for some methods; see [`for_methods`].
#[derive(Clone, Debug)]
pub struct ForMethods<I> {
    methods: &'static [&'static str],
    inner: I,
}

/// Runs `inner` only for calls whose method name (e.g. `SayHello`) is in
/// `methods`; other calls pass untouched. Per-method scope for an interceptor
/// registered for a whole service or server.
pub fn for_methods<I: Interceptor>(methods: &'static [&'static str], inner: I) -> ForMethods<I> {
    ForMethods { methods, inner }
}

impl<I: Interceptor> Interceptor for ForMethods<I> {
    fn intercept(&self, request: InterceptRequest) -> Intercept {
        if self.methods.contains(&request.method()) {
            self.inner.intercept(request)
        } else {
            Intercept::Ready(Ok(request))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::Code;

    fn request(path: &'static str) -> InterceptRequest {
        InterceptRequest::new(Bytes::from_static(path.as_bytes()), CallHead::default())
    }

    fn run(
        interceptor: &dyn Interceptor,
        request: InterceptRequest,
    ) -> Result<InterceptRequest, Status> {
        match interceptor.intercept(request) {
            Intercept::Ready(result) => result,
            Intercept::Pending(mut future) => {
                match future
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                {
                    Poll::Ready(result) => result,
                    Poll::Pending => panic!("test futures complete at once"),
                }
            }
        }
    }

    #[test]
    fn path_splits_into_service_and_method() {
        let r = request("/helloworld.Greeter/SayHello");
        assert_eq!(r.path(), "/helloworld.Greeter/SayHello");
        assert_eq!(r.service(), "helloworld.Greeter");
        assert_eq!(r.method(), "SayHello");
        let bad = request("nonsense");
        assert_eq!((bad.service(), bad.method()), ("", ""));
    }

    #[test]
    fn closures_reject_or_attach() {
        let deny = |_: InterceptRequest| -> Result<InterceptRequest, Status> {
            Err(Status::unauthenticated("no"))
        };
        assert_eq!(
            run(&deny, request("/a.B/C")).unwrap_err().code(),
            Code::Unauthenticated
        );
        let attach = |mut r: InterceptRequest| -> Result<InterceptRequest, Status> {
            r.extensions_mut().insert(7u32);
            Ok(r)
        };
        let out = run(&attach, request("/a.B/C")).unwrap();
        assert_eq!(out.extensions().get::<u32>(), Some(&7));
    }

    #[test]
    fn async_interceptors_return_a_future() {
        let i = async_interceptor(|mut r: InterceptRequest| async move {
            r.extensions_mut().insert("async");
            Ok(r)
        });
        assert!(matches!(
            i.intercept(request("/a.B/C")),
            Intercept::Pending(_)
        ));
        let out = run(&i, request("/a.B/C")).unwrap();
        assert_eq!(out.extensions().get::<&str>(), Some(&"async"));
    }

    #[test]
    fn for_methods_skips_other_methods() {
        let deny = |_: InterceptRequest| -> Result<InterceptRequest, Status> {
            Err(Status::permission_denied("no"))
        };
        let scoped = for_methods(&["Delete"], deny);
        assert!(run(&scoped, request("/a.B/Get")).is_ok());
        assert_eq!(
            run(&scoped, request("/a.B/Delete")).unwrap_err().code(),
            Code::PermissionDenied
        );
    }
}
