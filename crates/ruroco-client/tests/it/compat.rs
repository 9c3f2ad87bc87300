//! Released ruroco 0.14.x clients and configs against the real programs: v0 datagrams,
//! the released config layout, and the key string on `-k`.

use std::net::UdpSocket;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::util::{stderr, Layout, Stack};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(500);

pub(crate) fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A released-format datagram made here from the format's description, not by the
/// client: key id (8) ‖ iv (12) ‖ tag (16) ‖ AES-256-GCM ciphertext of cmd_hash u64 BE ‖
/// counter u128 BE ‖ strict ‖ src_ip (16, zero = none) ‖ dst_ip (16, IPv4-mapped).
pub(crate) fn v0_datagram(key_string: &str, command: &str, counter: u128) -> Vec<u8> {
    v0_datagram_for(key_string, command, counter, None)
}

/// Like [`v0_datagram`]; with `claimed`, a permissive datagram (strict 0) whose src_ip
/// is that address, so the command runs for it (`$RUROCO_IP`) whatever the sender.
pub(crate) fn v0_datagram_for(
    key_string: &str,
    command: &str,
    counter: u128,
    claimed: Option<std::net::Ipv4Addr>,
) -> Vec<u8> {
    let raw = STANDARD.decode(key_string.trim()).unwrap();
    assert_eq!(raw.len(), 40);
    let (id, secret) = raw.split_at(8);
    let mut plain = Vec::with_capacity(57);
    plain.extend_from_slice(&ruroco_ipc::command_hash(command).to_be_bytes());
    plain.extend_from_slice(&counter.to_be_bytes());
    match claimed {
        None => {
            plain.push(1);
            plain.extend_from_slice(&[0; 16]);
        }
        Some(ip) => {
            plain.push(0);
            plain.extend_from_slice(&ip.to_ipv6_mapped().octets());
        }
    }
    plain.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
    assert_eq!(plain.len(), 57);
    let iv = [0x42u8; 12];
    let cipher = Aes256Gcm::new_from_slice(secret).unwrap();
    let tag = cipher
        .encrypt_in_place_detached((&iv).into(), &[], &mut plain)
        .unwrap();
    let mut out = Vec::with_capacity(93);
    out.extend_from_slice(id);
    out.extend_from_slice(&iv);
    out.extend_from_slice(&tag);
    out.extend_from_slice(&plain);
    out
}

pub(crate) fn key_string(stack: &Stack) -> String {
    std::fs::read_to_string(&stack.key_file).unwrap()
}

pub(crate) fn send_raw(stack: &Stack, datagram: &[u8]) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(datagram, stack.addr).unwrap();
}

fn runs_after_quiet(stack: &Stack) -> usize {
    std::thread::sleep(QUIET);
    stack.wait_runs("default", usize::MAX, Duration::ZERO).len()
}

#[test]
fn a_v0_datagram_runs_once_and_its_replay_runs_nothing() {
    let stack = Stack::start("");
    let datagram = v0_datagram(&key_string(&stack), "default", now_nanos());
    send_raw(&stack, &datagram);
    stack.expect_runs("default", &["127.0.0.1"]);
    assert!(stack.server.wait_log("wire=v0", WAIT), "{}", stack.logs());
    send_raw(&stack, &datagram);
    assert!(
        stack.server.wait_log("reason=replay", WAIT),
        "{}",
        stack.logs()
    );
    assert_eq!(runs_after_quiet(&stack), 1, "{}", stack.logs());
}

#[test]
fn a_v0_datagram_below_a_v1_counter_is_a_replay() {
    let stack = Stack::start("");
    let before = now_nanos();
    stack.send_ok(&["-c", "default"]);
    stack.expect_runs("default", &["127.0.0.1"]);
    // The v1 datagram's counter is at least `before`: a v0 one at `before` is below the
    // floor both formats share.
    send_raw(&stack, &v0_datagram(&key_string(&stack), "default", before));
    assert!(
        stack.server.wait_log("reason=replay", WAIT),
        "{}",
        stack.logs()
    );
    assert_eq!(runs_after_quiet(&stack), 1, "{}", stack.logs());
}

#[test]
fn with_v0_off_a_v0_datagram_is_a_size_rejection() {
    let stack = Stack::start("accept_v0 = false\nkernel_filter = false");
    assert!(stack.server.wait_log("formats v1 only", WAIT));
    send_raw(
        &stack,
        &v0_datagram(&key_string(&stack), "default", now_nanos()),
    );
    assert!(
        stack.server.wait_log("reason=size", WAIT),
        "{}",
        stack.logs()
    );
    assert_eq!(runs_after_quiet(&stack), 0, "{}", stack.logs());
    // v1 still works.
    stack.send_ok(&[]);
    stack.expect_runs("default", &["127.0.0.1"]);
}

#[test]
fn client_sends_v0_with_wire_v0() {
    let stack = Stack::start("");
    stack.send_ok(&["--wire", "v0", "-c", "other"]);
    let runs = stack.wait_runs("other", 1, WAIT);
    assert_eq!(runs, ["127.0.0.1"], "{}", stack.logs());
    assert!(stack.server.wait_log("wire=v0", WAIT), "{}", stack.logs());
    stack.send_ok(&["-c", "other"]);
    assert!(stack.server.wait_log("wire=v1", WAIT), "{}", stack.logs());
    let out = stack.send(&["--wire", "v2"]);
    assert!(!out.status.success());
}

#[test]
fn released_layout_starts_both_daemons_and_runs_commands() {
    let stack = Stack::start_layout(
        "ntp = \"system\"\nmax_requests_per_second = 250000",
        "127.0.0.1:0",
        Layout::Released,
    );
    for daemon in [&stack.server, &stack.commander] {
        assert!(
            daemon.wait_log("`ntp` is ignored", WAIT),
            "{}",
            stack.logs()
        );
        assert!(
            daemon.wait_log(
                "`max_requests_per_second` = 250000 is above the maximum 100000; using 100000",
                WAIT
            ),
            "{}",
            stack.logs()
        );
    }
    assert!(
        stack.commander.wait_log("released 0.14.x layout", WAIT),
        "{}",
        stack.logs()
    );
    stack.send_ok(&["--wire", "v0"]);
    stack.expect_runs("default", &["127.0.0.1"]);
}

#[test]
pub(crate) fn key_string_on_the_command_line_works_with_a_warning() {
    let stack = Stack::start("");
    let key = key_string(&stack);
    let out = stack.send_with_key(key.trim(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("other local users can see it"),
        "{}",
        stderr(&out)
    );
    stack.expect_runs("default", &["127.0.0.1"]);
    // A key file gives no such warning.
    let out = stack.send(&[]);
    assert!(
        !stderr(&out).contains("other local users"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_k_value_that_is_neither_is_refused_without_echoing_it() {
    let stack = Stack::start("");
    let secretish = "c2VjcmV0LWJ1dC1ub3QtYS1rZXk=";
    let out = stack.send_with_key(secretish, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("neither a readable key file") && err.contains("nor a valid key string"),
        "{err}"
    );
    assert!(!err.contains(secretish), "{err}");
}
