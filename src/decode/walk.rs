//! Stage 2 of the validating parser: walks the structural index from
//! [`super::index`] and checks the JSON grammar, token by token.
//!
//! Containers are tracked in a bit stack (one bit per level: object or
//! array) instead of recursion, so hostile nesting costs a bit per level, not
//! a stack overflow: the first 128 levels live in a register, deeper ones
//! spill to a vector. There is no depth limit, exactly like `serde_json` when
//! it skips a value. Numbers and literals are checked byte by byte here; the
//! inside of strings was already checked by stage 1.
//!
//! The root object's `uid` and `ts` members are reported; nested ones are
//! validated and skipped. The fields of [`super::fields`] are followed down
//! their paths (a trie of keys and array indices) and captured.

use super::fields::{capture, Matcher, Raw};
use super::StrSpan;

/// The fields to capture while walking, and where.
pub(super) type Capture<'c> = Option<(&'c Matcher, &'c mut [Raw])>;

/// Syntax error marker; the position is of no use to the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxError;

pub type Result<T> = std::result::Result<T, SyntaxError>;

/// What a value is, with its span where the decoder needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    String(StrSpan),
    /// A number token `[start, end)`.
    Number(usize, usize),
    Other,
}

/// The root value of a message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RootObject {
    pub uid: Option<ValueKind>,
    pub ts: Option<ValueKind>,
    pub duplicate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// Only whitespace.
    Empty,
    Object(RootObject),
    String(StrSpan),
    /// Any other valid JSON value.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootKey {
    Uid,
    Ts,
    Other,
}

/// Classifies a root key, honouring escapes (`"\u0075id"` is `uid`).
#[inline]
fn root_key(msg: &[u8], key: StrSpan) -> RootKey {
    match &msg[key.start..key.end] {
        b"uid" => RootKey::Uid,
        b"ts" => RootKey::Ts,
        // An escaped "ts" or "uid" has 7..=18 bytes and a `\u`.
        raw if (7..=18).contains(&raw.len()) && raw.contains(&b'\\') => {
            let mut buf = Vec::with_capacity(raw.len());
            match super::unescape::unescape_into(raw, &mut buf) {
                Ok(()) if buf == b"uid" => RootKey::Uid,
                Ok(()) if buf == b"ts" => RootKey::Ts,
                _ => RootKey::Other,
            }
        }
        _ => RootKey::Other,
    }
}

struct Walker<'a> {
    msg: &'a [u8],
    idx: &'a [u32],
    next: usize,
}

impl<'a> Walker<'a> {
    /// Next token: its position and first byte.
    #[inline(always)]
    fn token(&mut self) -> Result<(usize, u8)> {
        let &p = self.idx.get(self.next).ok_or(SyntaxError)?;
        self.next += 1;
        let p = p as usize;
        debug_assert!(p < self.msg.len());
        // SAFETY: stage 1 only indexes positions inside `msg`, and `walk`
        // is only called with the index built from the same `msg`.
        Ok((p, unsafe { *self.msg.get_unchecked(p) }))
    }

    /// Completes a string whose opening quote was just taken: stage 1
    /// guarantees the next index entry is its closing quote.
    #[inline(always)]
    fn string(&mut self, open: usize) -> Result<StrSpan> {
        let (close, _) = self.token()?;
        Ok(StrSpan {
            start: open + 1,
            end: close,
        })
    }

    /// `"key" :` after the opening quote was taken.
    #[inline(always)]
    fn key(&mut self, open: usize, first: u8) -> Result<StrSpan> {
        if first != b'"' {
            return Err(SyntaxError);
        }
        let key = self.string(open)?;
        match self.token()? {
            (_, b':') => Ok(key),
            _ => Err(SyntaxError),
        }
    }

    /// A number or literal starting at `p`; it must end at a delimiter.
    #[inline]
    fn scalar(&self, p: usize, first: u8) -> Result<ValueKind> {
        let (kind, end) = match first {
            b'-' | b'0'..=b'9' => {
                let end = number_end(self.msg, p)?;
                (ValueKind::Number(p, end), end)
            }
            b't' => (ValueKind::Other, literal(self.msg, p, b"true")?),
            b'f' => (ValueKind::Other, literal(self.msg, p, b"false")?),
            b'n' => (ValueKind::Other, literal(self.msg, p, b"null")?),
            _ => return Err(SyntaxError),
        };
        match self.msg.get(end) {
            None | Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b'}' | b']') => Ok(kind),
            Some(_) => Err(SyntaxError),
        }
    }

    /// One complete value whose first token is `(p, b)`.
    fn value(&mut self, p: usize, b: u8) -> Result<ValueKind> {
        match b {
            b'"' => return self.string(p).map(ValueKind::String),
            b'{' | b'[' => {}
            _ => return self.scalar(p, b),
        }
        let mut stack: u128 = 0;
        let mut spill: Vec<u128> = Vec::new(); // allocates only past 128 levels
        let mut level: u32 = 0;
        let (mut p, mut b) = (p, b);
        loop {
            // Expecting a value whose first token is (p, b).
            match b {
                b'{' | b'[' => {
                    let is_obj = b == b'{';
                    if level > 0 && level % 128 == 0 {
                        spill.push(stack);
                        stack = 0;
                    }
                    stack = (stack << 1) | u128::from(is_obj);
                    level += 1;
                    let (q, c) = self.token()?;
                    if c == if is_obj { b'}' } else { b']' } {
                        pop(&mut stack, &mut spill, &mut level);
                    } else {
                        (p, b) = if is_obj {
                            self.key(q, c)?;
                            self.token()?
                        } else {
                            (q, c)
                        };
                        continue;
                    }
                }
                b'"' => {
                    self.string(p)?;
                }
                _ => {
                    self.scalar(p, b)?;
                }
            }
            // A value just ended: close containers or move to the next one.
            loop {
                if level == 0 {
                    return Ok(ValueKind::Other);
                }
                let is_obj = stack & 1 == 1;
                match self.token()? {
                    (_, b',') => {
                        let (q, c) = self.token()?;
                        (p, b) = if is_obj {
                            self.key(q, c)?;
                            self.token()?
                        } else {
                            (q, c)
                        };
                        break;
                    }
                    (_, b'}') if is_obj => pop(&mut stack, &mut spill, &mut level),
                    (_, b']') if !is_obj => pop(&mut stack, &mut spill, &mut level),
                    _ => return Err(SyntaxError),
                }
            }
        }
    }
}

impl Walker<'_> {
    /// One complete value at the trie node `node` (its first token is
    /// `(p, b)`): captured if a field ends here, followed into if paths lead
    /// on.
    fn tracked(
        &mut self,
        p: usize,
        b: u8,
        node: u32,
        m: &Matcher,
        caps: &mut [Raw],
    ) -> Result<ValueKind> {
        let fields = m.fields_at(node);
        if matches!(b, b'{' | b'[') && m.has_children(node) {
            self.tracked_container(b == b'{', node, m, caps)?;
            capture(caps, m.fields_at(node), Raw::Container);
            return Ok(ValueKind::Other);
        }
        let kind = self.value(p, b)?;
        if !fields.is_empty() {
            let raw = match (kind, b) {
                (ValueKind::String(span), _) => Raw::Str(span),
                (ValueKind::Number(start, end), _) => Raw::Text(start, end),
                (_, b'{' | b'[') => Raw::Container,
                (_, b't') => Raw::Text(p, p + 4),
                (_, b'f') => Raw::Text(p, p + 5),
                _ => Raw::Null,
            };
            capture(caps, fields, raw);
        }
        Ok(kind)
    }

    /// The members or elements of a container on a wanted path, after its
    /// opening token. Recursion is bounded by the paths' depth.
    fn tracked_container(
        &mut self,
        is_obj: bool,
        node: u32,
        m: &Matcher,
        caps: &mut [Raw],
    ) -> Result<()> {
        let close = if is_obj { b'}' } else { b']' };
        let (mut q, mut c) = self.token()?;
        if c == close {
            return Ok(());
        }
        let mut index = 0;
        loop {
            let child = if is_obj {
                let key = self.key(q, c)?;
                (q, c) = self.token()?;
                m.child(node, self.msg, key)
            } else {
                m.element(node, index)
            };
            match child {
                Some(n) => self.tracked(q, c, n, m, caps)?,
                None => self.value(q, c)?,
            };
            index += 1;
            match self.token()? {
                (_, b',') => (q, c) = self.token()?,
                (_, t) if t == close => return Ok(()),
                _ => return Err(SyntaxError),
            }
        }
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

/// End of a number token starting at `p`:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
#[inline]
fn number_end(msg: &[u8], mut p: usize) -> Result<usize> {
    let at = |i: usize| msg.get(i).copied().unwrap_or(0);
    if at(p) == b'-' {
        p += 1;
    }
    match at(p) {
        b'0' => p += 1,
        b'1'..=b'9' => p = digits(msg, p + 1),
        _ => return Err(SyntaxError),
    }
    if at(p) == b'.' {
        let q = digits(msg, p + 1);
        if q == p + 1 {
            return Err(SyntaxError);
        }
        p = q;
    }
    if let b'e' | b'E' = at(p) {
        p += 1;
        if let b'+' | b'-' = at(p) {
            p += 1;
        }
        let q = digits(msg, p);
        if q == p {
            return Err(SyntaxError);
        }
        p = q;
    }
    Ok(p)
}

#[inline(always)]
fn digits(msg: &[u8], mut p: usize) -> usize {
    while let Some(b'0'..=b'9') = msg.get(p) {
        p += 1;
    }
    p
}

#[inline(always)]
fn literal(msg: &[u8], p: usize, word: &[u8]) -> Result<usize> {
    if msg[p..].starts_with(word) {
        Ok(p + word.len())
    } else {
        Err(SyntaxError)
    }
}

/// Checks the whole message against the grammar and describes its root,
/// capturing the fields of `fields` (whose slots must start `Missing`).
/// `idx` must be the index that `index::build` made of this `msg`.
pub(super) fn walk(msg: &[u8], idx: &[u32], fields: Capture<'_>) -> Result<Root> {
    let mut w = Walker { msg, idx, next: 0 };
    let Ok((p, b)) = w.token() else {
        return Ok(Root::Empty);
    };
    let root = match b {
        b'{' => Root::Object(root_object(&mut w, fields)?),
        b'"' => Root::String(w.string(p)?),
        _ => {
            w.value(p, b)?;
            Root::Other
        }
    };
    if w.next != idx.len() {
        return Err(SyntaxError); // a second value after the root
    }
    Ok(root)
}

/// The root object's members, after its `{` was taken.
fn root_object(w: &mut Walker<'_>, mut capture: Capture<'_>) -> Result<RootObject> {
    let mut fields = RootObject::default();
    let (q, c) = w.token()?;
    if c == b'}' {
        return Ok(fields);
    }
    let mut key = w.key(q, c)?;
    loop {
        let (p, b) = w.token()?;
        match root_key(w.msg, key) {
            RootKey::Uid => {
                let value = w.value(p, b)?;
                fields.duplicate |= fields.uid.is_some();
                fields.uid = Some(value);
            }
            RootKey::Ts => {
                let value = w.value(p, b)?;
                fields.duplicate |= fields.ts.is_some();
                fields.ts = Some(value);
            }
            RootKey::Other => match &mut capture {
                Some((m, caps)) => match m.child(0, w.msg, key) {
                    Some(node) => {
                        w.tracked(p, b, node, m, caps)?;
                    }
                    None => {
                        w.value(p, b)?;
                    }
                },
                None => {
                    w.value(p, b)?;
                }
            },
        }
        match w.token()? {
            (_, b',') => {
                let (q, c) = w.token()?;
                key = w.key(q, c)?;
            }
            (_, b'}') => return Ok(fields),
            _ => return Err(SyntaxError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(s: &str) -> bool {
        let mut idx = Vec::new();
        super::super::index::build(s.as_bytes(), &mut idx).is_ok()
            && matches!(walk(s.as_bytes(), &idx, None), Ok(r) if r != Root::Empty)
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
            "{\"a\":{\"b\":{}},\"c\":[[],{}]}",
            "[1,-0.0e+0,\"x\",[true]]",
        ] {
            assert!(valid(ok), "{ok}");
        }
        for bad in [
            "",
            " ",
            "01",
            "1.",
            ".5",
            "1e",
            "-",
            "+1",
            "tru",
            "nul",
            "truex",
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
            "\"a\"\"b\"",
            "1\"a\"",
            "[\"a\"x]",
            "{\"a\"::1}",
            "{\"a\":1 \"b\":2}",
            "[,1]",
            "1.5.3",
            "\\",
            "{} {}",
            "[1]x",
            "\u{1}",
            "[\u{1}]",
            "{\"a\":}",
            "}",
            "[",
            "{\"a\" 1}",
            "--1",
            "1e+",
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
