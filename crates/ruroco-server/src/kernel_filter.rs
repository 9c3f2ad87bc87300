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
//! atomically, so a reload never opens a window in which the socket is unfiltered.

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

/// Applies the configuration: attaches the program for `ids`, or removes the filter when
/// `enabled` is false. Logs what the kernel now drops; an error leaves the socket
/// unfiltered (the server judges every datagram itself, as without the filter).
pub(crate) fn apply(socket: &UdpSocket, enabled: bool, ids: &[KeyId], accept_v0: bool) {
    if !enabled {
        detach(socket);
        tracing::info!(
            "kernel filter off (kernel_filter = false): every datagram reaches the server"
        );
        return;
    }
    let (prog, coverage) = program(ids, accept_v0);
    let lengths = if accept_v0 { "94 or 93" } else { "94" };
    match (attach(socket, &prog), coverage) {
        (Err(e), _) => {
            detach(socket);
            tracing::error!("cannot attach the kernel filter: {e}; every datagram reaches the server");
        }
        (Ok(()), Coverage::Keys(n)) => tracing::info!(
            "kernel filter: only {lengths}-byte datagrams for one of {n} key id(s) reach the server ({} instructions)",
            prog.len()
        ),
        (Ok(()), Coverage::LengthOnly { keys, max }) => tracing::warn!(
            "kernel filter: {keys} keys are more than one filter can check ({max}); it drops datagrams by length only ({lengths} bytes pass), the server judges key ids"
        ),
    }
}

#[cfg(test)]
mod tests;
