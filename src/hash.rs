//! The uid hash: one fixed function for every backend, run, version and machine.
//!
//! Partial counters from several instances are merged later, so two instances
//! must map the same uid to the same 64 bits forever. The function is
//! **XXH3-64 with seed [`UID_HASH_SEED`]** over the uid's unescaped UTF-8
//! bytes. XXH3 is specified (xxHash spec, v0.8 output is frozen), has
//! implementations in every language, and hashes a short uid in a few
//! nanoseconds. A test pins its output on known inputs; changing either the
//! function or the seed is a breaking change of the serialized counters.

/// `b"distinct"` read as a big-endian integer.
pub const UID_HASH_SEED: u64 = 0x6469_7374_696e_6374;

/// The 64-bit hash of one uid.
#[inline(always)]
pub fn uid_hash(uid: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(uid, UID_HASH_SEED)
}

/// The shard (of `shards`) that counts the uid whose hash is `hash`: the
/// top bits of a second, independent mix of the hash, scaled to the range.
///
/// Not the hash's own bits: the counters use those (roaring its top 32,
/// HyperLogLog its top bits for the register), and a shard whose hashes all
/// share some bits would fill a fraction of its sketch. The splitmix64
/// finalizer is a bijection that decorrelates every output bit from every
/// input bit. Pinned like the hash: a shard's windows and checkpoints
/// depend on it.
#[inline(always)]
pub fn shard_of(hash: u64, shards: u32) -> u32 {
    let mut z = hash ^ SHARD_SALT;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (((z >> 32) * u64::from(shards)) >> 32) as u32
}

/// `b"shard-of"` read as a big-endian integer.
const SHARD_SALT: u64 = 0x7368_6172_642d_6f66;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_pinned_even_and_independent_of_the_counters_bits() {
        assert_eq!(
            [b"u1".as_slice(), b"u2", b"user-42", b""].map(|u| shard_of(uid_hash(u), 7)),
            SHARDS_PINNED
        );
        assert!((0..1000).all(|i| shard_of(i, 1) == 0));
        let shards = 4u32;
        let n = 400_000u64;
        // Per shard: how often each top nibble (roaring's and HLL's bits)
        // occurs. Routing by the hash's own bits would leave most at zero.
        let mut seen = vec![[0u64; 16]; shards as usize];
        for i in 0..n {
            let h = uid_hash(format!("user-{i}").as_bytes());
            seen[shard_of(h, shards) as usize][(h >> 60) as usize] += 1;
        }
        let expect = n as f64 / f64::from(shards) / 16.0;
        for (shard, nibbles) in seen.iter().enumerate() {
            for (nibble, &c) in nibbles.iter().enumerate() {
                let dev = (c as f64 - expect).abs() / expect;
                assert!(dev < 0.05, "shard {shard} nibble {nibble}: {c} vs {expect}");
            }
        }
    }

    /// Pinned values. They were cross-checked against the reference C
    /// implementation (Python `xxhash.xxh3_64_intdigest(data, seed=UID_HASH_SEED)`).
    #[test]
    fn hash_is_pinned() {
        assert_eq!(UID_HASH_SEED, u64::from_be_bytes(*b"distinct"));
        let cases: [(&[u8], u64); 5] = [
            (b"", PINNED[0]),
            (b"u1", PINNED[1]),
            ("пользователь-3".as_bytes(), PINNED[2]),
            (b"0123456789abcdef0123456789abcdef", PINNED[3]),
            (&[b'x'; 300], PINNED[4]),
        ];
        for (input, want) in cases {
            assert_eq!(
                uid_hash(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    const PINNED: [u64; 5] = [
        0xa37a_2e94_af1f_9f6d,
        0x8350_50e6_9d03_624e,
        0xe530_31f2_6ea6_4647,
        0x0212_f50b_51e1_0531,
        0x2946_057d_ca79_7d81,
    ];

    const SHARDS_PINNED: [u32; 4] = [6, 0, 3, 0];
}
