use super::*;

/// Runs `prog` over a UDP packet (header + payload) the way the kernel does, for the
/// instructions `program` emits; any other instruction, a jump out of the program or a
/// load past the packet is a test failure (the kernel would drop or reject it).
fn run(prog: &[Insn], payload: &[u8]) -> u32 {
    let mut packet = vec![0u8; 8];
    packet.extend_from_slice(payload);
    let mut acc: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    for _ in 0..MAX_INSNS {
        let i = prog[pc];
        match i.code {
            LD_LEN => acc = packet.len() as u32,
            LD_ABS_W => {
                let at = i.k as usize;
                match packet.get(at..at + 4) {
                    Some(w) => acc = u32::from_be_bytes(w.try_into().unwrap()),
                    None => return DROP,
                }
            }
            ST => mem[i.k as usize] = acc,
            LDX_MEM => x = mem[i.k as usize],
            TXA => acc = x,
            JA => pc += i.k as usize,
            JEQ_K => {
                pc += usize::from(if acc == i.k { i.jt } else { i.jf });
            }
            RET_K => return i.k,
            other => panic!("unexpected opcode {other:#x}"),
        }
        pc += 1;
        assert!(pc < prog.len(), "jumped past the end");
    }
    panic!("no return within {MAX_INSNS} steps");
}

fn datagram(id: [u8; 8], len: usize) -> Vec<u8> {
    let mut d = id.to_vec();
    d.resize(len, 0xa5);
    d
}

#[test]
fn keeps_exactly_the_right_lengths_with_a_loaded_key_id() {
    let ids = [KeyId(*b"laptop01"), KeyId(*b"phone-02"), KeyId([0xff; 8])];
    for accept_v0 in [true, false] {
        let (prog, coverage) = program(&ids, accept_v0);
        assert_eq!(coverage, Coverage::Keys(3));
        for id in &ids {
            assert_eq!(run(&prog, &datagram(id.0, 94)), ACCEPT);
            let v0 = run(&prog, &datagram(id.0, 93));
            assert_eq!(v0 == ACCEPT, accept_v0);
            for len in (0..=600).filter(|l| *l != 93 && *l != 94) {
                assert_eq!(run(&prog, &datagram(id.0, len)), DROP, "len {len}");
            }
        }
        // Unknown ids, including ones sharing either half of a loaded id.
        for id in [
            *b"laptop02",
            *b"lapt0p01",
            *b"phone-01",
            [0; 8],
            *b"phonetop",
        ] {
            assert_eq!(run(&prog, &datagram(id, 94)), DROP, "{id:?}");
        }
    }
}

#[test]
fn too_many_keys_fall_back_to_the_length_alone() {
    let max = max_keys(true);
    // Random-looking ids, as generated keys have (first words all different).
    let id = |i: u64| KeyId(i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    let ids: Vec<KeyId> = (0..max as u64).map(id).collect();
    let (prog, coverage) = program(&ids, true);
    assert_eq!(coverage, Coverage::Keys(max));
    assert!(prog.len() <= MAX_INSNS);
    assert_eq!(run(&prog, &datagram(ids[max - 1].0, 94)), ACCEPT);
    let more: Vec<KeyId> = (0..=max as u64).map(id).collect();
    let (prog, coverage) = program(&more, true);
    assert_eq!(coverage, Coverage::LengthOnly { keys: max + 1, max });
    assert_eq!(run(&prog, &datagram(*b"anything", 94)), ACCEPT);
    assert_eq!(run(&prog, &datagram(*b"anything", 93)), ACCEPT);
    assert_eq!(run(&prog, &datagram(*b"anything", 95)), DROP);
    assert!(max_keys(false) >= max);
}

/// Each word of the key id is loaded from the packet once per program, whatever the
/// number of keys; three instructions per key.
#[test]
fn each_id_word_is_loaded_once_per_program() {
    for n in [1usize, 2, 119, 120, 121, 1000] {
        let ids: Vec<KeyId> = (0..n as u64)
            .map(|i| KeyId((i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes()))
            .collect();
        let (prog, coverage) = program(&ids, true);
        assert_eq!(coverage, Coverage::Keys(n));
        let loads = prog.iter().filter(|i| i.code == LD_ABS_W).count();
        assert_eq!(loads, 2, "{n} keys");
        assert!(prog.len() <= header(true).len() + LOADS + 1 + 3 * n + 3 * n.div_ceil(CHUNK));
        for id in &ids {
            assert_eq!(run(&prog, &datagram(id.0, 94)), ACCEPT, "{n} keys");
            // The same id with either half changed is unknown.
            let mut other = id.0;
            other[0] ^= 1;
            assert_eq!(run(&prog, &datagram(other, 94)), DROP);
            let mut other = id.0;
            other[7] ^= 1;
            assert_eq!(run(&prog, &datagram(other, 94)), DROP);
        }
    }
    assert!(max_keys(true) >= 1300, "{}", max_keys(true));
}

/// Ids that share a first word (a group compared in one block) or a second word are told
/// apart; a first word shared by more ids than one chunk's jumps reach falls back to the
/// length check rather than build a wrong program.
#[test]
fn ids_sharing_a_word_are_told_apart() {
    let mut ids = Vec::new();
    for first in 0..150u32 {
        for second in 0..3u32 {
            let mut id = [0u8; 8];
            id[..4].copy_from_slice(&first.to_be_bytes());
            id[4..].copy_from_slice(&(second * 7).to_be_bytes());
            ids.push(KeyId(id));
        }
    }
    let (prog, coverage) = program(&ids, false);
    assert_eq!(coverage, Coverage::Keys(ids.len()));
    for id in &ids {
        assert_eq!(run(&prog, &datagram(id.0, 94)), ACCEPT);
    }
    for (first, second) in [(0u32, 1u32), (149, 15), (150, 0), (7, 21)] {
        let mut id = [0u8; 8];
        id[..4].copy_from_slice(&first.to_be_bytes());
        id[4..].copy_from_slice(&second.to_be_bytes());
        assert_eq!(run(&prog, &datagram(id, 94)), DROP, "{first} {second}");
    }
    let crowd: Vec<KeyId> = (0..300u32)
        .map(|i| {
            let mut id = [0u8; 8];
            id[4..].copy_from_slice(&i.to_be_bytes());
            KeyId(id)
        })
        .collect();
    let (prog, coverage) = program(&crowd, true);
    assert!(matches!(coverage, Coverage::LengthOnly { .. }));
    assert_eq!(run(&prog, &datagram(crowd[0].0, 94)), ACCEPT);
}
