//! A classic BPF socket filter that drops, in the kernel, every datagram that cannot be
//! valid: a UDP payload of any length but 94 bytes (or 93 while v0 is accepted), or one
//! whose first 8 bytes are not the id of a loaded key. Junk is then never queued, copied
//! to user space or woken up for.
//!
//! Written here rather than taken from a crate: the program is a few fixed instructions
//! per key and `socket2` attaches it; a BPF assembler or an eBPF toolchain would bring far
//! more than this needs (and eBPF needs privileges). The program is pure data built by
//! [`program`], and the tests run it through an interpreter of the instructions it uses
//! and through the real kernel (`tests/it/kernel_filter.rs`).
//!
//! A UDP socket's filter sees the packet from the UDP header on: the payload starts at
//! byte 8 and the length is the payload's plus 8. Attaching again replaces the program
//! atomically, so a reload never opens a window in which the socket is unfiltered. Each
//! program is charged to the socket's option memory (`net.core.optmem_max`); where the
//! key-id program does not fit, the length-only one is kept, and said so ([`apply`]).

use std::net::UdpSocket;

use ruroco_proto::{KeyId, Wire};
use socket2::{SockFilter, SockRef};

/// Instructions a classic BPF program may have (`BPF_MAXINSNS`).
pub(crate) const MAX_INSNS: usize = 4096;
/// Bytes of UDP header before the payload, as the filter sees the packet.
const UDP_HEADER: u32 = 8;

// Opcodes (linux/filter.h): loads, a jump on equality, returns.
const LD_LEN: u16 = 0x80; // BPF_LD | BPF_W | BPF_LEN
const LD_ABS_W: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
/// Keep the whole datagram.
const ACCEPT: u32 = u32::MAX;
/// Drop it.
const DROP: u32 = 0;

/// One instruction, as the kernel takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub(crate) code: u16,
    pub(crate) jt: u8,
    pub(crate) jf: u8,
    pub(crate) k: u32,
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// What a program checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coverage {
    /// Length and key id.
    Keys(usize),
    /// Length only: more keys than a program can hold.
    LengthOnly { keys: usize, max: usize },
}

/// Keys one program can check, given whether v0 is accepted.
pub(crate) fn max_keys(accept_v0: bool) -> usize {
    (MAX_INSNS - header(accept_v0).len() - 1) / 5
}

fn header(accept_v0: bool) -> Vec<Insn> {
    let v1 = UDP_HEADER + Wire::V1.datagram_len() as u32;
    let v0 = UDP_HEADER + Wire::V0.datagram_len() as u32;
    if accept_v0 {
        vec![
            insn(LD_LEN, 0, 0, 0),
            insn(JEQ_K, 2, 0, v1),
            insn(JEQ_K, 1, 0, v0),
            insn(RET_K, 0, 0, DROP),
        ]
    } else {
        vec![
            insn(LD_LEN, 0, 0, 0),
            insn(JEQ_K, 1, 0, v1),
            insn(RET_K, 0, 0, DROP),
        ]
    }
}

/// The program for `ids`: the length check, then per key five instructions (load the
/// id's first word, compare, load the second, compare, keep); drop when none matched.
/// With more keys than fit, the length check alone.
pub(crate) fn program(ids: &[KeyId], accept_v0: bool) -> (Vec<Insn>, Coverage) {
    let mut prog = header(accept_v0);
    if ids.len() > max_keys(accept_v0) {
        prog.push(insn(RET_K, 0, 0, ACCEPT));
        let coverage = Coverage::LengthOnly {
            keys: ids.len(),
            max: max_keys(accept_v0),
        };
        return (prog, coverage);
    }
    for id in ids {
        let [a, b, c, d, e, f, g, h] = id.0;
        prog.extend([
            insn(LD_ABS_W, 0, 0, UDP_HEADER),
            insn(JEQ_K, 0, 3, u32::from_be_bytes([a, b, c, d])),
            insn(LD_ABS_W, 0, 0, UDP_HEADER + 4),
            insn(JEQ_K, 0, 1, u32::from_be_bytes([e, f, g, h])),
            insn(RET_K, 0, 0, ACCEPT),
        ]);
    }
    prog.push(insn(RET_K, 0, 0, DROP));
    (prog, Coverage::Keys(ids.len()))
}

/// The loaded key ids, in a stable order.
pub(crate) fn sorted_ids(keys: &ruroco_proto::Keyring) -> Vec<KeyId> {
    let mut ids: Vec<KeyId> = keys.ids().collect();
    ids.sort_unstable();
    ids
}

/// Attaches `prog` to `socket`, replacing any filter it had.
pub(crate) fn attach(socket: &UdpSocket, prog: &[Insn]) -> std::io::Result<()> {
    let filters: Vec<SockFilter> = prog
        .iter()
        .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect();
    SockRef::from(socket).attach_filter(&filters)
}

/// Removes the socket's filter (when `kernel_filter = false`); none attached is fine.
pub(crate) fn detach(socket: &UdpSocket) {
    let _ = SockRef::from(socket).detach_filter();
}

/// What the socket's filter checks now, for the metrics and the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `kernel_filter = false`, or no filter could be attached at all.
    Off,
    /// Datagram length only.
    Length,
    /// Length and key id.
    Keys,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Length => "length",
            Mode::Keys => "keys",
        }
    }
}

/// The length-only program: a handful of instructions, which fit any socket.
pub(crate) fn length_only(accept_v0: bool) -> Vec<Insn> {
    let mut prog = header(accept_v0);
    prog.push(insn(RET_K, 0, 0, ACCEPT));
    prog
}

/// The option memory a socket may hold (`net.core.optmem_max`, per network namespace),
/// which every attached program is charged to.
pub(crate) fn optmem_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/core/optmem_max")
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Whether the program for `ids` can be attached to a socket of this network namespace,
/// and the kernel's refusal if not: tried on a scratch socket, for `--check` (the
/// kernel's charge for a program is its own business; asking it is the only exact answer).
pub(crate) fn fits(ids: &[KeyId], accept_v0: bool) -> std::io::Result<()> {
    let (prog, coverage) = program(ids, accept_v0);
    if matches!(coverage, Coverage::LengthOnly { .. }) {
        return Ok(());
    }
    attach(&UdpSocket::bind("127.0.0.1:0")?, &prog)
}

/// Why the key-id filter is not held, with the sysctl that lifts the limit.
pub(crate) fn does_not_fit(keys: usize, e: &std::io::Error) -> String {
    let optmem = optmem_max().map_or_else(|| "?".to_owned(), |m| m.to_string());
    format!(
        "kernel filter: a program checking {keys} key ids does not fit this socket ({e}; net.core.optmem_max = {optmem} bytes, which the program and, during a reload, its successor are charged to): the kernel drops datagrams by length only, the server judges key ids. To keep key ids in the kernel, raise it: sysctl -w net.core.optmem_max=1048576 (and in /etc/sysctl.d/ to keep it)"
    )
}

/// Applies the configuration: attaches the program for `ids`, or removes the filter when
/// `enabled` is false, and returns what it checks now. Never lost without a word: when the
/// key-id program cannot be attached (the socket's option memory), the length-only one is,
/// logged with the sysctl that lifts the limit. A reload first puts the small length-only
/// program in place, which releases the old one's memory, then the new one: the socket is
/// never unfiltered, and old and new are never charged together.
pub(crate) fn apply(socket: &UdpSocket, enabled: bool, ids: &[KeyId], accept_v0: bool) -> Mode {
    if !enabled {
        detach(socket);
        tracing::info!(
            "kernel filter off (kernel_filter = false): every datagram reaches the server"
        );
        return Mode::Off;
    }
    let lengths = if accept_v0 { "94 or 93" } else { "94" };
    // The small program first: it releases the old one's option memory, and it is what
    // stays where the key-id program cannot be held.
    let length_attached = attach(socket, &length_only(accept_v0));
    let (prog, coverage) = program(ids, accept_v0);
    match coverage {
        Coverage::Keys(n) => match attach(socket, &prog) {
            Ok(()) => {
                tracing::info!(
                    "kernel filter: only {lengths}-byte datagrams for one of {n} key id(s) reach the server ({} instructions)",
                    prog.len()
                );
                return Mode::Keys;
            }
            Err(e) if length_attached.is_ok() => tracing::warn!("{}", does_not_fit(n, &e)),
            Err(_) => {}
        },
        Coverage::LengthOnly { keys, max } if length_attached.is_ok() => tracing::warn!(
            "kernel filter: {keys} keys are more than one filter can check ({max}); it drops datagrams by length only ({lengths} bytes pass), the server judges key ids"
        ),
        Coverage::LengthOnly { .. } => {}
    }
    match length_attached {
        Ok(()) => Mode::Length,
        Err(e) => {
            detach(socket);
            tracing::error!(
                "cannot attach the kernel filter: {e}; every datagram reaches the server"
            );
            Mode::Off
        }
    }
}

#[cfg(test)]
mod tests;
