//! Fields the decoder captures besides `uid` and `ts`: the values that
//! `DISTINCTLY_GROUP_BY` groups by.
//!
//! A field is named by a root key (`country`) or by a JSON Pointer
//! (RFC 6901) into nested objects and arrays (`/ctx/device`, `/tags/0`;
//! `~1` is `/` and `~0` is `~` in a segment). The walk of stage 2 follows
//! the wanted paths with a small trie while it validates the message, so a
//! field costs nothing where no path leads, and nested values on no path
//! are skipped as before.
//!
//! What a field's value becomes:
//!
//! | JSON value | [`FieldValue`] |
//! |---|---|
//! | a string | `Value`: its unescaped content |
//! | a number, `true`, `false` | `Value`: its JSON text as written (`42`, `1.5e3`) |
//! | `null`, or no such key | `Missing` |
//! | an object or an array | `Refused(NotScalar)` |
//! | more than [`MAX_VALUE_BYTES`] bytes | `Refused(TooLong)` |
//! | a key given twice on the path | `Refused(Duplicate)` |
//! | a string with an unpaired `\ud800` escape | `Refused(BadEscape)` |

use super::unescape;
use super::StrSpan;

/// Longest field value, in bytes after unescaping: a group is a page, a
/// country, a campaign; a longer value is almost always a payload by
/// mistake, and each distinct one is stored per window.
pub const MAX_VALUE_BYTES: usize = 256;
/// Most segments in a JSON Pointer.
pub const MAX_DEPTH: usize = 16;

/// A path to a field: its segments, unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<Vec<u8>>,
}

/// Why a path cannot be one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("an empty field name")]
    Empty,
    #[error("{0:?}: `~` must be followed by 0 or 1 in a JSON Pointer")]
    Escape(String),
    #[error("{0:?}: more than {MAX_DEPTH} segments")]
    TooDeep(String),
    #[error("{0:?}: uid and ts are the event itself, not a field to group by")]
    Reserved(String),
}

impl FieldPath {
    /// `country` (a root key) or `/ctx/device` (a JSON Pointer).
    pub fn parse(text: &str) -> Result<FieldPath, BadPath> {
        if text.is_empty() {
            return Err(BadPath::Empty);
        }
        let segments: Vec<Vec<u8>> = match text.strip_prefix('/') {
            None => vec![text.as_bytes().to_vec()],
            Some(pointer) => pointer
                .split('/')
                .map(|s| unescape_segment(s).ok_or_else(|| BadPath::Escape(text.to_string())))
                .collect::<Result<_, _>>()?,
        };
        if segments.len() > MAX_DEPTH {
            return Err(BadPath::TooDeep(text.to_string()));
        }
        // The root `uid` and `ts` are the event; a path into them leads
        // nowhere an accepted event has.
        if matches!(&segments[0][..], b"uid" | b"ts") {
            return Err(BadPath::Reserved(text.to_string()));
        }
        Ok(FieldPath { segments })
    }
}

/// `~1` -> `/`, `~0` -> `~`; `None` for any other `~`.
fn unescape_segment(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'~' {
            match bytes.next()? {
                b'0' => out.push(b'~'),
                b'1' => out.push(b'/'),
                _ => return None,
            }
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// Why a field's value is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// An object or an array.
    NotScalar,
    /// Longer than [`MAX_VALUE_BYTES`].
    TooLong,
    /// A key on its path given twice (which one is meant is ambiguous).
    Duplicate,
    /// A string with an unpaired surrogate escape.
    BadEscape,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::NotScalar,
        Refusal::TooLong,
        Refusal::Duplicate,
        Refusal::BadEscape,
    ];

    /// The `reason` label of the metric and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotScalar => "not_scalar",
            Refusal::TooLong => "too_long",
            Refusal::Duplicate => "duplicate",
            Refusal::BadEscape => "bad_escape",
        }
    }
}

/// A field's value in one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// No such key, or `null`.
    Missing,
    /// A string's unescaped content, or a number or boolean as written.
    Value(&'a [u8]),
    Refused(Refusal),
}

/// What the walk found at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Raw {
    #[default]
    Missing,
    Str(StrSpan),
    /// A string with escapes, unescaped into the decoder's buffer at
    /// `[start, end)` (after the walk, by [`unescape_strings`]).
    Unescaped(u32, u32),
    /// A string with an unpaired surrogate escape.
    BadEscape,
    /// A number, `true` or `false`: its token `[start, end)`.
    Text(usize, usize),
    /// `null` (no group, but it was given: a second one is a duplicate).
    Null,
    Container,
    Duplicate,
}

/// One node of the path trie: the segments that lead on, and the fields
/// captured here (the paths that end here; the same path may be asked for
/// twice).
#[derive(Debug, Clone, Default)]
struct Node {
    children: Vec<(Vec<u8>, u32)>,
    fields: Vec<u16>,
}

/// The wanted paths as a trie (node 0 is the root object).
#[derive(Debug, Clone)]
pub struct Matcher {
    nodes: Vec<Node>,
    /// Per node: the shortest segment that leads on (a key shorter than it
    /// cannot match, escaped or not: unescaping only shortens).
    min_len: Vec<usize>,
    fields: usize,
}

impl Matcher {
    pub fn new(paths: &[FieldPath]) -> Matcher {
        let mut nodes = vec![Node::default()];
        for (i, path) in paths.iter().enumerate() {
            let mut at = 0usize;
            for seg in &path.segments {
                at = match nodes[at].children.iter().find(|(s, _)| s == seg) {
                    Some(&(_, child)) => child as usize,
                    None => {
                        nodes.push(Node::default());
                        let child = nodes.len() - 1;
                        nodes[at].children.push((seg.clone(), child as u32));
                        child
                    }
                };
            }
            nodes[at].fields.push(i as u16);
        }
        let min_len = nodes
            .iter()
            .map(|n| {
                n.children
                    .iter()
                    .map(|(s, _)| s.len())
                    .min()
                    .unwrap_or(usize::MAX)
            })
            .collect();
        Matcher {
            nodes,
            min_len,
            fields: paths.len(),
        }
    }

    /// Paths captured (the length of every capture list).
    pub fn fields(&self) -> usize {
        self.fields
    }

    /// The node a member key leads to from `node`, if any. Most keys lead
    /// nowhere: they are compared as written first, and only a key with an
    /// escape is unescaped and compared again.
    #[inline]
    pub(super) fn child(&self, node: u32, msg: &[u8], key: StrSpan) -> Option<u32> {
        let raw = &msg[key.start..key.end];
        if raw.len() < self.min_len[node as usize] {
            return None;
        }
        let children = &self.nodes[node as usize].children;
        if let Some(&(_, c)) = children.iter().find(|(s, _)| s[..] == *raw) {
            return Some(c);
        }
        if !has_backslash(raw) {
            return None;
        }
        let mut buf = Vec::with_capacity(raw.len());
        unescape::unescape_into(raw, &mut buf).ok()?;
        children.iter().find(|(s, _)| *s == buf).map(|&(_, c)| c)
    }

    /// The node an array element at `index` leads to from `node`.
    #[inline]
    pub(super) fn element(&self, node: u32, index: usize) -> Option<u32> {
        let children = &self.nodes[node as usize].children;
        children
            .iter()
            .find(|(s, _)| is_index(s, index))
            .map(|&(_, c)| c)
    }

    /// Whether paths lead on from `node`.
    #[inline]
    pub(super) fn has_children(&self, node: u32) -> bool {
        !self.nodes[node as usize].children.is_empty()
    }

    /// The fields captured at `node`.
    #[inline]
    pub(super) fn fields_at(&self, node: u32) -> &[u16] {
        &self.nodes[node as usize].fields
    }
}

/// Whether `s` has a `\` (short strings: a loop beats a call).
#[inline]
fn has_backslash(s: &[u8]) -> bool {
    if s.len() > 32 {
        return memchr::memchr(b'\\', s).is_some();
    }
    s.contains(&b'\\')
}

/// Whether a pointer segment names array element `index` (RFC 6901: `0`,
/// or digits without a leading zero).
fn is_index(seg: &[u8], index: usize) -> bool {
    if seg.is_empty() || (seg.len() > 1 && seg[0] == b'0') || !seg.iter().all(u8::is_ascii_digit) {
        return false;
    }
    std::str::from_utf8(seg)
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        == Some(index)
}

/// Records what the walk found for `fields`.
#[inline]
pub(super) fn capture(captures: &mut [Raw], fields: &[u16], found: Raw) {
    for &i in fields {
        let slot = &mut captures[usize::from(i)];
        *slot = match slot {
            Raw::Missing => found,
            _ => Raw::Duplicate,
        };
    }
}

/// The captured fields of one message, resolved on demand.
#[derive(Debug, Clone, Copy)]
pub struct FieldValues<'a> {
    msg: &'a [u8],
    raw: &'a [Raw],
    /// Unescaped strings, back to back (see [`Raw::Unescaped`]).
    buf: &'a [u8],
}

impl<'a> FieldValues<'a> {
    pub(super) const NONE: FieldValues<'static> = FieldValues {
        msg: &[],
        raw: &[],
        buf: &[],
    };

    pub(super) fn new(msg: &'a [u8], raw: &'a [Raw], buf: &'a [u8]) -> Self {
        FieldValues { msg, raw, buf }
    }

    /// Fields there are (0 when none were asked for).
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The value of field `i`.
    #[inline]
    pub fn get(&self, i: usize) -> FieldValue<'a> {
        let value = match self.raw[i] {
            Raw::Missing | Raw::Null => return FieldValue::Missing,
            Raw::Container => return FieldValue::Refused(Refusal::NotScalar),
            Raw::Duplicate => return FieldValue::Refused(Refusal::Duplicate),
            Raw::BadEscape => return FieldValue::Refused(Refusal::BadEscape),
            Raw::Str(span) => &self.msg[span.start..span.end],
            Raw::Unescaped(start, end) => &self.buf[start as usize..end as usize],
            Raw::Text(start, end) => &self.msg[start..end],
        };
        if value.len() > MAX_VALUE_BYTES {
            FieldValue::Refused(Refusal::TooLong)
        } else {
            FieldValue::Value(value)
        }
    }
}

/// Unescapes the captured strings that have escapes into `buf`, turning
/// their captures into [`Raw::Unescaped`] (or [`Raw::BadEscape`]).
#[inline]
pub(super) fn unescape_strings(msg: &[u8], raw: &mut [Raw], buf: &mut Vec<u8>) {
    buf.clear();
    for r in raw {
        if let Raw::Str(span) = *r {
            let s = &msg[span.start..span.end];
            if has_backslash(s) {
                let start = buf.len();
                *r = match unescape::unescape_into(s, buf) {
                    Ok(()) => Raw::Unescaped(start as u32, buf.len() as u32),
                    Err(_) => Raw::BadEscape,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_as_root_keys_or_pointers() {
        let p = |s: &str| FieldPath::parse(s).map(|p| p.segments);
        assert_eq!(p("country"), Ok(vec![b"country".to_vec()]));
        assert_eq!(
            p("a/b"),
            Ok(vec![b"a/b".to_vec()]),
            "a root key with a slash"
        );
        assert_eq!(
            p("/ctx/device"),
            Ok(vec![b"ctx".to_vec(), b"device".to_vec()])
        );
        assert_eq!(p("/a~1b/c~0d"), Ok(vec![b"a/b".to_vec(), b"c~d".to_vec()]));
        assert_eq!(p("/"), Ok(vec![b"".to_vec()]), "the key \"\"");
        assert_eq!(p("/tags/0"), Ok(vec![b"tags".to_vec(), b"0".to_vec()]));
        assert_eq!(p(""), Err(BadPath::Empty));
        assert!(matches!(p("/a~2"), Err(BadPath::Escape(_))));
        assert!(matches!(p("/a~"), Err(BadPath::Escape(_))));
        assert!(matches!(p(&"/a".repeat(17)), Err(BadPath::TooDeep(_))));
        assert!(matches!(p("uid"), Err(BadPath::Reserved(_))));
        assert!(matches!(p("/ts"), Err(BadPath::Reserved(_))));
        assert!(p("/ctx/uid").is_ok(), "a nested uid is just a field");
        assert!(matches!(p("/uid/x"), Err(BadPath::Reserved(_))));
    }

    #[test]
    fn array_indices_follow_rfc_6901() {
        assert!(is_index(b"0", 0));
        assert!(is_index(b"12", 12));
        assert!(!is_index(b"01", 1));
        assert!(!is_index(b"-1", 1));
        assert!(!is_index(b"", 0));
        assert!(!is_index(b"1", 0));
    }
}
