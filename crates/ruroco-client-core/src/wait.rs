//! Knock, then know: a server never answers, so whether a command opened a port is seen
//! only by trying it. [`connect_within`] tries a TCP connection to every address of the
//! host until one succeeds or the time is up, each attempt and the whole bounded;
//! [`watch`] does that after a knock, with one more knock if the port stays closed.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Longest single connection attempt.
const ATTEMPT: Duration = Duration::from_secs(1);
/// Pause between rounds of attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Connects to `host:port`, retrying every address until `wait` has passed; the stream
/// and how long it took, or why not (the last refusal).
pub fn connect_within(
    host: &str,
    port: u16,
    wait: Duration,
) -> anyhow::Result<(TcpStream, Duration)> {
    let started = Instant::now();
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{host}`"))?
        .collect();
    let deadline = started + wait;
    loop {
        let mut last = None;
        for addr in &addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = ATTEMPT.min(left).max(Duration::from_millis(10));
            match TcpStream::connect_timeout(addr, attempt) {
                Ok(stream) => return Ok((stream, started.elapsed())),
                Err(e) => last = Some(e),
            }
        }
        if Instant::now() + RETRY_PAUSE >= deadline {
            let why = last.map(|e| e.to_string()).unwrap_or_default();
            anyhow::bail!(
                "cannot connect to {host}:{port} within {} ms: {why}",
                wait.as_millis()
            );
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// What watching a port after a knock found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// The port answered after `took`; `second` when only after the second knock.
    Open {
        /// How long the successful wait took.
        took: Duration,
        /// Whether it took a second knock.
        second: bool,
    },
    /// It stayed closed through both waits; the last refusal.
    Closed(String),
}

/// Knock, then know: after the knock the caller has sent, tries `host:port` for `wait`;
/// if it stays closed, calls `knock_again` (which sends a fresh datagram, and may say so)
/// once and tries again. The command line and the desktop app both watch this way.
pub fn watch(
    host: &str,
    port: u16,
    wait: Duration,
    knock_again: impl FnOnce(&anyhow::Error) -> anyhow::Result<()>,
) -> anyhow::Result<Watched> {
    let first = match connect_within(host, port, wait) {
        Ok((_, took)) => {
            return Ok(Watched::Open {
                took,
                second: false,
            })
        }
        Err(e) => e,
    };
    knock_again(&first)?;
    Ok(match connect_within(host, port, wait) {
        Ok((_, took)) => Watched::Open { took, second: true },
        Err(e) => Watched::Closed(format!("{e:#}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_that_opens_late_is_found_and_a_closed_one_gives_up_in_time() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let started = Instant::now();
        assert!(connect_within("127.0.0.1", port, Duration::from_millis(300)).is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
            let _ = listener.accept();
        });
        let (_, took) = connect_within("127.0.0.1", port, Duration::from_secs(5)).unwrap();
        assert!(took >= Duration::from_millis(150), "{took:?}");
        opener.join().unwrap();
    }

    #[test]
    fn watch_knocks_once_more_and_says_what_it_found() {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let wait = Duration::from_millis(200);
        // Never opens: one more knock, then Closed.
        let port = free();
        let mut knocks = 0;
        let found = watch("127.0.0.1", port, wait, |_| {
            knocks += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(knocks, 1);
        assert!(matches!(found, Watched::Closed(_)), "{found:?}");
        // Opens with the second knock.
        let port = free();
        let mut listener = None;
        let found = watch("127.0.0.1", port, wait, |_| {
            listener = Some(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
            Ok(())
        })
        .unwrap();
        assert!(
            matches!(found, Watched::Open { second: true, .. }),
            "{found:?}"
        );
        // A second knock that cannot be sent is the error.
        let port = free();
        assert!(watch("127.0.0.1", port, wait, |_| anyhow::bail!("no")).is_err());
    }
}
