//! The I/O seam: accept, read into an owned buffer, write an owned buffer. Both
//! backends run the same connection driver behind it.
//!
//! Buffers are owned rather than borrowed because io_uring needs them to stay
//! put while the kernel works on them; the epoll side simply follows suit.

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use tokio_uring::buf::BoundedBuf;

/// A listening socket of one worker.
pub(crate) enum Listener {
    Uring(tokio_uring::net::TcpListener),
    Epoll(tokio::net::TcpListener),
}

impl Listener {
    /// Wraps a bound, listening, non-blocking std listener for `backend`.
    pub(crate) fn new(listener: std::net::TcpListener, uring: bool) -> io::Result<Listener> {
        Ok(if uring {
            Listener::Uring(tokio_uring::net::TcpListener::from_std(listener))
        } else {
            Listener::Epoll(tokio::net::TcpListener::from_std(listener)?)
        })
    }

    pub(crate) async fn accept(&self) -> io::Result<(Socket, SocketAddr)> {
        match self {
            Listener::Uring(l) => {
                let (stream, addr) = l.accept().await?;
                stream.set_nodelay(true)?;
                Ok((Socket::Uring(stream), addr))
            }
            Listener::Epoll(l) => {
                let (stream, addr) = l.accept().await?;
                stream.set_nodelay(true)?;
                Ok((Socket::Epoll(stream), addr))
            }
        }
    }
}

/// A connected socket.
pub(crate) enum Socket {
    Uring(tokio_uring::net::TcpStream),
    Epoll(tokio::net::TcpStream),
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
            Socket::Epoll(s) => loop {
                match s.try_read_buf(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Err(e) = s.readable().await {
                            return (Err(e), buf);
                        }
                    }
                    result => return (result, buf),
                }
            },
        }
    }

    /// Writes all of `buf`; gives it back for reuse.
    pub(crate) async fn write_all(&self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        match self {
            Socket::Uring(s) => {
                let (result, buf) = s.write_all(buf).await;
                (result, buf)
            }
            Socket::Epoll(s) => {
                let mut written = 0;
                while written < buf.len() {
                    match s.try_write(&buf[written..]) {
                        Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                        Ok(n) => written += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if let Err(e) = s.writable().await {
                                return (Err(e), buf);
                            }
                        }
                        Err(e) => return (Err(e), buf),
                    }
                }
                (Ok(()), buf)
            }
        }
    }

    /// Shuts both directions: the client sees the end after what was written (our
    /// GOAWAY, when closing), and a read still pending on our side returns.
    pub(crate) fn shutdown(&self) {
        let _ = match self {
            Socket::Uring(s) => s.shutdown(std::net::Shutdown::Both),
            Socket::Epoll(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Both),
        };
    }
}
