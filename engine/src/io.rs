//! The I/O seam: accept, read into an owned buffer, write an owned buffer. Both
//! backends run the same connection driver behind it.
//!
//! Buffers are owned rather than borrowed because io_uring needs them to stay
//! put while the kernel works on them; the epoll side simply follows suit.

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use tokio_uring::buf::BoundedBuf;

/// A bound, listening socket, before a worker's runtime takes it over.
pub(crate) enum Bound {
    /// One per worker (`SO_REUSEPORT`).
    Tcp(std::net::TcpListener),
    /// One socket for all workers, each holding a duplicate of its descriptor.
    Unix(std::os::unix::net::UnixListener),
}

/// A listening socket of one worker.
pub(crate) enum Listener {
    Uring(tokio_uring::net::TcpListener),
    Epoll(tokio::net::TcpListener),
    /// Unix sockets are accepted through the reactor's readiness on both
    /// backends (tokio-uring cannot adopt a listener bound elsewhere); with
    /// io_uring the accepted connection's reads and writes then go through the
    /// ring. Accepting is not on the per-RPC path.
    Unix {
        listener: tokio::net::UnixListener,
        uring: bool,
    },
}

impl Listener {
    /// Wraps a bound, listening, non-blocking std listener for `backend`.
    pub(crate) fn new(listener: Bound, uring: bool) -> io::Result<Listener> {
        Ok(match listener {
            Bound::Tcp(listener) if uring => {
                Listener::Uring(tokio_uring::net::TcpListener::from_std(listener))
            }
            Bound::Tcp(listener) => Listener::Epoll(tokio::net::TcpListener::from_std(listener)?),
            Bound::Unix(listener) => Listener::Unix {
                listener: tokio::net::UnixListener::from_std(listener)?,
                uring,
            },
        })
    }

    /// The next connection, with the peer's address for TCP (`None` for Unix
    /// sockets, whose peers have no IP address).
    pub(crate) async fn accept(&self) -> io::Result<(Socket, Option<SocketAddr>)> {
        match self {
            Listener::Uring(l) => {
                let (stream, addr) = l.accept().await?;
                stream.set_nodelay(true)?;
                Ok((Socket::Uring(stream), Some(addr)))
            }
            Listener::Epoll(l) => {
                let (stream, addr) = l.accept().await?;
                stream.set_nodelay(true)?;
                Ok((Socket::Epoll(stream), Some(addr)))
            }
            Listener::Unix { listener, uring } => {
                let (stream, _) = listener.accept().await?;
                let socket = if *uring {
                    let stream = stream.into_std()?;
                    // The ring does blocking-style operations itself; the
                    // descriptor must not return EAGAIN to it.
                    stream.set_nonblocking(false)?;
                    Socket::UringUnix(tokio_uring::net::UnixStream::from_std(stream))
                } else {
                    Socket::EpollUnix(stream)
                };
                Ok((socket, None))
            }
        }
    }
}

/// What a connection's reader and writer drive: a plaintext [`Socket`], or TLS
/// over one (`tls::TlsStream`). The connection driver is generic over it, so the
/// choice is made once per connection: a plaintext connection runs the same code
/// it would without TLS support (its `seal` is empty and inlined away).
pub(crate) trait Transport: 'static {
    /// Reads what arrived and appends its plaintext to `buf`, after its current
    /// contents: `Ok(n)` with the bytes read from the socket (over TLS they may
    /// have carried no plaintext), `Ok(0)` at the end of the stream.
    async fn read(&self, buf: BytesMut, want: usize) -> (io::Result<usize>, BytesMut);

    /// Turns the plaintext in `out` into the bytes to write, with anything the
    /// transport has to send of its own. `closing`: the connection is done, so
    /// whatever ends the transport goes too (TLS close_notify).
    fn seal(&self, out: &mut BytesMut, closing: bool) -> io::Result<()>;

    /// Writes all of `buf`; gives it back for reuse.
    async fn write_all(&self, buf: BytesMut) -> (io::Result<()>, BytesMut);

    /// Shuts the socket down both ways (see [`Socket::shutdown`]).
    fn shutdown(&self);

    /// How a read waits while the connection is idle: what decides how much
    /// memory an idle connection holds.
    fn idle_wait(&self) -> IdleWait {
        IdleWait::FullBuffer
    }

    /// Waits until the socket has something to read ([`IdleWait::Readiness`]).
    async fn readable(&self) -> io::Result<()> {
        Ok(())
    }

    /// Reads what has arrived into `buf`'s spare capacity without waiting:
    /// `Err(WouldBlock)` when nothing has ([`IdleWait::Readiness`]).
    fn try_read(&self, _buf: &mut BytesMut) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// How a connection's reader waits for a client that sends nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum IdleWait {
    /// Readiness first (epoll): the wait holds no buffer; one is taken for the
    /// read that follows and given back if the read found nothing.
    Readiness,
    /// The read itself waits, holding its buffer (io_uring): after a short read
    /// the next one waits with a small buffer.
    SmallBuffer,
    /// The read waits with a full-size buffer (TLS, whose record layer holds
    /// more than that anyway).
    FullBuffer,
}

impl Transport for Socket {
    #[inline]
    async fn read(&self, buf: BytesMut, want: usize) -> (io::Result<usize>, BytesMut) {
        Socket::read(self, buf, want).await
    }

    #[inline]
    fn seal(&self, _out: &mut BytesMut, _closing: bool) -> io::Result<()> {
        Ok(())
    }

    #[inline]
    async fn write_all(&self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        Socket::write_all(self, buf).await
    }

    #[inline]
    fn shutdown(&self) {
        Socket::shutdown(self)
    }

    #[inline]
    fn idle_wait(&self) -> IdleWait {
        match self {
            Socket::Uring(_) | Socket::UringUnix(_) => IdleWait::SmallBuffer,
            Socket::Epoll(_) | Socket::EpollUnix(_) => IdleWait::Readiness,
        }
    }

    async fn readable(&self) -> io::Result<()> {
        match self {
            Socket::Epoll(s) => s.readable().await,
            Socket::EpollUnix(s) => s.readable().await,
            // The ring waits in the read itself.
            Socket::Uring(_) | Socket::UringUnix(_) => Ok(()),
        }
    }

    fn try_read(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Socket::Epoll(s) => s.try_read_buf(buf),
            Socket::EpollUnix(s) => s.try_read_buf(buf),
            Socket::Uring(_) | Socket::UringUnix(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// A connected socket.
pub(crate) enum Socket {
    Uring(tokio_uring::net::TcpStream),
    Epoll(tokio::net::TcpStream),
    UringUnix(tokio_uring::net::UnixStream),
    EpollUnix(tokio::net::UnixStream),
}

/// Reads from a readiness-based stream into `buf`, waiting for readability.
macro_rules! epoll_read {
    ($s:expr, $buf:expr) => {
        loop {
            match $s.try_read_buf(&mut $buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = $s.readable().await {
                        return (Err(e), $buf);
                    }
                }
                result => return (result, $buf),
            }
        }
    };
}

/// Writes all of `buf` to a readiness-based stream, waiting for writability.
macro_rules! epoll_write_all {
    ($s:expr, $buf:expr) => {{
        let mut written = 0;
        while written < $buf.len() {
            match $s.try_write(&$buf[written..]) {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), $buf),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = $s.writable().await {
                        return (Err(e), $buf);
                    }
                }
                Err(e) => return (Err(e), $buf),
            }
        }
        (Ok(()), $buf)
    }};
}

impl Socket {
    /// Reads into the spare capacity of `buf` (after its current contents, which
    /// may hold the start of a frame), growing `buf` by what was read.
    pub(crate) async fn read(
        &self,
        mut buf: BytesMut,
        want: usize,
    ) -> (io::Result<usize>, BytesMut) {
        buf.reserve(want);
        match self {
            Socket::Uring(s) => {
                let start = buf.len();
                let end = buf.capacity();
                let (result, slice) = s.read(buf.slice(start..end)).await;
                (result, slice.into_inner())
            }
            Socket::UringUnix(s) => {
                let start = buf.len();
                let end = buf.capacity();
                let (result, slice) = s.read(buf.slice(start..end)).await;
                (result, slice.into_inner())
            }
            Socket::Epoll(s) => epoll_read!(s, buf),
            Socket::EpollUnix(s) => epoll_read!(s, buf),
        }
    }

    /// Writes all of `buf`; gives it back for reuse.
    pub(crate) async fn write_all(&self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        match self {
            Socket::Uring(s) => {
                let (result, buf) = s.write_all(buf).await;
                (result, buf)
            }
            Socket::UringUnix(s) => s.write_all(buf).await,
            Socket::Epoll(s) => epoll_write_all!(s, buf),
            Socket::EpollUnix(s) => epoll_write_all!(s, buf),
        }
    }

    /// Shuts both directions: the client sees the end after what was written (our
    /// GOAWAY, when closing), and a read still pending on our side returns.
    pub(crate) fn shutdown(&self) {
        let _ = match self {
            Socket::Uring(s) => s.shutdown(std::net::Shutdown::Both),
            Socket::UringUnix(s) => s.shutdown(std::net::Shutdown::Both),
            Socket::Epoll(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Both),
            Socket::EpollUnix(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Both),
        };
    }
}
