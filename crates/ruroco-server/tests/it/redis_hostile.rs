//! A hostile Redis on loopback (a fake one, run by the test): a reply trickled a byte at a
//! time is cut at the deadline while the server keeps serving and stops at once on
//! SIGTERM; oversized and mis-shaped replies are errors and memory stays flat.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::{now_nanos, Fixture};

const WAIT: Duration = Duration::from_secs(5);
/// The epoch script's answer of a primary whose fence is long past.
const EPOCH_REPLY: &[u8] = b"*2\r\n$32\r\n00000000000000000000000000000001\r\n$9\r\nfake:fake\r\n";

/// A fake Redis: on each connection it answers the server's first question (the primary's
/// epoch and fence) as a fresh primary would, then the next request with `reply(n)`,
/// written a chunk at a time with `pause` between chunks; stops when the flag is set.
fn fake_redis(
    reply: impl Fn(usize) -> Vec<u8> + Send + 'static,
    chunk: usize,
    pause: Duration,
) -> (u16, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    std::thread::spawn(move || {
        let mut n = 0;
        let started = Instant::now();
        while !flag.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 65536];
            let Ok(k) = conn.read(&mut buf) else {
                continue;
            };
            if buf[..k].windows(12).any(|w| w == b"ruroco:epoch") {
                // An epoch first seen long ago: its fence is in the past.
                let _ = conn.write_all(EPOCH_REPLY);
                if !matches!(conn.read(&mut buf), Ok(k) if k > 0) {
                    continue;
                }
            } else if k == 0 {
                continue;
            }
            n += 1;
            counter.store(n, Ordering::SeqCst);
            for piece in reply(n).chunks(chunk.max(1)) {
                if flag.load(Ordering::SeqCst) || conn.write_all(piece).is_err() {
                    break;
                }
                std::thread::sleep(pause);
            }
        }
    });
    (port, stop, served)
}

fn fixture(port: u16, timeout_ms: u32) -> Fixture {
    Fixture::with_config(&format!(
        "floor_store = \"redis://127.0.0.1:{port}/0\"\nfloor_store_timeout_ms = {timeout_ms}\nkernel_filter = false"
    ))
}

#[test]
fn a_trickled_reply_is_cut_at_the_deadline_and_sigterm_stops_the_server_at_once() {
    // A reply that would be valid, one byte every 150 ms (each read within the socket
    // timeout of 200 ms).
    let (port, stop, _) = fake_redis(
        |_| b"*1\r\n:1\r\n".repeat(100),
        1,
        Duration::from_millis(150),
    );
    let fx = fixture(port, 200);
    let inbox = fx.inbox();
    let server = fx.start();
    let sent = Instant::now();
    server.send(&fx.packet("default", now_nanos()));
    assert!(
        server.wait_log("did not answer within 200 ms", WAIT),
        "{}",
        server.log_text()
    );
    assert!(
        sent.elapsed() < Duration::from_millis(1500),
        "{:?}",
        sent.elapsed()
    );
    inbox.assert_empty(Duration::from_millis(300), "ran without the store's word");
    // Still serving: a junk datagram is judged at once.
    server.send(&[0u8; 10]);
    assert!(
        server.wait_log("reason=size", Duration::from_secs(1)),
        "{}",
        server.log_text()
    );
    // SIGTERM in the middle of a trickle stops it within about a second.
    std::thread::sleep(Duration::from_millis(300));
    server.send(&fx.packet("default", now_nanos()));
    std::thread::sleep(Duration::from_millis(50));
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    let mut server = server;
    server.wait_exit(Duration::from_secs(3)).unwrap();
    assert!(
        signalled.elapsed() < Duration::from_millis(1500),
        "{:?}",
        signalled.elapsed()
    );
    stop.store(true, Ordering::SeqCst);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn oversized_and_misshaped_replies_are_errors_and_memory_stays_flat() {
    // Each connection gets the next of these, then 4 MiB of junk behind it. (A reply of
    // the right shape is a verdict: Redis is trusted to say which counters are new.)
    let replies: Vec<Vec<u8>> = vec![
        b"*4096\r\n".to_vec(),
        b"*1\r\n*64\r\n".to_vec(),
        b"$67108864\r\n".to_vec(),
        b"*1\r\n:7\r\n".to_vec(),
        b"*1\r\n$2\r\nab\r\n".to_vec(),
        b"%1\r\n".to_vec(),
    ];
    let count = replies.len();
    let (port, stop, served) = fake_redis(
        move |n| {
            let mut r = replies[(n - 1) % replies.len()].clone();
            r.extend(std::iter::repeat_n(b'x', 4 << 20));
            r
        },
        64 * 1024,
        Duration::ZERO,
    );
    // A generous timeout: what is tested here is the shape and size, not the time (each
    // reply arrives at once), and a busy machine must not turn it into a timeout.
    let fx = fixture(port, 2000);
    let inbox = fx.inbox();
    let server = fx.start();
    let pid = server.pid().as_raw().unsigned_abs();
    let before = rss_kib(pid);
    // A knock every 150 ms until every hostile reply has been served (the server waits
    // out its reconnection backoff between them).
    let started = Instant::now();
    while served.load(Ordering::SeqCst) < count && started.elapsed() < Duration::from_secs(20) {
        server.send(&fx.packet("default", now_nanos()));
        std::thread::sleep(Duration::from_millis(150));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        served.load(Ordering::SeqCst) >= count,
        "{}",
        server.log_text()
    );
    let after = rss_kib(pid);
    inbox.assert_empty(Duration::from_millis(300), "ran on a hostile reply");
    let log = server.log_text();
    // Error lines are rate-limited (one per 10 s): the first one names the bound.
    assert!(log.contains("elements where at most"), "{log}");
    assert!(!log.contains("accepted datagram from"), "{log}");
    assert!(
        after < before + 2048,
        "RSS grew from {before} to {after} KiB\n{log}"
    );
    eprintln!("RSS before {before} KiB, after {count} hostile replies (each followed by 4 MiB) {after} KiB");
    stop.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect(("127.0.0.1", port));
}

/// One deadline per call, its retry included: the open connection answers the first call,
/// then fails 900 ms into the second (of a 1,000 ms budget); the retry on a fresh
/// connection gets no answer. The call gives up when the budget is spent, not 1,000 ms
/// after the retry began.
#[test]
fn a_retry_on_a_fresh_connection_keeps_the_calls_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&connections);
    std::thread::spawn(move || {
        for conn in listener.incoming().take(4) {
            let Ok(mut conn) = conn else { continue };
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::spawn(move || {
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 65536];
                if n == 1 {
                    // The epoch question and the first call: answered. The second: 900
                    // ms, then the connection goes away.
                    if matches!(conn.read(&mut buf), Ok(k) if k > 0) {
                        let _ = conn.write_all(EPOCH_REPLY);
                    }
                    if matches!(conn.read(&mut buf), Ok(k) if k > 0) {
                        let _ = conn.write_all(b"*1\r\n:1\r\n");
                    }
                    if matches!(conn.read(&mut buf), Ok(k) if k > 0) {
                        std::thread::sleep(Duration::from_millis(900));
                    }
                } else {
                    // Fresh connections: read, never answer.
                    let _ = conn.read(&mut buf);
                    std::thread::sleep(Duration::from_secs(5));
                }
            });
        }
    });
    let fx = fixture(port, 1000);
    let inbox = fx.inbox();
    let server = fx.start();
    server.send(&fx.packet("default", now_nanos()));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    let sent = Instant::now();
    server.send(&fx.packet("default", now_nanos()));
    assert!(
        server.wait_log("trying a fresh one", WAIT),
        "{}",
        server.log_text()
    );
    assert!(
        server.wait_log("did not answer within 1000 ms", WAIT),
        "{}",
        server.log_text()
    );
    let took = sent.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "one call took {took:?}, more than its 1000 ms and a margin: the retry restarted the clock"
    );
    inbox.assert_empty(Duration::from_millis(300), "ran without the store's word");
}

/// A reload reads keys without touching the floor store (which takes a restart to change):
/// a key deleted to revoke it is refused after the reload even when the store's name in
/// config.toml does not resolve.
#[test]
fn a_reload_revokes_a_key_without_resolving_the_store() {
    let (port, stop, _) = fake_redis(|_| b"*1\r\n:1\r\n".to_vec(), 64, Duration::ZERO);
    let fx = fixture(port, 500);
    let inbox = fx.inbox();
    let server = fx.start();
    server.send(&fx.packet("default", now_nanos()));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    // Revoke the only key but one: add a second, delete the first; and the store's name
    // no longer resolves.
    let other = ruroco_proto::Key::generate().unwrap();
    std::fs::write(
        fx.path().join("other.key"),
        other.to_key_string().as_bytes(),
    )
    .unwrap();
    std::fs::remove_file(fx.path().join("client.key")).unwrap();
    let text = std::fs::read_to_string(&fx.config).unwrap().replace(
        &format!("redis://127.0.0.1:{port}/0"),
        "redis://no-such-host.invalid:6379/0",
    );
    std::fs::write(&fx.config, text).unwrap();
    // ExecReload= runs --check first: an unresolvable name is a warning there, not a
    // failure that would keep the revoked key.
    let (ok, said) = fx.check();
    assert!(ok, "{said}");
    assert!(said.contains("does not resolve now"), "{said}");
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("reloaded", WAIT),
        "the reload failed: {}",
        server.log_text()
    );
    server.send(&fx.packet("default", now_nanos()));
    assert!(
        server.wait_log("reason=unknown_key", WAIT),
        "the revoked key still works: {}",
        server.log_text()
    );
    inbox.assert_empty(Duration::from_millis(300), "a revoked key ran");
    stop.store(true, Ordering::SeqCst);
}
