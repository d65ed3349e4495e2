//! A validating JSON scanner over a byte slice.
//!
//! It checks the full RFC 8259 grammar (exactly what `serde_json` accepts when
//! it skips a value) without building anything: strings are skipped with a
//! 16-byte SIMD search for `"`, `\` and control bytes, and containers are
//! tracked in a bit stack instead of recursion, so hostile nesting costs one
//! bit per level instead of a stack overflow (the first 128 levels live in a
//! register; deeper ones spill to a vector). The root object's members are
//! reported to the caller so it can pick `uid` and `ts` out of the root only;
//! everything nested is validated and skipped.
//!
//! UTF-8 is validated separately over the whole message (see `decode`), so
//! this module only has to treat bytes >= 0x80 as opaque string content.

/// Syntax error marker; the position is of no use to the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxError;

pub type Result<T> = std::result::Result<T, SyntaxError>;

/// A string token: the bytes between the quotes, and whether any escape occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrSpan {
    pub start: usize,
    pub end: usize,
    pub escaped: bool,
}

/// What kind of value a root member holds, with its span where it matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    String(StrSpan),
    /// A number token `[start, end)`.
    Number(usize, usize),
    Other,
}

pub struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Scanner { buf, pos: 0 }
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline(always)]
    pub fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Skips whitespace and returns the next byte without consuming it.
    #[inline(always)]
    pub fn peek_non_ws(&mut self) -> Option<u8> {
        self.skip_ws();
        self.peek()
    }

    /// True when only whitespace remains.
    pub fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos == self.buf.len()
    }

    #[inline(always)]
    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(SyntaxError)
        }
    }

    /// Scans a string whose opening quote is at `pos`; leaves `pos` after the
    /// closing quote.
    #[inline]
    pub fn string(&mut self) -> Result<StrSpan> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.pos += find_special(&self.buf[self.pos..]).ok_or(SyntaxError)?;
            match self.buf[self.pos] {
                b'"' => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok(StrSpan {
                        start,
                        end,
                        escaped,
                    });
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                _ => return Err(SyntaxError), // raw control character
            }
        }
    }

    /// Validates one escape sequence starting at the backslash.
    #[inline]
    fn escape(&mut self) -> Result<()> {
        match self.buf.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let hex = self
                    .buf
                    .get(self.pos + 2..self.pos + 6)
                    .ok_or(SyntaxError)?;
                if hex.iter().all(u8::is_ascii_hexdigit) {
                    self.pos += 6;
                    Ok(())
                } else {
                    Err(SyntaxError)
                }
            }
            _ => Err(SyntaxError),
        }
    }

    /// Scans a number token: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    #[inline]
    pub fn number(&mut self) -> Result<(usize, usize)> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(SyntaxError),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits1()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.digits1()?;
        }
        Ok((start, self.pos))
    }

    #[inline(always)]
    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline(always)]
    fn digits1(&mut self) -> Result<()> {
        let before = self.pos;
        self.digits();
        if self.pos == before {
            Err(SyntaxError)
        } else {
            Ok(())
        }
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.buf[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(SyntaxError)
        }
    }

    /// Scans a scalar (string, number, literal) at `pos`, or fails if the next
    /// byte does not start one.
    #[inline]
    fn scalar(&mut self, first: u8) -> Result<ValueKind> {
        match first {
            b'"' => self.string().map(ValueKind::String),
            b'-' | b'0'..=b'9' => self.number().map(|(s, e)| ValueKind::Number(s, e)),
            b't' => self.literal(b"true").map(|_| ValueKind::Other),
            b'f' => self.literal(b"false").map(|_| ValueKind::Other),
            b'n' => self.literal(b"null").map(|_| ValueKind::Other),
            _ => Err(SyntaxError),
        }
    }

    /// Scans one complete value of any kind starting at the next non-space
    /// byte.
    pub fn value(&mut self) -> Result<ValueKind> {
        let first = self.peek_non_ws().ok_or(SyntaxError)?;
        if first != b'{' && first != b'[' {
            return self.scalar(first);
        }
        // Iterative walk: bit i of `stack` is 1 when the container at relative
        // level i is an object.
        let mut stack: u128 = 0;
        let mut spill: Vec<u128> = Vec::new(); // allocates only past 128 levels
        let mut level: u32 = 0;
        let mut next = first;
        loop {
            // Expecting a value whose first byte is `next`.
            match next {
                b'{' | b'[' => {
                    self.pos += 1;
                    let is_obj = next == b'{';
                    if level > 0 && level % 128 == 0 {
                        spill.push(stack);
                        stack = 0;
                    }
                    stack = (stack << 1) | is_obj as u128;
                    level += 1;
                    let close = if is_obj { b'}' } else { b']' };
                    let b = self.peek_non_ws().ok_or(SyntaxError)?;
                    if b == close {
                        self.pos += 1;
                        pop(&mut stack, &mut spill, &mut level);
                    } else {
                        if is_obj {
                            self.member_key()?;
                        }
                        next = self.peek_non_ws().ok_or(SyntaxError)?;
                        continue;
                    }
                }
                other => {
                    self.scalar(other)?;
                }
            }
            // A value just ended: close containers or move to the next element.
            loop {
                if level == 0 {
                    return Ok(ValueKind::Other);
                }
                let is_obj = stack & 1 == 1;
                match self.peek_non_ws() {
                    Some(b',') => {
                        self.pos += 1;
                        if is_obj {
                            self.skip_ws();
                            self.member_key()?;
                        }
                        next = self.peek_non_ws().ok_or(SyntaxError)?;
                        break;
                    }
                    Some(b'}') if is_obj => {}
                    Some(b']') if !is_obj => {}
                    _ => return Err(SyntaxError),
                }
                self.pos += 1;
                pop(&mut stack, &mut spill, &mut level);
            }
        }
    }

    /// Scans `"key" :` inside an object (whitespace before the key skipped by
    /// the caller), returning the key span.
    #[inline]
    pub fn member_key(&mut self) -> Result<StrSpan> {
        let key = self.string()?;
        self.skip_ws();
        self.expect(b':')?;
        Ok(key)
    }

    /// Consumes a byte known to be at `pos` (after a `peek_non_ws`).
    #[inline(always)]
    pub fn bump(&mut self) {
        self.pos += 1;
    }
}

/// Closes the innermost container of the bit stack.
#[inline(always)]
fn pop(stack: &mut u128, spill: &mut Vec<u128>, level: &mut u32) {
    *stack >>= 1;
    *level -= 1;
    if *level > 0 && *level % 128 == 0 {
        *stack = spill.pop().unwrap_or(0);
    }
}

/// Offset of the first `"`, `\` or control byte (< 0x20) in `s`.
#[inline(always)]
pub fn find_special(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86_64 baseline; loads are unaligned and
        // stay inside `s` (i + 16 <= len).
        unsafe {
            use std::arch::x86_64::*;
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let ctrl_max = _mm_set1_epi8(0x1f);
            while i + 16 <= s.len() {
                let chunk = _mm_loadu_si128(s.as_ptr().add(i) as *const __m128i);
                let q = _mm_cmpeq_epi8(chunk, quote);
                let b = _mm_cmpeq_epi8(chunk, backslash);
                // x <= 0x1f (unsigned) <=> min(x, 0x1f) == x
                let c = _mm_cmpeq_epi8(_mm_min_epu8(chunk, ctrl_max), chunk);
                let mask = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(q, b), c)) as u32;
                if mask != 0 {
                    return Some(i + mask.trailing_zeros() as usize);
                }
                i += 16;
            }
        }
    }
    while i + 8 <= s.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&s[i..i + 8]);
        let w = u64::from_le_bytes(word);
        let mask = swar_special(w);
        if mask != 0 {
            return Some(i + (mask.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|p| i + p)
}

/// High bit set in every byte lane of `w` that is `"`, `\` or < 0x20.
/// Exact (no false positives) because each test is done on 7-bit lanes and
/// masked with the lane's own high bit clear.
#[inline(always)]
fn swar_special(w: u64) -> u64 {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HI: u64 = 0x8080_8080_8080_8080;
    let low = w & LO7;
    let ascii = !w & HI; // lanes < 0x80
    let eq = |c: u8| {
        let x = low ^ (u64::from(c) * 0x0101_0101_0101_0101);
        !((x + LO7) | x) & HI
    };
    // lane < 0x20 <=> low7 + (0x80 - 0x20) does not reach the high bit
    let lt20 = !(low + 0x6060_6060_6060_6060) & HI;
    (eq(b'"') | eq(b'\\') | lt20) & ascii
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(s: &str) -> bool {
        let mut sc = Scanner::new(s.as_bytes());
        sc.value().is_ok() && sc.at_end()
    }

    #[test]
    fn find_special_matches_naive_at_every_offset() {
        let mut buf: Vec<u8> = (0..200u32).map(|i| b'a' + (i % 26) as u8).collect();
        for pos in 0..buf.len() {
            for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                let saved = buf[pos];
                buf[pos] = special;
                assert_eq!(find_special(&buf), Some(pos), "pos {pos} byte {special}");
                buf[pos] = saved;
            }
        }
        assert_eq!(find_special(&buf), None);
        // Non-ASCII bytes and 0x20/0x7f are ordinary content.
        let other: Vec<u8> = [0x20u8, 0x7f, 0x80, 0xa2, 0xdc, 0xff, b'!', b'#', b'[', b']']
            .repeat(7)
            .to_vec();
        assert_eq!(find_special(&other), None);
    }

    #[test]
    fn swar_has_no_false_positives_over_all_bytes() {
        for b in 0..=255u8 {
            let w = u64::from_le_bytes([b, b'a', b'a', b'a', b'a', b'a', b'a', b'a']);
            let special = b == b'"' || b == b'\\' || b < 0x20;
            assert_eq!(swar_special(w) != 0, special, "byte {b:#x}");
        }
    }

    #[test]
    fn grammar() {
        for ok in [
            "0",
            "-0",
            "1.5e-3",
            "-12.0E+7",
            "\"a\\u00e4\\n\\\"\"",
            "[]",
            "{}",
            " { \"a\" : [1, {\"b\": null}, true, false] } ",
            "[[[[[]]]]]",
        ] {
            assert!(valid(ok), "{ok}");
        }
        for bad in [
            "",
            "01",
            "1.",
            ".5",
            "1e",
            "-",
            "+1",
            "tru",
            "nul",
            "[1,]",
            "{,}",
            "{\"a\"}",
            "{\"a\":1,}",
            "[1 2]",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"abc",
            "{\"a\":1",
            "[1]]",
            "\"\u{1}\"",
            "{1:2}",
            "NaN",
            "[1}",
            "{\"a\":1]",
        ] {
            assert!(!valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_is_valid_and_mismatches_are_found_at_any_depth() {
        for depth in [1usize, 127, 128, 129, 255, 256, 257, 5000] {
            let s = format!("{}1{}", "[{\"a\":".repeat(depth), "}]".repeat(depth));
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok());
            assert!(valid(&s), "depth {depth}");
            // Swap one closing pair deep inside: must be caught.
            let mut bad = s.clone().into_bytes();
            let at = s.len() - 2 * (depth / 2 + 1);
            bad.swap(at, at + 1);
            let bad = String::from_utf8(bad).unwrap();
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(&bad).is_err());
            assert!(!valid(&bad), "depth {depth}");
        }
    }
}
