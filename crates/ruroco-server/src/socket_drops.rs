//! The kernel's drop counter of the server's UDP socket: datagrams the socket filter
//! refused plus those that found the receive buffer full. Read from `/proc/net/udp` and
//! `/proc/net/udp6` (the line whose inode is the socket's; `drops` is its last column),
//! which needs no privilege and no system call beyond reading two small files.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// The socket's inode number.
pub(crate) fn inode(socket: &UdpSocket) -> Option<u64> {
    nix::sys::stat::fstat(socket.as_raw_fd())
        .ok()
        .map(|st| st.st_ino)
}

/// The drop counter of the socket with `inode`, if it can be read.
pub(crate) fn drops(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|table| find(&table, inode))
}

/// The `drops` column of the line for `inode` in a `/proc/net/udp` table.
fn find(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        let matches = fields.get(9).and_then(|f| f.parse::<u64>().ok()) == Some(inode);
        if matches {
            fields.last().and_then(|d| d.parse().ok())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_drops_of_its_own_line() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  123: 0100007F:9CA4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
  124: 0100007F:9CA5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 0\n";
        assert_eq!(find(table, 4242), Some(17));
        assert_eq!(find(table, 4243), Some(0));
        assert_eq!(find(table, 1), None);
    }

    #[test]
    fn a_real_socket_is_found_and_counts_filter_drops() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let ino = inode(&socket).unwrap();
        assert_eq!(drops(ino), Some(0));
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
        assert_eq!(drops(ino), Some(5));
    }
}
