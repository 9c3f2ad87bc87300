//! Receiving datagrams in batches: one `recvmmsg` returns every datagram already queued
//! (up to [`BATCH`]) after waiting for the first, so a burst costs one system call per
//! batch instead of one per datagram, and its replay floors can be committed together.

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

/// Datagrams taken per system call (and per floor commit).
pub(crate) const BATCH: usize = 64;
/// Large enough that an oversized datagram is seen as oversized, not as 94 bytes.
pub(crate) const DATAGRAM_BUFFER: usize = 512;

/// Preallocated buffers and headers for one batch.
pub(crate) struct Batch {
    buffers: Vec<[u8; DATAGRAM_BUFFER]>,
    headers: MultiHeaders<SockaddrStorage>,
    /// Length and source of each datagram of the last batch.
    received: Vec<(usize, Option<SocketAddr>)>,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Self {
            buffers: vec![[0u8; DATAGRAM_BUFFER]; BATCH],
            headers: MultiHeaders::preallocate(BATCH, None),
            received: Vec::with_capacity(BATCH),
        }
    }

    /// Waits for one datagram (up to the socket's read timeout), then takes what else is
    /// queued without waiting. Returns how many there are.
    pub(crate) fn receive(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        self.received.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|b| [IoSliceMut::new(b)])
            .collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(std::io::Error::from)?;
        for msg in results {
            // A datagram longer than the buffer arrives as the full buffer (MSG_TRUNC):
            // DATAGRAM_BUFFER bytes, which no format has, so it is judged oversized.
            let source = msg.address.and_then(|a| to_std(&a));
            self.received.push((msg.bytes, source));
        }
        Ok(self.received.len())
    }

    /// Datagram `i` of the last batch: its bytes and its source.
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], Option<SocketAddr>)> {
        let (len, source) = *self.received.get(i)?;
        Some((self.buffers.get(i)?.get(..len)?, source))
    }
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}
