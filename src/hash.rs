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

#[cfg(test)]
mod tests {
    use super::*;

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
}
