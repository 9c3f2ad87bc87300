//! The kernel's drop counter of the server's UDP socket: datagrams the socket filter
//! refused plus those that found the receive buffer full.
//!
//! Read with `getsockopt(SO_MEMINFO)` on the socket itself (the `SK_MEMINFO_DROPS` word),
//! which needs no privilege and no file: the shipped unit's `ProcSubset=pid` hides
//! `/proc/net/udp`, where the same counter is a column. Neither `nix`, `rustix` nor
//! `socket2` offers this option, hence the one `libc` call below; the test holds it to the
//! counter `/proc/net/udp` shows.
// One getsockopt with a buffer of our own.
#![allow(unsafe_code)]

use std::net::UdpSocket;
use std::os::fd::{AsRawFd, OwnedFd};

/// `SO_MEMINFO` (include/uapi/asm-generic/socket.h; the same number on every architecture
/// but mips, parisc and sparc, where this build would not be used).
const SO_MEMINFO: libc::c_int = 55;

/// A handle on the socket for reading its counter (a duplicate descriptor: the socket
/// stays the receive loop's).
#[derive(Debug)]
pub(crate) struct DropCounter {
    fd: OwnedFd,
}

impl DropCounter {
    /// A handle on `socket`, or `None` if the descriptor cannot be duplicated.
    pub(crate) fn new(socket: &UdpSocket) -> Option<Self> {
        let fd = socket.try_clone().ok()?.into();
        Some(Self { fd })
    }

    /// The drop counter, if the kernel tells it.
    pub(crate) fn drops(&self) -> Option<u64> {
        // The kernel fills at most SK_MEMINFO_VARS words (9 today); more room is harmless.
        let mut words = [0u32; 16];
        let mut len = libc::socklen_t::try_from(std::mem::size_of_val(&words)).ok()?;
        // SAFETY: `words` is a live, writable buffer of `len` bytes for the whole call; the
        // kernel writes at most `len` bytes into it and stores the written length in `len`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_MEMINFO,
                words.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let index = usize::try_from(libc::SK_MEMINFO_DROPS).ok()?;
        let filled = usize::try_from(len).ok()? / std::mem::size_of::<u32>();
        if rc != 0 || index >= filled {
            return None;
        }
        words.get(index).map(|d| u64::from(*d))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// The `drops` column of `/proc/net/udp` for the socket with `inode`.
    fn proc_drops(inode: u64) -> Option<u64> {
        let table = std::fs::read_to_string("/proc/net/udp").ok()?;
        table.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(9)?.parse::<u64>().ok()? == inode)
                .then(|| fields.last()?.parse().ok())
                .flatten()
        })
    }

    #[test]
    fn counts_what_the_filter_drops_as_proc_net_udp_does() {
        use std::os::unix::fs::MetadataExt;
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
            .unwrap()
            .ino();
        let counter = DropCounter::new(&socket).unwrap();
        assert_eq!(counter.drops(), Some(0));
        let drop_all = [socket2::SockFilter::new(0x06, 0, 0, 0)];
        socket2::SockRef::from(&socket)
            .attach_filter(&drop_all)
            .unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..5 {
            sender
                .send_to(b"junk", socket.local_addr().unwrap())
                .unwrap();
        }
        assert_eq!(counter.drops(), Some(5));
        assert_eq!(proc_drops(inode), Some(5));
    }
}
