//! The floor any UDP daemon pays: a bare `recvmmsg` loop (batches of 64, 512-byte
//! buffers) that only counts datagrams. `udp-floor ADDR MAX_SECONDS` prints the bound
//! port, then receives until MAX_SECONDS have passed (it stops by itself).
#![forbid(unsafe_code)]

use std::io::{IoSliceMut, Write};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let max: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(300);
    let socket = UdpSocket::bind(&addr)?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    let _ = nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::RcvBuf, &(4 << 20));
    println!("{}", socket.local_addr()?.port());
    std::io::stdout().flush()?;
    let mut buffers = vec![[0u8; 512]; 64];
    let mut headers: MultiHeaders<SockaddrStorage> = MultiHeaders::preallocate(64, None);
    let mut count: u64 = 0;
    let mut bytes: u64 = 0;
    let end = Instant::now() + Duration::from_secs(max);
    while Instant::now() < end {
        let mut slices: Vec<[IoSliceMut<'_>; 1]> =
            buffers.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
        if let Ok(results) = recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        ) {
            for msg in results {
                // Look at what arrived, as any daemon must: its length and source.
                count += u64::from(msg.address.is_some());
                bytes += msg.bytes as u64;
            }
        }
    }
    eprintln!("udp-floor received {count} datagrams, {bytes} bytes");
    Ok(())
}
