//! Stage 1 of the validating parser: a structural index built 64 bytes at a
//! time with SIMD, after the design of simdjson (Langdale & Lemire, "Parsing
//! Gigabytes of JSON per Second", 2019).
//!
//! For each 64-byte block, bit masks are computed for quotes, backslashes,
//! control bytes, structural characters (`{}[]:,`) and whitespace. From them:
//! - escaped characters (the character after each unescaped backslash);
//! - unescaped quotes, and the *in-string* mask as their prefix XOR;
//! - errors that need no grammar: a raw control byte inside a string, a
//!   backslash outside one, an invalid escape (`\x`, `\u12g4`), a string
//!   that never ends;
//! - the index: positions of structural characters outside strings, of both
//!   quotes of every string, and of the first byte of every other token
//!   (numbers, literals, stray bytes), which stage 2 ([`super::walk`])
//!   checks against the grammar.
//!
//! Everything inside strings is thereby skipped in bulk, which is where a
//! 2 KB event frame spends most of its bytes.

use super::walk::SyntaxError;

/// Per-block bit masks (bit i = byte i of the block).
#[derive(Clone, Copy, Default)]
struct Masks {
    quote: u64,
    backslash: u64,
    ctrl: u64,
    op: u64,
    ws: u64,
    /// Line feeds (also in `ws`); only line mode uses them.
    nl: u64,
}

/// Where a line ends in line mode: its newline's position, and the length
/// of the index up to it (the line's entries end there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineEnd {
    pub tokens: u32,
    pub at: u32,
}

/// Appends the index of `msg` to `idx` (cleared first). Fails on the
/// lexical errors listed in the module docs.
#[inline]
pub fn build(msg: &[u8], idx: &mut Vec<u32>) -> Result<(), SyntaxError> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
        {
            // SAFETY: the CPU supports AVX2 and PCLMULQDQ (checked just
            // above; each check is a cached load).
            return unsafe { build_avx2(msg, idx) };
        }
    }
    build_generic(msg, idx)
}

/// Line mode: the index of many JSON lines at once, and where each line
/// ends. Newlines outside strings end lines; a newline inside a string is a
/// control byte there, an error like any other. On any error the result is
/// unusable as a whole (a string left open runs into the next line): the
/// caller then decodes the lines one by one.
#[inline]
pub fn build_lines(
    data: &[u8],
    idx: &mut Vec<u32>,
    ends: &mut Vec<LineEnd>,
) -> Result<(), SyntaxError> {
    ends.clear();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
        {
            // SAFETY: as in `build`.
            return unsafe { build_lines_avx2(data, idx, ends) };
        }
    }
    build_with::<true>(data, idx, ends, classify, prefix_xor)
}

/// # Safety
///
/// The CPU must support AVX2 and PCLMULQDQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,pclmulqdq")]
unsafe fn build_avx2(msg: &[u8], idx: &mut Vec<u32>) -> Result<(), SyntaxError> {
    build_with::<false>(
        msg,
        idx,
        &mut Vec::new(),
        |b| classify_avx2(b),
        // SAFETY: this function runs only where PCLMULQDQ is available.
        |x| unsafe { prefix_xor_clmul(x) },
    )
}

/// # Safety
///
/// The CPU must support AVX2 and PCLMULQDQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,pclmulqdq")]
unsafe fn build_lines_avx2(
    data: &[u8],
    idx: &mut Vec<u32>,
    ends: &mut Vec<LineEnd>,
) -> Result<(), SyntaxError> {
    build_with::<true>(
        data,
        idx,
        ends,
        |b| classify_avx2(b),
        // SAFETY: this function runs only where PCLMULQDQ is available.
        |x| unsafe { prefix_xor_clmul(x) },
    )
}

fn build_generic(msg: &[u8], idx: &mut Vec<u32>) -> Result<(), SyntaxError> {
    build_with::<false>(msg, idx, &mut Vec::new(), classify, prefix_xor)
}

/// The block loop, generic over the classifier and the prefix XOR so that
/// the AVX2 variant is compiled (and inlined) with its features enabled
/// throughout. With `LINES`, newlines outside strings are noted in `ends`.
#[inline(always)]
fn build_with<const LINES: bool>(
    msg: &[u8],
    idx: &mut Vec<u32>,
    ends: &mut Vec<LineEnd>,
    classify: impl Fn(&[u8; 64]) -> Masks,
    prefix_xor: impl Fn(u64) -> u64,
) -> Result<(), SyntaxError> {
    idx.clear();
    if msg.len() > u32::MAX as usize {
        return Err(SyntaxError);
    }
    let mut prev_escaped = 0u64; // bit 0 of this block is escaped
    let mut prev_in_string = 0u64; // all ones if the last block ended in a string
    let mut prev_scalar = 0u64; // 1 if the last block ended in a token byte
    let mut tail = [b' '; 64];
    let mut offset = 0usize;
    while offset < msg.len() {
        let block: &[u8; 64] = match msg.get(offset..offset + 64) {
            Some(b) => b.try_into().expect("64 bytes"),
            None => {
                // Pad the last block with spaces: trailing whitespace is neutral.
                let rest = &msg[offset..];
                tail[..rest.len()].copy_from_slice(rest);
                &tail
            }
        };
        let m = classify(block);

        // Escapes: each unescaped backslash escapes the next byte.
        let escaped = find_escaped(m.backslash, &mut prev_escaped);
        let escapes = m.backslash & !escaped;

        let quotes = m.quote & !escaped;
        let in_string = prefix_xor(quotes) ^ prev_in_string;
        prev_in_string = ((in_string as i64) >> 63) as u64;

        if m.ctrl & in_string != 0 || escapes & !in_string != 0 {
            return Err(SyntaxError);
        }
        let mut e = escapes;
        while e != 0 {
            check_escape(msg, offset + e.trailing_zeros() as usize)?;
            e &= e - 1;
        }

        let outside = !in_string;
        let op = m.op & outside;
        let token = outside & !op & !m.ws & !quotes;
        let follows_token = (token << 1) | prev_scalar;
        prev_scalar = token >> 63;
        let mut structural = op | quotes | (token & !follows_token);
        // Padding bytes are spaces, so nothing past the end is indexed.
        if LINES {
            let mut nl = m.nl & outside;
            while nl != 0 {
                let below = (nl & nl.wrapping_neg()) - 1;
                push_positions(idx, offset as u32, structural & below);
                structural &= !below;
                ends.push(LineEnd {
                    tokens: idx.len() as u32,
                    at: offset as u32 + nl.trailing_zeros(),
                });
                nl &= nl - 1;
            }
        }
        push_positions(idx, offset as u32, structural);
        offset += 64;
    }
    if prev_in_string != 0 {
        return Err(SyntaxError); // unterminated string
    }
    Ok(())
}

/// The escaped bytes of a block: the byte after each backslash that is not
/// itself escaped. `prev_escaped` carries bit 0 of the next block (1 when
/// this block ends in an escaping backslash). Branch-free, after simdjson:
/// a run of backslashes escapes the byte after it when the run has odd
/// length, found by adding each run's odd-position starts to the run (the
/// carry flips the parity of runs that start on an odd bit).
#[inline(always)]
fn find_escaped(backslash: u64, prev_escaped: &mut u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let backslash = backslash & !*prev_escaped;
    let follows_escape = (backslash << 1) | *prev_escaped;
    let odd_starts = backslash & !EVEN & !follows_escape;
    let (even_starts, carry) = odd_starts.overflowing_add(backslash);
    *prev_escaped = u64::from(carry);
    (EVEN ^ (even_starts << 1)) & follows_escape
}

/// Appends `base + i` for every set bit `i` of `bits`, in order. Positions
/// are written eight at a time whatever their number (the slots past the
/// last one are scratch, inside reserved capacity, and not counted): a loop
/// whose trip count varies with every block mispredicts its exit, a fixed
/// group of eight does not.
#[inline(always)]
fn push_positions(idx: &mut Vec<u32>, base: u32, mut bits: u64) {
    let n = bits.count_ones() as usize;
    if n == 0 {
        return;
    }
    let len = idx.len();
    idx.reserve(n.next_multiple_of(8));
    let out = idx.spare_capacity_mut().as_mut_ptr().cast::<u32>();
    let mut i = 0;
    while i < n {
        for k in 0..8 {
            // SAFETY: `i + k < n.next_multiple_of(8)`, reserved just above.
            unsafe { out.add(i + k).write(base + bits.trailing_zeros()) };
            bits &= bits.wrapping_sub(1);
        }
        i += 8;
    }
    // SAFETY: the first `n` slots after `len` were written (the rest are
    // left uncounted).
    unsafe { idx.set_len(len + n) };
}

/// Validates the escape whose backslash is at `at`.
#[inline(always)]
fn check_escape(msg: &[u8], at: usize) -> Result<(), SyntaxError> {
    match msg.get(at + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(()),
        Some(b'u') => match msg.get(at + 2..at + 6) {
            Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => Ok(()),
            _ => Err(SyntaxError),
        },
        _ => Err(SyntaxError),
    }
}

/// [`prefix_xor`] in one carry-less multiplication by all ones.
///
/// # Safety
///
/// The CPU must support PCLMULQDQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq")]
#[inline]
unsafe fn prefix_xor_clmul(x: u64) -> u64 {
    use std::arch::x86_64::*;
    let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
    _mm_cvtsi128_si64(product) as u64
}

/// Bit i = XOR of bits 0..=i: 1 from an opening quote up to (not including)
/// its closing quote.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Classifies 64 bytes, 32 at a time. Whitespace and structural characters
/// are found with one table lookup each on the low nibble (`pshufb`), after
/// simdjson: a byte is whitespace if it equals the whitespace table's entry
/// for its low nibble, and structural if it equals the structural table's
/// entry once bit 5 is set (which folds `[` `]` onto `{` `}`). Every filler
/// entry has a low nibble different from its index, so nothing else matches.
/// Two control bytes fold onto structural characters too (0x0C onto `,`,
/// 0x1A onto `:`); they are indexed as structural, and stage 2, which reads
/// the byte itself, rejects them there as it rejects any stray byte.
///
/// # Safety
///
/// The CPU must support AVX2 (only [`build_avx2`] calls it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn classify_avx2(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    #[rustfmt::skip]
    let ws_table = _mm256_setr_epi8(
        b' ' as i8, 100, 100, 100, 17, 100, 113, 2, 100, b'\t' as i8, b'\n' as i8, 112, 100, b'\r' as i8, 100, 100,
        b' ' as i8, 100, 100, 100, 17, 100, 113, 2, 100, b'\t' as i8, b'\n' as i8, 112, 100, b'\r' as i8, 100, 100,
    );
    #[rustfmt::skip]
    let op_table = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b':' as i8, b'{' as i8, b',' as i8, b'}' as i8, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b':' as i8, b'{' as i8, b',' as i8, b'}' as i8, 0, 0,
    );
    let quote = _mm256_set1_epi8(b'"' as i8);
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let ctrl_max = _mm256_set1_epi8(0x1f);
    let bit5 = _mm256_set1_epi8(0x20);
    let lf = _mm256_set1_epi8(b'\n' as i8);
    let mut m = Masks::default();
    for half in 0..2 {
        // SAFETY: reads 32 bytes inside the 64-byte block.
        let x = unsafe { _mm256_loadu_si256(block.as_ptr().add(32 * half) as *const __m256i) };
        let bits = |v: __m256i| u64::from(_mm256_movemask_epi8(v) as u32) << (32 * half);
        m.quote |= bits(_mm256_cmpeq_epi8(x, quote));
        m.backslash |= bits(_mm256_cmpeq_epi8(x, backslash));
        m.ctrl |= bits(_mm256_cmpeq_epi8(_mm256_min_epu8(x, ctrl_max), x));
        m.ws |= bits(_mm256_cmpeq_epi8(x, _mm256_shuffle_epi8(ws_table, x)));
        m.nl |= bits(_mm256_cmpeq_epi8(x, lf));
        let folded = _mm256_or_si256(x, bit5);
        m.op |= bits(_mm256_cmpeq_epi8(
            folded,
            _mm256_shuffle_epi8(op_table, folded),
        ));
    }
    m
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    // SAFETY: SSE2 is part of the x86_64 baseline; each load reads 16 bytes
    // inside the 64-byte block.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let ctrl_max = _mm_set1_epi8(0x1f);
        let case = _mm_set1_epi8(0x20);
        let open = _mm_set1_epi8(b'{' as i8); // `[` | 0x20 == `{`
        let close = _mm_set1_epi8(b'}' as i8); // `]` | 0x20 == `}`
        let colon = _mm_set1_epi8(b':' as i8);
        let comma = _mm_set1_epi8(b',' as i8);
        let space = _mm_set1_epi8(b' ' as i8);
        let tab = _mm_set1_epi8(b'\t' as i8);
        let lf = _mm_set1_epi8(b'\n' as i8);
        let cr = _mm_set1_epi8(b'\r' as i8);
        for lane in 0..4 {
            let x = _mm_loadu_si128(block.as_ptr().add(16 * lane) as *const __m128i);
            let bits = |v: __m128i| {
                u64::from(std::hint::black_box(_mm_movemask_epi8(v) as u16)) << (16 * lane)
            };
            m.quote |= bits(_mm_cmpeq_epi8(x, quote));
            m.backslash |= bits(_mm_cmpeq_epi8(x, backslash));
            m.ctrl |= bits(_mm_cmpeq_epi8(_mm_min_epu8(x, ctrl_max), x));
            let folded = _mm_or_si128(x, case);
            let op = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(folded, open), _mm_cmpeq_epi8(folded, close)),
                _mm_or_si128(_mm_cmpeq_epi8(x, colon), _mm_cmpeq_epi8(x, comma)),
            );
            m.op |= bits(op);
            let ws = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(x, space), _mm_cmpeq_epi8(x, tab)),
                _mm_or_si128(_mm_cmpeq_epi8(x, lf), _mm_cmpeq_epi8(x, cr)),
            );
            m.ws |= bits(ws);
            m.nl |= bits(_mm_cmpeq_epi8(x, lf));
        }
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
fn classify(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        match b {
            b'"' => m.quote |= bit,
            b'\\' => m.backslash |= bit,
            b'{' | b'}' | b'[' | b']' | b':' | b',' => m.op |= bit,
            b'\n' => {
                m.ws |= bit;
                m.nl |= bit;
            }
            b' ' | b'\t' | b'\r' => m.ws |= bit,
            _ => {}
        }
        if b < 0x20 {
            m.ctrl |= bit;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds with the generic (SSE2/scalar) path and the dispatched one
    /// (AVX2 where the CPU has it) and checks they agree.
    fn index(s: &str) -> Result<Vec<u32>, SyntaxError> {
        let mut v = Vec::new();
        let mut g = Vec::new();
        let r = build(s.as_bytes(), &mut v).map(|()| v);
        let rg = build_generic(s.as_bytes(), &mut g).map(|()| g);
        assert_eq!(r, rg, "{s:?}");
        r
    }

    #[test]
    fn indexes_structure_quotes_and_token_starts() {
        //          0123456789012345678901234
        let s = r#"{"a\"b": [1, true], "c":-2}"#;
        let got = index(s).unwrap();
        let want: Vec<u32> = s
            .char_indices()
            .filter(|&(i, c)| {
                matches!(c, '{' | '}' | '[' | ']' | ':' | ',')
                    || (c == '"' && i != 4)
                    || i == 10
                    || i == 13
                    || i == 24
            })
            .map(|(i, _)| i as u32)
            .collect();
        assert_eq!(got, want);
    }

    /// The escaped bytes, one backslash at a time.
    fn find_escaped_slowly(backslash: u64, prev_escaped: &mut u64) -> u64 {
        let mut escaped = *prev_escaped;
        *prev_escaped = 0;
        let mut bs = backslash & !escaped;
        while bs != 0 {
            let i = bs.trailing_zeros();
            if i == 63 {
                *prev_escaped = 1;
            } else {
                escaped |= 1 << (i + 1);
            }
            bs &= bs - 1;
            bs &= !escaped;
        }
        escaped
    }

    #[test]
    fn escapes_agree_with_one_backslash_at_a_time() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let (mut fast, mut slow) = (0, 0);
        for round in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Dense runs of backslashes, and blocks ending in them.
            let backslash = match round % 4 {
                0 => x,
                1 => x | x >> 1 | x >> 2,
                2 => x & x >> 1,
                _ => x | 1 << 63,
            };
            let got = find_escaped(backslash, &mut fast);
            let want = find_escaped_slowly(backslash, &mut slow);
            assert_eq!((got, fast), (want, slow), "{backslash:064b}");
        }
    }

    #[test]
    fn strings_and_escapes_across_block_boundaries() {
        // Put a backslash run, a quote and a control byte at every offset
        // around the 64-byte boundary.
        for pad in 50..80 {
            let prefix = "x".repeat(pad);
            let ok = format!("\"{prefix}\\\\\\\"tail\"");
            assert!(index(&ok).is_ok(), "pad {pad}");
            let tail_quote = format!("\"{prefix}\\\"");
            assert!(
                index(&tail_quote).is_err(),
                "pad {pad}: escaped closing quote"
            );
            let ctrl = format!("\"{prefix}\u{1}\"");
            assert!(index(&ctrl).is_err(), "pad {pad}: control byte");
            let bad_escape = format!("\"{prefix}\\x\"");
            assert!(index(&bad_escape).is_err(), "pad {pad}: bad escape");
            let short_u = format!("\"{prefix}\\u12\"");
            assert!(index(&short_u).is_err(), "pad {pad}: short \\u");
            let outside = format!("{prefix}\\");
            assert!(
                index(&outside).is_err(),
                "pad {pad}: backslash outside a string"
            );
        }
    }
}
