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

// Opcodes (linux/filter.h): loads, the scratch store, a copy, jumps, returns.
const LD_LEN: u16 = 0x80; // BPF_LD | BPF_W | BPF_LEN
const LD_ABS_W: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const ST: u16 = 0x02; // BPF_ST: M[k] = A
const LDX_MEM: u16 = 0x61; // BPF_LDX | BPF_W | BPF_MEM: X = M[k]
const TXA: u16 = 0x87; // BPF_MISC | BPF_TXA: A = X
const JA: u16 = 0x05; // BPF_JMP | BPF_JA: skip k instructions
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
/// Keep the whole datagram.
const ACCEPT: u32 = u32::MAX;
/// Drop it.
const DROP: u32 = 0;
/// The farthest a conditional jump reaches (its offsets are one byte).
const MAX_JUMP: usize = 255;

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

/// Keys one program can check, given whether v0 is accepted (key ids whose first halves
/// all differ, as random ids do; ids sharing one take fewer instructions).
pub(crate) fn max_keys(accept_v0: bool) -> usize {
    let fixed = header(accept_v0).len() + LOADS + 1;
    // Per key 3 instructions; per chunk of CHUNK keys 3 more (the jump over its blocks,
    // its accept and its drop).
    let mut n = (MAX_INSNS - fixed) / 3;
    while fixed + 3 * n + 3 * n.div_ceil(CHUNK) > MAX_INSNS {
        n -= 1;
    }
    n
}

/// Instructions that load the key id's two words, once per program.
const LOADS: usize = 4;
/// Distinct first words per chunk: the farthest jump of a chunk (from its last compare
/// to its last block, and from its first block to its accept) stays within [`MAX_JUMP`].
const CHUNK: usize = 120;

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

/// The program for `ids`: the length check; the id's second word into X and its first
/// into A, each loaded once; then, chunk by chunk, one compare of the first word per
/// distinct first word, jumping to a block that compares the second (`txa`, one compare
/// per id with that first word) and keeps or drops; a chunk that matched nothing jumps to
/// the next, and the last drops. Three instructions per id instead of five (a load of each
/// word per id), so more ids fit a program and the socket's option memory. With more ids
/// than fit, the length check alone.
pub(crate) fn program(ids: &[KeyId], accept_v0: bool) -> (Vec<Insn>, Coverage) {
    let length_only = |prog: Vec<Insn>| {
        let mut prog = prog;
        prog.push(insn(RET_K, 0, 0, ACCEPT));
        let coverage = Coverage::LengthOnly {
            keys: ids.len(),
            max: max_keys(accept_v0),
        };
        (prog, coverage)
    };
    let prog = header(accept_v0);
    // Ids grouped by their first word, each group's second words with it.
    let mut groups: std::collections::BTreeMap<u32, Vec<u32>> = std::collections::BTreeMap::new();
    for id in ids {
        let [a, b, c, d, e, f, g, h] = id.0;
        groups
            .entry(u32::from_be_bytes([a, b, c, d]))
            .or_default()
            .push(u32::from_be_bytes([e, f, g, h]));
    }
    let groups: Vec<(u32, Vec<u32>)> = groups.into_iter().collect();
    let Some(body) = chunks(&groups) else {
        return length_only(prog);
    };
    let mut prog = prog;
    prog.extend([
        insn(LD_ABS_W, 0, 0, UDP_HEADER + 4),
        insn(ST, 0, 0, 0),
        insn(LDX_MEM, 0, 0, 0),
        insn(LD_ABS_W, 0, 0, UDP_HEADER),
    ]);
    prog.extend(body);
    prog.push(insn(RET_K, 0, 0, DROP));
    if prog.len() > MAX_INSNS {
        return length_only(header(accept_v0));
    }
    (prog, Coverage::Keys(ids.len()))
}

/// The chunks for `groups` (first word, its second words), each within jump range; `None`
/// when a group alone is too large for one (ids made to share a first word by the
/// hundred).
fn chunks(groups: &[(u32, Vec<u32>)]) -> Option<Vec<Insn>> {
    let mut out = Vec::new();
    let mut rest = groups;
    while !rest.is_empty() {
        // As many groups as keep every jump of the chunk in range: the farthest are the
        // last compare's (over the blocks before its own) and the first block's (over
        // the blocks to the drop after the accept), both under blocks + 1.
        let mut m = 0;
        let mut blocks = 0;
        for (_, seconds) in rest {
            let size = 1 + seconds.len();
            if blocks + size + 1 > MAX_JUMP || m == CHUNK {
                break;
            }
            m += 1;
            blocks += size;
        }
        if m == 0 {
            return None;
        }
        let (chunk, next) = rest.split_at(m);
        rest = next;
        // Compares: the i-th jumps over the compares after it, the jump, and the blocks
        // before its own.
        let mut before = 0;
        for (i, (first, seconds)) in chunk.iter().enumerate() {
            let to_block = (m - 1 - i) + 1 + before;
            out.push(insn(JEQ_K, u8::try_from(to_block).ok()?, 0, *first));
            before += 1 + seconds.len();
        }
        // Nothing matched: over the blocks, accept and drop, to the next chunk.
        out.push(insn(JA, 0, 0, u32::try_from(blocks + 2).ok()?));
        // Blocks: A = the second word, then one compare per id; to accept on a match,
        // to drop after the last.
        let mut left = blocks;
        for (_, seconds) in chunk {
            out.push(insn(TXA, 0, 0, 0));
            left -= 1;
            for (j, second) in seconds.iter().enumerate() {
                left -= 1;
                // From here: `left` block instructions, then accept, then drop.
                let to_accept = u8::try_from(left).ok()?;
                let to_drop = if j + 1 == seconds.len() {
                    u8::try_from(left + 1).ok()?
                } else {
                    0
                };
                out.push(insn(JEQ_K, to_accept, to_drop, *second));
            }
        }
        out.push(insn(RET_K, 0, 0, ACCEPT));
        out.push(insn(RET_K, 0, 0, DROP));
    }
    Some(out)
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
