use super::*;

/// Runs `prog` over a UDP packet (header + payload) the way the kernel does, for the
/// instructions `program` emits; any other instruction, a jump out of the program or a
/// load past the packet is a test failure (the kernel would drop or reject it).
fn run(prog: &[Insn], payload: &[u8]) -> u32 {
    let mut packet = vec![0u8; 8];
    packet.extend_from_slice(payload);
    let mut acc: u32 = 0;
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
    let ids: Vec<KeyId> = (0..max as u64).map(|i| KeyId(i.to_be_bytes())).collect();
    let (prog, coverage) = program(&ids, true);
    assert_eq!(coverage, Coverage::Keys(max));
    assert!(prog.len() <= MAX_INSNS);
    assert_eq!(run(&prog, &datagram(ids[max - 1].0, 94)), ACCEPT);
    let more: Vec<KeyId> = (0..=max as u64).map(|i| KeyId(i.to_be_bytes())).collect();
    let (prog, coverage) = program(&more, true);
    assert_eq!(coverage, Coverage::LengthOnly { keys: max + 1, max });
    assert_eq!(run(&prog, &datagram(*b"anything", 94)), ACCEPT);
    assert_eq!(run(&prog, &datagram(*b"anything", 93)), ACCEPT);
    assert_eq!(run(&prog, &datagram(*b"anything", 95)), DROP);
    assert!(max_keys(false) >= max);
}
