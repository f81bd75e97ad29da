//! The I/O seam: accept, read into an owned buffer, write an owned buffer. Both
//! backends run the same connection driver behind it.
//!
//! Buffers are owned rather than borrowed because io_uring needs them to stay
//! put while the kernel works on them; the epoll side simply follows suit.

use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use crate::ring::RingStream;

/// A bound, listening socket, before a worker's runtime takes it over.
pub(crate) enum Bound {
    /// One per worker (`SO_REUSEPORT`).
    Tcp(std::net::TcpListener),
    /// One socket for all workers, each holding a duplicate of its descriptor.
    Unix(std::os::unix::net::UnixListener),
}

/// A listening socket of one worker. Connections are accepted through the
/// reactor's readiness on both backends (accepting is not on the per-RPC
/// path); with io_uring, an accepted connection's reads and writes then go
/// through the ring.
pub(crate) enum Listener {
    Tcp {
        listener: tokio::net::TcpListener,
        uring: bool,
    },
    Unix {
        listener: tokio::net::UnixListener,
        uring: bool,
    },
}

impl Listener {
    /// Wraps a bound, listening, non-blocking std listener for `backend`.
    pub(crate) fn new(listener: Bound, uring: bool) -> io::Result<Listener> {
        Ok(match listener {
            Bound::Tcp(listener) => Listener::Tcp {
                listener: tokio::net::TcpListener::from_std(listener)?,
                uring,
            },
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
            Listener::Tcp { listener, uring } => {
                let (stream, addr) = listener.accept().await?;
                stream.set_nodelay(true)?;
                let socket = if *uring {
                    Socket::Ring(RingStream::new(stream.into_std()?.into())?)
                } else {
                    Socket::Epoll(stream)
                };
                Ok((socket, Some(addr)))
            }
            Listener::Unix { listener, uring } => {
                let (stream, _) = listener.accept().await?;
                let socket = if *uring {
                    Socket::Ring(RingStream::new(stream.into_std()?.into())?)
                } else {
                    Socket::EpollUnix(stream)
                };
                Ok((socket, None))
            }
        }
    }
}

/// `out` with the runs of `spliced` inserted at their positions, copied into
/// one buffer (and `spliced` emptied).
fn splice_into(out: &[u8], spliced: &mut Vec<(usize, Bytes)>) -> BytesMut {
    let total = out.len() + spliced.iter().map(|(_, d)| d.len()).sum::<usize>();
    let mut flat = BytesMut::with_capacity(total);
    let mut from = 0;
    for (at, data) in spliced.drain(..) {
        flat.extend_from_slice(&out[from..at]);
        flat.extend_from_slice(&data);
        from = at;
    }
    flat.extend_from_slice(&out[from..]);
    flat
}

/// The pieces of `out` and `spliced` in write order, each non-empty, calling
/// `piece` with a slice of `out` (`Err(range)`) or a run (`Ok(bytes)`).
fn for_each_piece<'a>(
    out_len: usize,
    spliced: &'a [(usize, Bytes)],
    mut piece: impl FnMut(Result<&'a Bytes, std::ops::Range<usize>>),
) {
    let mut from = 0;
    for (at, data) in spliced {
        if *at > from {
            piece(Err(from..*at));
        }
        if !data.is_empty() {
            piece(Ok(data));
        }
        from = *at;
    }
    if out_len > from {
        piece(Err(from..out_len));
    }
}

/// Vectored write of `out` + `spliced` to a readiness-based stream, waiting
/// for writability. One iovec array per batch (an allocation per write, not
/// per message); partial writes advance through it.
macro_rules! epoll_writev {
    ($s:expr, $out:expr, $spliced:expr) => {{
        let out = $out;
        let mut slices: Vec<io::IoSlice<'_>> = Vec::with_capacity(2 * $spliced.len() + 1);
        for_each_piece(out.len(), $spliced, |piece| {
            slices.push(io::IoSlice::new(match piece {
                Ok(data) => &data[..],
                Err(range) => &out[range],
            }))
        });
        let mut rest = &mut slices[..];
        let result = loop {
            if rest.is_empty() {
                break Ok(());
            }
            match $s.try_write_vectored(rest) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = $s.writable().await {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        drop(slices);
        $spliced.clear();
        (result, out)
    }};
}

/// Most iovecs one `writev` takes (Linux's `UIO_MAXIOV`): more is `EINVAL`.
const MAX_IOVECS: usize = 1024;

/// Vectored write through the ring: the pieces go as `Bytes` (the output
/// buffer frozen and sliced; its memory comes back to the buffer once the
/// write is done), at most [`MAX_IOVECS`] per send.
async fn ring_write_spliced(
    s: &RingStream,
    mut out: BytesMut,
    spliced: &mut Vec<(usize, Bytes)>,
) -> (io::Result<()>, BytesMut) {
    let frozen = out.split().freeze();
    let mut pieces: Vec<Bytes> = Vec::with_capacity(2 * spliced.len() + 1);
    for_each_piece(frozen.len(), spliced, |piece| {
        pieces.push(match piece {
            Ok(data) => data.clone(),
            Err(range) => Bytes::slice(&frozen, range),
        })
    });
    spliced.clear();
    drop(frozen);
    let result = s.write_pieces(pieces, MAX_IOVECS).await;
    // The frozen pieces are gone: the buffer's memory is its own again.
    out.clear();
    (result, out)
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

    /// Whether [`write_spliced`](Self::write_spliced) writes without copying:
    /// only then does the writer ask the codec to leave large payloads out of
    /// the output buffer.
    fn writes_spliced(&self) -> bool {
        false
    }

    /// Writes `out` with the runs of `spliced` inserted at their positions (see
    /// `Connection::poll_transmit_vectored`), in one vectored write where the
    /// socket takes it all; empties `spliced` and gives `out` back. The default
    /// copies everything into one buffer.
    async fn write_spliced(
        &self,
        out: BytesMut,
        spliced: &mut Vec<(usize, Bytes)>,
    ) -> (io::Result<()>, BytesMut) {
        let flat = splice_into(&out, spliced);
        let (result, _) = self.write_all(flat).await;
        (result, out)
    }

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

/// Reads what has arrived on a readiness-based stream into `buf`'s spare
/// capacity, without waiting. A read that fills less than the room it had
/// found the socket's receive queue empty, so it also clears the stream's
/// readiness: the next wait goes to the reactor instead of costing a second
/// `recvfrom` that only returns EAGAIN (one syscall in three at saturation).
/// Nothing is lost: data that lands during or after the read is a new
/// edge-triggered event, and the reactor clears readiness only if no event
/// came after the one this read was woken by.
macro_rules! epoll_try_read {
    ($s:expr, $buf:expr) => {{
        let room = $buf.capacity() - $buf.len();
        let mut drained = None;
        let result = $s.try_io(tokio::io::Interest::READABLE, || {
            let n = $s.try_read_buf($buf)?;
            if n > 0 && n < room {
                drained = Some(n);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match drained {
            Some(n) => Ok(n),
            None => result,
        }
    }};
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
    fn writes_spliced(&self) -> bool {
        true
    }

    async fn write_spliced(
        &self,
        out: BytesMut,
        spliced: &mut Vec<(usize, Bytes)>,
    ) -> (io::Result<()>, BytesMut) {
        match self {
            Socket::Ring(s) => ring_write_spliced(s, out, spliced).await,
            Socket::Epoll(s) => epoll_writev!(s, out, spliced),
            Socket::EpollUnix(s) => epoll_writev!(s, out, spliced),
        }
    }

    #[inline]
    fn idle_wait(&self) -> IdleWait {
        match self {
            Socket::Ring(_) => IdleWait::SmallBuffer,
            Socket::Epoll(_) | Socket::EpollUnix(_) => IdleWait::Readiness,
        }
    }

    async fn readable(&self) -> io::Result<()> {
        match self {
            Socket::Epoll(s) => s.readable().await,
            Socket::EpollUnix(s) => s.readable().await,
            // The ring waits in the read itself.
            Socket::Ring(_) => Ok(()),
        }
    }

    fn try_read(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Socket::Epoll(s) => epoll_try_read!(s, buf),
            Socket::EpollUnix(s) => epoll_try_read!(s, buf),
            Socket::Ring(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// A connected socket.
pub(crate) enum Socket {
    /// TCP or Unix, through the worker's ring.
    Ring(RingStream),
    Epoll(tokio::net::TcpStream),
    EpollUnix(tokio::net::UnixStream),
}

/// Reads from a readiness-based stream into `buf`, waiting for readability.
macro_rules! epoll_read {
    ($s:expr, $buf:expr) => {
        loop {
            match epoll_try_read!($s, &mut $buf) {
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
            Socket::Ring(s) => s.read(buf).await,
            Socket::Epoll(s) => epoll_read!(s, buf),
            Socket::EpollUnix(s) => epoll_read!(s, buf),
        }
    }

    /// Writes all of `buf`; gives it back for reuse.
    pub(crate) async fn write_all(&self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        match self {
            Socket::Ring(s) => s.write_all(buf).await,
            Socket::Epoll(s) => epoll_write_all!(s, buf),
            Socket::EpollUnix(s) => epoll_write_all!(s, buf),
        }
    }

    /// Shuts both directions: the client sees the end after what was written (our
    /// GOAWAY, when closing), and a read still pending on our side returns.
    pub(crate) fn shutdown(&self) {
        let _ = match self {
            Socket::Ring(s) => {
                s.shutdown();
                Ok(())
            }
            Socket::Epoll(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Both),
            Socket::EpollUnix(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Both),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs to splice in: (position in `out`, bytes).
    type Runs = Vec<(usize, &'static [u8])>;

    /// `out` and the runs spliced into it, with the bytes a write must send.
    fn cases() -> Vec<(&'static [u8], Runs, &'static [u8])> {
        vec![
            (b"abc", vec![], b"abc"),
            (b"", vec![(0, b"XY")], b"XY"),
            (b"abc", vec![(0, b"XY")], b"XYabc"),
            (b"abc", vec![(3, b"XY")], b"abcXY"),
            (b"abcd", vec![(2, b"XY")], b"abXYcd"),
            // Two runs at one position, and one at the very end.
            (b"abcd", vec![(1, b"X"), (1, b"YZ"), (4, b"W")], b"aXYZbcdW"),
            // An empty run is skipped, not written as an empty piece.
            (b"ab", vec![(1, b""), (2, b"Q")], b"abQ"),
        ]
    }

    #[test]
    fn flattened_and_vectored_writes_send_the_same_bytes() {
        for (out, runs, expected) in cases() {
            let spliced: Vec<(usize, Bytes)> = runs
                .iter()
                .map(|&(at, data)| (at, Bytes::from_static(data)))
                .collect();

            let mut pieces = Vec::new();
            for_each_piece(out.len(), &spliced, |piece| {
                let bytes = match piece {
                    Ok(data) => &data[..],
                    Err(range) => &out[range],
                };
                assert!(!bytes.is_empty(), "an empty piece for {out:?} {runs:?}");
                pieces.push(bytes.to_vec());
            });
            assert_eq!(pieces.concat(), expected, "pieces of {out:?} {runs:?}");

            let mut drained = spliced.clone();
            let flat = splice_into(out, &mut drained);
            assert_eq!(&flat[..], expected, "flattened {out:?} {runs:?}");
            assert!(drained.is_empty(), "the runs are taken");
        }
    }
}
