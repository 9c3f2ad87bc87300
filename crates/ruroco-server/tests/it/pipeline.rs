//! The datagram pipeline: every rejection reason, replay floors, rate limits, floods.

use std::net::{IpAddr, UdpSocket};
use std::time::Duration;

use ruroco_proto::{command_hash, seal, Key, Plaintext, Wire, NANOS_PER_SEC};

use crate::util::{now_nanos, udp_queue, wait_drained, Fixture, Inbox, Running};

const QUIET: Duration = Duration::from_millis(300);

fn plain(counter: u128) -> Plaintext {
    Plaintext {
        version: 1,
        cmd_hash: command_hash("default"),
        counter,
        strict: true,
        src_ip: None,
        dst_ip: "127.0.0.1".parse().unwrap(),
    }
}

/// Sends `bytes`, expects the rejection line for `reason` and no forwarded command.
fn expect_rejected(server: &Running, inbox: &Inbox, bytes: &[u8], reason: &str) {
    let needle = format!("reason={reason}");
    let before = server.count_log(&needle);
    server.send(bytes);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while server.count_log(&needle) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle} line\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    inbox.assert_empty(QUIET, reason);
}

#[test]
fn every_rejection_reason_forwards_nothing() {
    let fx = Fixture::with_config(
        "max_clock_skew_seconds = 60\nmax_requests_per_second = 1\nkernel_filter = false",
    );
    let inbox = fx.inbox();
    let server = fx.start();
    let now = now_nanos();

    expect_rejected(&server, &inbox, &[0u8; 92], "size");
    expect_rejected(&server, &inbox, &[0u8; 95], "size");
    // 93 bytes is the released v0 format (accepted by default): it gets to the key lookup.
    expect_rejected(&server, &inbox, &[0u8; 93], "unknown_key");
    expect_rejected(&server, &inbox, &[], "size");
    let stranger = Key::generate().unwrap();
    expect_rejected(
        &server,
        &inbox,
        &seal(&stranger, Wire::V1, &plain(now)).unwrap(),
        "unknown_key",
    );
    let mut tampered = fx.packet_with(plain(now));
    tampered[60] ^= 0x01;
    expect_rejected(&server, &inbox, &tampered, "auth");
    expect_rejected(
        &server,
        &inbox,
        &fx.packet_with(Plaintext {
            version: 2,
            ..plain(now)
        }),
        "version",
    );
    // Made well before the server started: below the seeded floor (now minus the grace
    // that lets the knock which woke a socket-activated server run).
    expect_rejected(
        &server,
        &inbox,
        &fx.packet_with(plain(now - 30 * NANOS_PER_SEC)),
        "replay",
    );
    expect_rejected(
        &server,
        &inbox,
        &fx.packet_with(plain(now_nanos() + 120 * NANOS_PER_SEC)),
        "future",
    );
    let wrong_dst = Plaintext {
        dst_ip: "192.0.2.1".parse().unwrap(),
        ..plain(now_nanos())
    };
    expect_rejected(&server, &inbox, &fx.packet_with(wrong_dst), "dst_ip");
    let wrong_src = Plaintext {
        src_ip: Some("192.0.2.9".parse().unwrap()),
        ..plain(now_nanos())
    };
    expect_rejected(&server, &inbox, &fx.packet_with(wrong_src), "src_ip");

    // One valid datagram goes through; the identical bytes again are a replay.
    let valid = fx.packet_with(plain(now_nanos()));
    server.send(&valid);
    let msg = inbox
        .recv(Duration::from_secs(3))
        .expect("valid datagram forwarded");
    assert_eq!(msg.cmd_hash, command_hash("default"));
    assert_eq!(msg.ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    expect_rejected(&server, &inbox, &valid, "replay");
    // Three fresh datagrams back to back against a limit of 1 per second span at most two
    // one-second windows, so at least one is over the limit; exactly the others go through.
    let base = now_nanos();
    for n in 0..3 {
        server.send(&fx.packet_with(plain(base + n)));
    }
    assert!(
        server.wait_log("reason=rate", Duration::from_secs(3)),
        "{}",
        server.log_text()
    );
    let mut forwarded = 0;
    while inbox.recv(QUIET).is_some() {
        forwarded += 1;
    }
    let limited = server.count_log("reason=rate");
    assert_eq!(forwarded + limited, 3, "{}", server.log_text());

    let log = server.stop();
    let counters = log
        .lines()
        .rev()
        .find(|l| l.contains("counters:"))
        .expect("counters at shutdown");
    let accepted = format!("accepted={}", 1 + forwarded);
    let rate = format!("rate={limited}");
    for want in [
        accepted.as_str(),
        "size=3",
        "unknown_key=2",
        "accepted_v0=0",
        "auth=1",
        "version=1",
        "replay=2",
        "future=1",
        "dst_ip=1",
        "src_ip=1",
        rate.as_str(),
    ] {
        assert!(
            counters.contains(&format!(" {want}")),
            "{want} missing in {counters}"
        );
    }
}

#[test]
fn a_valid_datagram_with_padding_past_the_buffer_is_a_size_rejection() {
    // Judged by its real length (it arrives truncated to the buffer), never as the
    // 94-byte prefix.
    let fx = Fixture::with_config("kernel_filter = false");
    let inbox = fx.inbox();
    let server = fx.start();
    let mut padded = fx.packet_with(plain(now_nanos())).to_vec();
    padded.resize(4000, 0);
    expect_rejected(&server, &inbox, &padded, "size");
}

#[test]
fn permissive_claim_is_forwarded_and_strict_matching_claim_too() {
    let fx = Fixture::new();
    let inbox = fx.inbox();
    let server = fx.start();
    let claim: IpAddr = "198.51.100.7".parse().unwrap();
    server.send(&fx.packet_with(Plaintext {
        strict: false,
        src_ip: Some(claim),
        ..plain(now_nanos())
    }));
    assert_eq!(inbox.recv(Duration::from_secs(3)).unwrap().ip, claim);
    let own: IpAddr = "127.0.0.1".parse().unwrap();
    server.send(&fx.packet_with(Plaintext {
        src_ip: Some(own),
        ..plain(now_nanos())
    }));
    assert_eq!(inbox.recv(Duration::from_secs(3)).unwrap().ip, own);
}

#[test]
fn replay_after_restart_is_rejected() {
    let fx = Fixture::new();
    let inbox = fx.inbox();
    let packet = fx.packet("default", now_nanos() + 2 * NANOS_PER_SEC);
    let server = fx.start();
    server.send(&packet);
    assert!(inbox.recv(Duration::from_secs(3)).is_some());
    server.stop();
    let server = fx.start();
    expect_rejected(&server, &inbox, &packet, "replay");
    // A lower counter that is still after the restart's "now" is refused too: the stored
    // floor, higher than now, wins over seeding.
    expect_rejected(
        &server,
        &inbox,
        &fx.packet("default", now_nanos()),
        "replay",
    );
}

#[test]
fn floor_that_cannot_be_written_stops_forwarding() {
    let fx = Fixture::new();
    let inbox = fx.inbox();
    let server = fx.start();
    // A file size limit below the floor file makes every floor write fail (EFBIG).
    crate::util::limit_file_size(&server, Some(100));
    let packet = fx.packet("default", now_nanos());
    server.send(&packet);
    assert!(
        server.wait_log("not forwarded", Duration::from_secs(3)),
        "{}",
        server.log_text()
    );
    inbox.assert_empty(QUIET, "floor not persisted");
    // Once the disk works again, the refused datagram stays refused (it was spent in
    // memory) and a new one runs; its commit makes both durable.
    crate::util::limit_file_size(&server, None);
    expect_rejected(&server, &inbox, &packet, "replay");
    server.send(&fx.packet("default", now_nanos()));
    assert!(
        inbox.recv(Duration::from_secs(3)).is_some(),
        "{}",
        server.log_text()
    );
    server.stop();
    let server = fx.start();
    expect_rejected(&server, &inbox, &packet, "replay");
}

#[test]
fn absent_commander_is_logged_and_the_server_keeps_serving() {
    let fx = Fixture::new();
    let server = fx.start();
    server.send(&fx.packet("default", now_nanos()));
    assert!(
        server.wait_log("commander not reachable", Duration::from_secs(3)),
        "{}",
        server.log_text()
    );
    let inbox = fx.inbox();
    server.send(&fx.packet("default", now_nanos() + 1));
    assert!(
        inbox.recv(Duration::from_secs(3)).is_some(),
        "{}",
        server.log_text()
    );
}

#[test]
fn never_sends_a_byte_back() {
    let fx = Fixture::with_config("max_requests_per_second = 1");
    let inbox = fx.inbox();
    let server = fx.start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server.addr).unwrap();
    let valid = fx.packet("default", now_nanos());
    let datagrams: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 94],
        vec![0xff; 1500],
        valid.to_vec(),
        valid.to_vec(),
        fx.packet("default", now_nanos()).to_vec(),
        b"GET / HTTP/1.0\r\n\r\n".to_vec(),
    ];
    for d in &datagrams {
        sock.send(d).unwrap();
    }
    assert!(inbox.recv(Duration::from_secs(3)).is_some());
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 2048];
    match sock.recv(&mut buf) {
        Ok(n) => panic!("server answered with {n} bytes"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "unexpected error {e}"
        ),
    }
}

#[test]
fn junk_from_the_clients_own_address_does_not_use_its_budget() {
    let fx =
        Fixture::with_config("max_requests_per_second = 2\nmax_requests_per_second_global = 2");
    let inbox = fx.inbox();
    let server = fx.start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = Key::generate().unwrap();
    for n in 0..2000u32 {
        let junk = match n % 3 {
            0 => vec![1u8; 94],
            1 => seal(&stranger, Wire::V1, &plain(now_nanos()))
                .unwrap()
                .to_vec(),
            _ => {
                let mut p = fx.packet("default", now_nanos());
                p[70] ^= 0x80;
                p.to_vec()
            }
        };
        sock.send_to(&junk, server.addr).unwrap();
    }
    wait_drained(server.addr);
    let base = now_nanos();
    sock.send_to(&fx.packet("default", base), server.addr)
        .unwrap();
    sock.send_to(&fx.packet("default", base + 1), server.addr)
        .unwrap();
    assert!(
        inbox.recv(Duration::from_secs(5)).is_some(),
        "{}",
        server.log_text()
    );
    assert!(
        inbox.recv(Duration::from_secs(5)).is_some(),
        "{}",
        server.log_text()
    );
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn valid_datagrams_survive_a_garbage_flood_from_many_sources() {
    const VALID: usize = 20;
    const GARBAGE: usize = 100_000;
    const PER_SOURCE: usize = 50;
    let fx = Fixture::with_config("kernel_filter = false");
    let inbox = fx.inbox();
    let server = fx.start();
    let stranger = Key::generate().unwrap();
    let junk_kinds = [
        vec![0u8; 93],
        vec![7u8; 94],
        seal(&stranger, Wire::V1, &plain(now_nanos()))
            .unwrap()
            .to_vec(),
    ];
    let mut sent_valid = 0;
    let per_valid = GARBAGE / VALID;
    let mut junk_sock = None;
    let mut rss_early = 0;
    for n in 0..GARBAGE {
        // A new source address every PER_SOURCE datagrams: 2,000 distinct 127.x.y.z.
        if n % PER_SOURCE == 0 {
            let k = n / PER_SOURCE;
            junk_sock = Some(
                UdpSocket::bind(format!(
                    "127.{}.{}.{}:0",
                    1 + k / 250 % 250,
                    1 + k % 250,
                    2 + k % 200
                ))
                .unwrap(),
            );
        }
        let sock = junk_sock.as_ref().unwrap();
        let junk = &junk_kinds[n % junk_kinds.len()];
        // Loopback UDP drops silently when the server's receive buffer is full; that would
        // test the kernel, not the server, so the sender lets the server catch up.
        if n % 50 == 0 {
            wait_drained(server.addr);
        }
        sock.send_to(junk, server.addr).unwrap();
        if n == GARBAGE / 10 {
            rss_early = rss_kib(server.child.id());
        }
        if n % per_valid == per_valid / 2 {
            // Per-source limit is 2/s: the valid datagrams come from distinct addresses.
            let valid_sock = UdpSocket::bind(format!("127.0.9.{}:0", sent_valid + 1)).unwrap();
            valid_sock
                .send_to(&fx.packet("default", now_nanos()), server.addr)
                .unwrap();
            sent_valid += 1;
        }
    }
    assert_eq!(sent_valid, VALID);
    let mut got = 0;
    while got < VALID {
        match inbox.recv(Duration::from_secs(10)) {
            Some(_) => got += 1,
            None => break,
        }
    }
    let rss_late = rss_kib(server.child.id());
    assert_eq!(
        udp_queue(server.addr).1,
        0,
        "the kernel dropped datagrams: the test overran the server"
    );
    let log = server.stop();
    assert_eq!(
        got,
        VALID,
        "{}",
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    // Memory stays flat: 90,000 more datagrams from 1,800 more sources add (almost) nothing.
    assert!(
        rss_late < rss_early + 2048,
        "RSS grew from {rss_early} KiB to {rss_late} KiB"
    );
    // The log stayed bounded: at most a few lines per tracked source.
    assert!(
        log.lines().count() < 1200,
        "{} log lines",
        log.lines().count()
    );
    let counters = log.lines().rev().find(|l| l.contains("counters:")).unwrap();
    assert!(
        counters.contains(&format!("accepted={VALID} ")),
        "{counters}"
    );
}

#[test]
fn stalled_commander_never_blocks_the_receive_loop() {
    use nix::sys::socket::{
        bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
    };
    let fx = Fixture::with_config("max_requests_per_second = 100\nkernel_filter = false");
    // A commander that listens but never accepts, with the smallest backlog.
    let listener = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&listener),
        &UnixAddr::new(&fx.path().join("ruroco.socket")).unwrap(),
    )
    .unwrap();
    listen(&listener, Backlog::new(0).unwrap()).unwrap();
    let server = fx.start();
    let base = now_nanos();
    for n in 0..4 {
        server.send(&fx.packet("default", base + n));
    }
    assert!(
        server.wait_log("backlog stayed full", Duration::from_secs(10)),
        "{}",
        server.log_text()
    );
    // Still serving: a junk datagram is seen and judged promptly.
    server.send(&[0u8; 3]);
    assert!(
        server.wait_log("reason=size", Duration::from_secs(5)),
        "{}",
        server.log_text()
    );
    drop(listener);
}

#[test]
fn junk_from_many_sources_never_hides_a_replay_line() {
    let fx = Fixture::with_config("kernel_filter = false");
    let inbox = fx.inbox();
    let server = fx.start();
    // More spoofed-looking sources than the log tracks per window, each logging its line.
    for k in 0..300u32 {
        let sock = UdpSocket::bind(format!("127.3.{}.{}:0", 1 + k / 200, 1 + k % 200)).unwrap();
        sock.send_to(&[0u8; 10], server.addr).unwrap();
        if k % 50 == 0 {
            wait_drained(server.addr);
        }
    }
    assert!(
        server.wait_log_count("reason=size", 256, Duration::from_secs(5)),
        "{}",
        server.log_text()
    );
    let packet = fx.packet("default", now_nanos());
    server.send(&packet);
    assert!(inbox.recv(Duration::from_secs(3)).is_some());
    // The replay's line names the key and the source, though the per-source table is full.
    expect_rejected(&server, &inbox, &packet, "replay");
    assert!(server
        .log_text()
        .contains(&format!("reason=replay key={}", fx.key.id())));
}
