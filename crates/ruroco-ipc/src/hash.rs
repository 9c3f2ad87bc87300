//! The command hash: BLAKE2b (RFC 7693) with an 8-byte digest of the command name, read
//! as a big-endian u64.
//!
//! It lives here, written out, because the commander must compute it for its command
//! names yet must link no cryptography crate. The digest is only a lookup key chosen by
//! the protocol, not a security boundary: the datagram around it is authenticated.

const IV: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

const SIGMA: [[usize; 16]; 12] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
];

const BLOCK: usize = 128;
const DIGEST_LEN: u64 = 8;

/// BLAKE2b-64 of `name` (its UTF-8 bytes), as a big-endian u64.
pub fn command_hash(name: &str) -> u64 {
    let mut h = IV;
    let [h0, ..] = &mut h;
    *h0 ^= 0x0101_0000 ^ DIGEST_LEN;
    let bytes = name.as_bytes();
    let mut done: u128 = 0;
    let mut chunks = bytes.chunks(BLOCK).peekable();
    if chunks.peek().is_none() {
        compress(&mut h, &[0; BLOCK], 0, true);
    }
    while let Some(chunk) = chunks.next() {
        let mut block = [0u8; BLOCK];
        for (dst, src) in block.iter_mut().zip(chunk) {
            *dst = *src;
        }
        done += chunk.len() as u128;
        compress(&mut h, &block, done, chunks.peek().is_none());
    }
    let [h0, ..] = h;
    u64::from_be_bytes(h0.to_le_bytes())
}

fn compress(h: &mut [u64; 8], block: &[u8; BLOCK], counter: u128, last: bool) {
    let mut m = [0u64; 16];
    for (word, bytes) in m.iter_mut().zip(block.chunks_exact(8)) {
        let mut le = [0u8; 8];
        le.copy_from_slice(bytes);
        *word = u64::from_le_bytes(le);
    }
    let [i0, i1, i2, i3, i4, i5, i6, i7] = IV;
    let mut v = [
        h[0],
        h[1],
        h[2],
        h[3],
        h[4],
        h[5],
        h[6],
        h[7],
        i0,
        i1,
        i2,
        i3,
        i4 ^ (counter as u64),
        i5 ^ ((counter >> 64) as u64),
        if last { !i6 } else { i6 },
        i7,
    ];
    for sigma in &SIGMA {
        round(&mut v, &sigma.map(|i| m.get(i).copied().unwrap_or(0)));
    }
    let (low, high) = v.split_at(8);
    for ((hw, lw), hiw) in h.iter_mut().zip(low).zip(high) {
        *hw ^= lw ^ hiw;
    }
}

fn round(v: &mut [u64; 16], m: &[u64; 16]) {
    let [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15] = *m;
    let [mut v0, mut v1, mut v2, mut v3, mut v4, mut v5, mut v6, mut v7, mut v8, mut v9, mut v10, mut v11, mut v12, mut v13, mut v14, mut v15] =
        *v;
    g(&mut v0, &mut v4, &mut v8, &mut v12, m0, m1);
    g(&mut v1, &mut v5, &mut v9, &mut v13, m2, m3);
    g(&mut v2, &mut v6, &mut v10, &mut v14, m4, m5);
    g(&mut v3, &mut v7, &mut v11, &mut v15, m6, m7);
    g(&mut v0, &mut v5, &mut v10, &mut v15, m8, m9);
    g(&mut v1, &mut v6, &mut v11, &mut v12, m10, m11);
    g(&mut v2, &mut v7, &mut v8, &mut v13, m12, m13);
    g(&mut v3, &mut v4, &mut v9, &mut v14, m14, m15);
    *v = [
        v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15,
    ];
}

fn g(a: &mut u64, b: &mut u64, c: &mut u64, d: &mut u64, x: u64, y: u64) {
    *a = a.wrapping_add(*b).wrapping_add(x);
    *d = (*d ^ *a).rotate_right(32);
    *c = c.wrapping_add(*d);
    *b = (*b ^ *c).rotate_right(24);
    *a = a.wrapping_add(*b).wrapping_add(y);
    *d = (*d ^ *a).rotate_right(16);
    *c = c.wrapping_add(*d);
    *b = (*b ^ *c).rotate_right(63);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_vectors() {
        let text = include_str!("../../../testdata/protocol-v1.json");
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        let entries = json["blake2b_u64"].as_array().unwrap();
        assert!(!entries.is_empty());
        for e in entries {
            let want: u64 = e["hash"].as_str().unwrap().parse().unwrap();
            assert_eq!(command_hash(e["name"].as_str().unwrap()), want, "{e}");
        }
    }

    #[test]
    fn block_boundaries() {
        // Lengths around the 128-byte block size take the multi-block paths; they must
        // all differ and be stable.
        let hashes: Vec<u64> = [127, 128, 129, 256, 257]
            .iter()
            .map(|n| command_hash(&"x".repeat(*n)))
            .collect();
        for (i, a) in hashes.iter().enumerate() {
            for b in hashes.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
    }
}
