//! Loopback traffic: junk and valid datagrams, from one source or from many (each
//! datagram's source address set with IP_PKTINFO: every 127.0.0.0/8 address is local, so
//! this needs no privilege and nothing leaves the machine).

use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use nix::libc;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn};
use ruroco_proto::{command_hash, seal, Key, Plaintext, Wire};

/// The `i`-th of many loopback source addresses: 127.1.0.1, 127.1.0.2, … (never 127.0.0.1).
pub(crate) fn source(i: u32) -> Ipv4Addr {
    let n = 0x7f01_0000u32 + (i % 0x00fe_ffff) + 1;
    Ipv4Addr::from(n)
}

/// 94 bytes that are no datagram of any loaded key (random key id): the cheapest reject
/// after the length check, and what a scanner or a spoofed flood sends.
pub(crate) fn junk(i: u64) -> [u8; 94] {
    let mut bytes = [0u8; 94];
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    bytes
}

/// A valid v1 datagram for `command`, addressed to 127.0.0.1.
pub(crate) fn valid(key: &Key, command: &str, counter: u128) -> anyhow::Result<Vec<u8>> {
    let pt = Plaintext {
        version: 1,
        cmd_hash: command_hash(command),
        counter,
        strict: false,
        src_ip: None,
        dst_ip: "127.0.0.1".parse()?,
    };
    Ok(seal(key, Wire::V1, &pt)?.to_vec())
}

/// A sender on an unbound loopback socket.
pub(crate) struct Sender {
    socket: UdpSocket,
}

impl Sender {
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(Self {
            socket: UdpSocket::bind("0.0.0.0:0")?,
        })
    }

    /// Sends `bytes` to `to` from address `from` (port chosen by the kernel).
    pub(crate) fn send_from(&self, from: Ipv4Addr, to: SocketAddrV4, bytes: &[u8]) -> bool {
        let info = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(from).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
        let iov = [IoSlice::new(bytes)];
        let dest = SockaddrIn::from(to);
        sendmsg(
            self.socket.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::empty(),
            Some(&dest),
        )
        .is_ok()
    }

    /// Sends `bytes` to `to` from this socket's own address.
    pub(crate) fn send(&self, to: SocketAddr, bytes: &[u8]) -> bool {
        self.socket.send_to(bytes, to).is_ok()
    }
}
