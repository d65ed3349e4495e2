//! Message decoding: one JSON message in, one `(ts, uid)` event or a
//! [`Reject`] reason out.
//!
//! Accepted shapes:
//! - an object with a root `ts` (a JSON number of Unix seconds, >= 0, floored)
//!   and a root `uid` (a non-empty JSON string), any other keys, in any order,
//!   at any depth; nested `uid`/`ts` keys are decoys and are ignored;
//! - a JSON string whose content is such an object (Kafka Connect's
//!   JsonConverter with schemas disabled writes that). A string is unwrapped
//!   once, and its content gets the reason it would get as a message of its
//!   own (`""` is `empty`, `"{…} x"` is `not_json`, `"[1,2]"` is
//!   `not_object`); a string inside it is not unwrapped again
//!   (`not_object`), and an unpaired surrogate escape is `not_utf8`.
//!
//! The whole message is validated (UTF-8 and JSON grammar, up to the last
//! byte), so a frame truncated after its `uid` is refused rather than counted.
//! Lazy extractors that stop once they have found the two keys are faster,
//! but they miss exactly that case. Validation is fast anyway: SIMD UTF-8
//! validation (`simdutf8`), then a simdjson-style two-stage parse — a
//! structural index built 64 bytes at a time ([`index`]), then a grammar walk
//! over the index ([`walk`]) — so string contents, most of a frame's bytes,
//! are never looked at one byte at a time.
//!
//! [`Decoder::decode_lines`] runs both stages over many JSON lines at once
//! ([`lines`]), with the same result per line.
//!
//! The uid is compared after JSON unescaping (`"\u00e4"` and `"ä"` are one
//! user). No other normalization happens: `ä` and `a` + combining diaeresis
//! are different uids, as they are different strings to every producer.

pub mod fields;
mod index;
mod lines;
mod ts;
mod unescape;
mod walk;

pub use fields::{FieldPath, FieldValue, FieldValues, Refusal};
pub use ts::MAX_TS;

use crate::reject::Reject;
use fields::{Matcher, Raw};
use walk::{Capture, Root, RootObject, ValueKind};

/// A string token: the bytes between the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StrSpan {
    pub start: usize,
    pub end: usize,
}

/// Longest accepted uid after unescaping. Real ids are UUIDs or shorter; a
/// multi-kilobyte "uid" is a producer bug, and each distinct one would be
/// stored whole by the exact counter.
pub const MAX_UID_BYTES: usize = 1024;

/// One accepted event. `uid` is valid UTF-8, unescaped, non-empty;
/// `fields` holds the values of the fields the decoder was asked for
/// ([`Decoder::with_fields`]), none otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub ts: u64,
    pub uid: &'a [u8],
    pub fields: FieldValues<'a>,
}

/// The fields a decoder captures, and its buffers for them.
#[derive(Debug, Clone)]
struct FieldState {
    matcher: Matcher,
    raw: Vec<Raw>,
    buf: Vec<u8>,
}

impl FieldState {
    /// Slots reset for the next message, as the walk wants them.
    fn capture(&mut self) -> Capture<'_> {
        self.raw.fill(Raw::Missing);
        Some((&self.matcher, &mut self.raw))
    }
}

/// Decodes messages, reusing its buffers (structural index, unescaped uid,
/// unwrapped frame) so that no message costs an allocation once they have
/// grown.
#[derive(Debug, Default)]
pub struct Decoder {
    index: Vec<u32>,
    /// Unescaped uid, when the uid has escapes.
    uid_buf: Vec<u8>,
    /// Unescaped content of a string-wrapped frame.
    inner_buf: Vec<u8>,
    /// Line mode ([`Decoder::decode_lines`]): the index of a batch of lines
    /// and where each line ends.
    lines_index: Vec<u32>,
    line_ends: Vec<index::LineEnd>,
    fields: Option<FieldState>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that also captures the values at `paths` (in that order,
    /// in [`Event::fields`]).
    pub fn with_fields(paths: &[FieldPath]) -> Self {
        let matcher = Matcher::new(paths);
        Decoder {
            fields: (!paths.is_empty()).then(|| FieldState {
                raw: vec![Raw::Missing; matcher.fields()],
                matcher,
                buf: Vec::new(),
            }),
            ..Self::default()
        }
    }

    /// Decodes one message (without its line terminator; a trailing `\r` is
    /// JSON whitespace and harmless).
    pub fn decode<'a>(&'a mut self, msg: &'a [u8]) -> Result<Event<'a>, Reject> {
        if !is_utf8(msg) {
            return Err(Reject::NotUtf8);
        }
        let root = parse(msg, &mut self.index, self.fields.as_mut())?;
        root_event(
            msg,
            root,
            &mut self.index,
            &mut self.uid_buf,
            &mut self.inner_buf,
            self.fields.as_mut(),
        )
    }
}

/// The event of a message whose root value is `root`, or why there is none.
/// `index` is scratch (an unwrapped frame is parsed again); `fields` holds
/// what the walk of `msg` captured.
fn root_event<'a>(
    msg: &'a [u8],
    root: Root,
    index: &mut Vec<u32>,
    uid_buf: &'a mut Vec<u8>,
    inner_buf: &'a mut Vec<u8>,
    fields: Option<&'a mut FieldState>,
) -> Result<Event<'a>, Reject> {
    match root {
        Root::Object(object) => event(msg, object, uid_buf, fields),
        Root::String(span) => {
            // Kafka Connect's JsonConverter: the frame is a JSON string.
            inner_buf.clear();
            unescape::unescape_into(&msg[span.start..span.end], inner_buf)
                .map_err(|_| Reject::NotUtf8)?;
            // The content gets the reason it would get as a message of
            // its own; a string is not unwrapped twice.
            let mut fields = fields;
            match parse(inner_buf, index, fields.as_deref_mut()) {
                Ok(Root::Object(object)) => event(inner_buf, object, uid_buf, fields),
                Ok(Root::Empty) => Err(Reject::Empty),
                Err(reason) => Err(reason),
                Ok(Root::String(_) | Root::Other) => Err(Reject::NotObject),
            }
        }
        Root::Empty => Err(Reject::Empty),
        Root::Other => Err(Reject::NotObject),
    }
}

/// UTF-8 validation: SIMD for frames of a block or more; short frames are
/// usually ASCII, checked a word at a time before any slower path.
#[inline]
fn is_utf8(msg: &[u8]) -> bool {
    if msg.len() >= 64 {
        return simdutf8::basic::from_utf8(msg).is_ok();
    }
    let mut words = msg.chunks_exact(8);
    let high = words.by_ref().fold(0u64, |acc, w| {
        acc | u64::from_le_bytes(w.try_into().expect("8 bytes"))
    });
    let tail = words.remainder().iter().fold(0u8, |acc, &b| acc | b);
    if high & 0x8080_8080_8080_8080 == 0 && tail < 0x80 {
        return true;
    }
    std::str::from_utf8(msg).is_ok()
}

/// Both parser stages over one complete message, capturing `fields`.
fn parse(
    msg: &[u8],
    index: &mut Vec<u32>,
    fields: Option<&mut FieldState>,
) -> Result<Root, Reject> {
    index::build(msg, index).map_err(|_| Reject::NotJson)?;
    walk::walk(msg, index, fields.and_then(FieldState::capture)).map_err(|_| Reject::NotJson)
}

/// Turns a valid root object into an event, or says what is wrong with it.
fn event<'a>(
    msg: &'a [u8],
    fields: RootObject,
    uid_buf: &'a mut Vec<u8>,
    captured: Option<&'a mut FieldState>,
) -> Result<Event<'a>, Reject> {
    if fields.duplicate {
        return Err(Reject::DuplicateKey);
    }
    let uid: StrSpan = match fields.uid {
        None => return Err(Reject::MissingUid),
        Some(ValueKind::String(span)) => span,
        Some(_) => return Err(Reject::BadUid),
    };
    let ts = match fields.ts {
        None => return Err(Reject::MissingTs),
        Some(ValueKind::Number(start, end)) => ts::parse_ts(&msg[start..end])?,
        Some(_) => return Err(Reject::BadTs),
    };
    let raw = &msg[uid.start..uid.end];
    // uids are short: a plain loop beats a memchr call here.
    let uid = if raw.contains(&b'\\') {
        uid_buf.clear();
        unescape::unescape_into(raw, uid_buf).map_err(|_| Reject::BadUid)?;
        &uid_buf[..]
    } else {
        raw
    };
    if uid.is_empty() || uid.len() > MAX_UID_BYTES {
        return Err(Reject::BadUid);
    }
    let fields = match captured {
        Some(state) => {
            fields::unescape_strings(msg, &mut state.raw, &mut state.buf);
            FieldValues::new(msg, &state.raw, &state.buf)
        }
        None => FieldValues::NONE,
    };
    Ok(Event { ts, uid, fields })
}

#[cfg(test)]
mod tests;
