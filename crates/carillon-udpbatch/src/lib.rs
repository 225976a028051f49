//! `carillon-udpbatch`: one `recvmmsg` per readiness check, for the relay
//! sockets (`carillon-rtpnet`) and the SIP signalling sockets
//! (`carillon-net`).
//!
//! Owns the receive buffers a worker's readers share and the reading of
//! up to [`RECV_BATCH`] (or `N`) datagrams with their sources in one
//! system call. A batch shorter than that means the socket's queue was
//! empty when the kernel looked, so the reader can clear its readiness
//! without the extra `recvfrom` that would only have returned `EAGAIN`
//! (one per relayed packet before: a third of the relay's system calls).

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams one `recvmmsg` of a relay socket may return.
pub const RECV_BATCH: usize = 4;

/// Room for one datagram (longer ones are truncated and fail RTP checks).
pub const MAX_DATAGRAM: usize = 2048;

/// Buffers and headers for `recvmmsg` of up to `N` datagrams, reused for
/// every call.
pub struct RecvBatch<const N: usize = RECV_BATCH> {
    headers: MultiHeaders<SockaddrStorage>,
    bufs: [Box<[u8]>; N],
    got: [(usize, Option<SocketAddr>); N],
}

impl RecvBatch<RECV_BATCH> {
    /// [`RECV_BATCH`] buffers of [`MAX_DATAGRAM`] bytes (a relay socket).
    pub fn new() -> Self {
        Self::with_room(MAX_DATAGRAM)
    }
}

impl Default for RecvBatch<RECV_BATCH> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RecvBatch<N> {
    /// `N` buffers of `room` bytes each (a longer datagram is truncated).
    pub fn with_room(room: usize) -> Self {
        RecvBatch {
            headers: MultiHeaders::preallocate(N, None),
            bufs: std::array::from_fn(|_| vec![0; room].into_boxed_slice()),
            got: [(0, None); N],
        }
    }

    /// One non-blocking `recvmmsg` on `fd`: how many datagrams arrived
    /// (an empty queue is `ErrorKind::WouldBlock`).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut iovs = self.bufs.each_mut().map(|b| [IoSliceMut::new(b)]);
        let msgs = recvmmsg(
            fd,
            &mut self.headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        let mut n = 0;
        for (slot, msg) in self.got.iter_mut().zip(msgs) {
            *slot = (msg.bytes, msg.address.as_ref().and_then(socket_addr));
            n += 1;
        }
        Ok(n)
    }

    /// The `i`th datagram of the last [`RecvBatch::recv`] (writable, for
    /// in-place rewriting) and its source.
    pub fn datagram(&mut self, i: usize) -> Option<(&mut [u8], SocketAddr)> {
        let (len, from) = *self.got.get(i)?;
        Some((self.bufs.get_mut(i)?.get_mut(..len)?, from?))
    }
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// A loopback socket (non-blocking for the receiving side).
    fn bound(nonblocking: bool) -> std::net::UdpSocket {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(nonblocking).unwrap();
        s
    }

    #[test]
    fn a_short_batch_returns_what_was_queued_with_sources_then_would_block() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..3u8 {
            tx.send_to(&[i; 5], rx.local_addr().unwrap()).unwrap();
        }
        let mut batch = RecvBatch::new();
        let mut seen = 0;
        // Loopback delivery is synchronous, but allow for it in two calls.
        while seen < 3 {
            let n = batch.recv(rx.as_raw_fd()).unwrap();
            for i in 0..n {
                let (bytes, from) = batch.datagram(i).unwrap();
                assert_eq!(bytes, &[seen as u8; 5]);
                assert_eq!(from, tx.local_addr().unwrap());
                seen += 1;
            }
        }
        let err = batch.recv(rx.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_full_batch_leaves_the_rest_queued() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..(RECV_BATCH as u8 + 1) {
            tx.send_to(&[i], rx.local_addr().unwrap()).unwrap();
        }
        let mut batch = RecvBatch::new();
        assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), RECV_BATCH);
        assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 1);
        assert_eq!(batch.datagram(0).unwrap().0, &[RECV_BATCH as u8]);
    }

    #[test]
    fn a_batch_of_any_size_reads_up_to_its_count_and_truncates_to_its_room() {
        let mut batch = RecvBatch::<2>::with_room(6);
        let (rx, tx) = (bound(true), bound(false));
        for i in 0..3u8 {
            tx.send_to(&[i; 10], rx.local_addr().unwrap()).unwrap();
        }
        assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 2);
        assert_eq!(batch.datagram(1).unwrap().0, &[1u8; 6]);
        assert!(batch.datagram(2).is_none());
        assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 1);
        assert_eq!(batch.datagram(0).unwrap().0, &[2u8; 6]);
    }
}
