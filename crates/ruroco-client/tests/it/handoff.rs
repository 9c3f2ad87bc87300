//! No authenticated command lost to a commander restart: the server keeps what it
//! accepted while the commander is away and hands it over when it is back (up to 5 s);
//! past that, each lost command is logged.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::compat::{key_string, now_nanos, v0_datagram};
use crate::util::Stack;

const FAST: &str = "max_requests_per_second = 10000\nmax_requests_per_second_global = 10000";

#[test]
fn a_hundred_knocks_across_a_commander_restart_all_run_once() {
    let mut stack = Stack::start(FAST);
    let key = key_string(&stack);
    let addr = stack.addr;
    let sender = std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..100 {
            socket
                .send_to(&v0_datagram(&key, "default", now_nanos()), addr)
                .unwrap();
            std::thread::sleep(Duration::from_millis(15));
        }
    });
    std::thread::sleep(Duration::from_millis(400));
    stack.restart_commander(Duration::from_millis(600));
    sender.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while stack.runs("default") < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(stack.runs("default"), 100, "{}", stack.logs());
    assert!(
        stack.server.log_text().contains("to the commander after"),
        "nothing waited: the restart was not during the knocks\n{}",
        stack.logs()
    );
}

#[test]
fn a_commander_away_longer_than_the_bound_loses_commands_loudly() {
    let mut stack = Stack::start(FAST);
    let key = key_string(&stack);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    stack.stop_commander();
    for _ in 0..3 {
        socket
            .send_to(&v0_datagram(&key, "default", now_nanos()), stack.addr)
            .unwrap();
    }
    assert!(
        stack.server.wait_log_count(
            "NOT run: the commander stayed unreachable",
            3,
            Duration::from_secs(10)
        ),
        "{}",
        stack.server.log_text()
    );
    stack.start_commander();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(stack.runs("default"), 0, "a given-up command ran later");
}
