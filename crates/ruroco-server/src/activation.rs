//! Adopting the socket systemd passes as fd 3.

// Taking ownership of an inherited descriptor is unsafe by nature.
#![allow(unsafe_code)]

use std::net::UdpSocket;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{
    getsockname, getsockopt, sockopt, AddressFamily, SockType, SockaddrLike, SockaddrStorage,
};

/// systemd passes the first socket as fd 3 (`SD_LISTEN_FDS_START`).
const SD_LISTEN_FDS_START: RawFd = 3;

/// Takes ownership of fd 3 after checking that it is an open IPv4/IPv6 datagram socket.
pub(crate) fn adopt_fd3() -> anyhow::Result<UdpSocket> {
    let fd = SD_LISTEN_FDS_START;
    fcntl(fd, FcntlArg::F_GETFD).context("socket activation: fd 3 is not open")?;
    // Do not leak the listening socket into anything this process might execute.
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .context("socket activation: cannot set FD_CLOEXEC on fd 3")?;
    // SAFETY: fd 3 is open (checked above) and was handed to this process by its
    // parent, as LISTEN_PID/LISTEN_FDS say; nothing else in this process owns or
    // closes it, so the OwnedFd becomes its only owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let kind =
        getsockopt(&owned, sockopt::SockType).context("socket activation: fd 3 is not a socket")?;
    if kind != SockType::Datagram {
        bail!("socket activation: fd 3 is a {kind:?} socket, expected a UDP (datagram) socket");
    }
    let local: SockaddrStorage = getsockname(std::os::fd::AsRawFd::as_raw_fd(&owned))
        .context("socket activation: cannot read the address of fd 3")?;
    match local.family() {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => Ok(UdpSocket::from(owned)),
        other => {
            bail!("socket activation: fd 3 has address family {other:?}, expected IPv4 or IPv6")
        }
    }
}
