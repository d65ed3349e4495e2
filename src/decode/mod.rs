//! Message decoding: one JSON message in, one `(ts, uid)` event or a
//! [`Reject`] reason out.
//!
//! Accepted shapes:
//! - an object with a root `ts` (a JSON number of Unix seconds, >= 0, floored)
//!   and a root `uid` (a non-empty JSON string), any other keys, in any order,
//!   at any depth; nested `uid`/`ts` keys are decoys and are ignored;
//! - a JSON string whose content is such an object (Kafka Connect's
//!   JsonConverter with schemas disabled writes that).
//!
//! The whole message is validated (UTF-8 and JSON grammar, up to the last
//! byte), so a frame truncated after its `uid` is refused rather than counted.
//! Lazy extractors that stop once they have found the two keys are faster,
//! but they miss exactly that case.
//!
//! The uid is compared after JSON unescaping (`"\u00e4"` and `"ä"` are one
//! user). No other normalization happens: `ä` and `a` + combining diaeresis
//! are different uids, as they are different strings to every producer.

mod scan;
mod ts;
mod unescape;

pub use ts::MAX_TS;

use crate::reject::Reject;
use scan::{Scanner, StrSpan, ValueKind};

/// Longest accepted uid after unescaping. Real ids are UUIDs or shorter; a
/// multi-kilobyte "uid" is a producer bug, and each distinct one would be
/// stored whole by the exact counter.
pub const MAX_UID_BYTES: usize = 1024;

/// One accepted event. `uid` is valid UTF-8, unescaped, non-empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub ts: u64,
    pub uid: &'a [u8],
}

/// Decodes messages, reusing two scratch buffers so that escaped uids and
/// wrapped frames cost no allocation once the buffers have grown.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Unescaped uid, when the uid has escapes.
    uid_buf: Vec<u8>,
    /// Unescaped content of a string-wrapped frame.
    inner_buf: Vec<u8>,
}

/// Root fields found while scanning the root object.
#[derive(Default)]
struct RootFields {
    uid: Option<ValueKind>,
    ts: Option<ValueKind>,
    duplicate: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one message (without its line terminator; a trailing `\r` is
    /// JSON whitespace and harmless).
    pub fn decode<'a>(&'a mut self, msg: &'a [u8]) -> Result<Event<'a>, Reject> {
        let Decoder { uid_buf, inner_buf } = self;
        if simdutf8::basic::from_utf8(msg).is_err() {
            return Err(Reject::NotUtf8);
        }
        let mut sc = Scanner::new(msg);
        match sc.peek_non_ws() {
            None => Err(Reject::Empty),
            Some(b'{') => decode_object(msg, uid_buf),
            Some(b'"') => {
                let span = sc.string().map_err(|_| Reject::NotJson)?;
                if !sc.at_end() {
                    return Err(Reject::NotJson);
                }
                inner_buf.clear();
                let content = &msg[span.start..span.end];
                if span.escaped {
                    unescape::unescape_into(content, inner_buf).map_err(|_| Reject::NotUtf8)?;
                } else {
                    inner_buf.extend_from_slice(content);
                }
                let mut inner = Scanner::new(inner_buf);
                match inner.peek_non_ws() {
                    Some(b'{') => decode_object(inner_buf, uid_buf),
                    // A string inside a string, a number, ...: valid JSON if
                    // it scans, but not a frame.
                    Some(_) if inner.value().is_ok() && inner.at_end() => Err(Reject::NotObject),
                    _ => Err(Reject::NotJson),
                }
            }
            Some(_) => {
                if sc.value().is_ok() && sc.at_end() {
                    Err(Reject::NotObject)
                } else {
                    Err(Reject::NotJson)
                }
            }
        }
    }
}

/// Decodes a message whose first non-space byte is `{`.
fn decode_object<'a>(msg: &'a [u8], uid_buf: &'a mut Vec<u8>) -> Result<Event<'a>, Reject> {
    let fields = scan_root(msg).map_err(|_| Reject::NotJson)?;
    if fields.duplicate {
        return Err(Reject::DuplicateKey);
    }
    let uid = match fields.uid {
        None => return Err(Reject::MissingUid),
        Some(ValueKind::String(span)) => span,
        Some(_) => return Err(Reject::BadUid),
    };
    let ts = match fields.ts {
        None => return Err(Reject::MissingTs),
        Some(ValueKind::Number(start, end)) => ts::parse_ts(&msg[start..end])?,
        Some(_) => return Err(Reject::BadTs),
    };
    let uid = if uid.escaped {
        uid_buf.clear();
        unescape::unescape_into(&msg[uid.start..uid.end], uid_buf).map_err(|_| Reject::BadUid)?;
        &uid_buf[..]
    } else {
        &msg[uid.start..uid.end]
    };
    if uid.is_empty() || uid.len() > MAX_UID_BYTES {
        return Err(Reject::BadUid);
    }
    Ok(Event { ts, uid })
}

/// Validates the whole message as one root object and remembers its `uid`
/// and `ts` members.
fn scan_root(msg: &[u8]) -> Result<RootFields, scan::SyntaxError> {
    let mut sc = Scanner::new(msg);
    let mut fields = RootFields::default();
    sc.peek_non_ws();
    sc.bump(); // the '{'
    if sc.peek_non_ws() == Some(b'}') {
        sc.bump();
    } else {
        loop {
            sc.skip_ws();
            let key = sc.member_key()?;
            let value = sc.value()?;
            match root_key(msg, key) {
                RootKey::Uid => {
                    fields.duplicate |= fields.uid.is_some();
                    fields.uid = Some(value);
                }
                RootKey::Ts => {
                    fields.duplicate |= fields.ts.is_some();
                    fields.ts = Some(value);
                }
                RootKey::Other => {}
            }
            match sc.peek_non_ws() {
                Some(b',') => sc.bump(),
                Some(b'}') => {
                    sc.bump();
                    break;
                }
                _ => return Err(scan::SyntaxError),
            }
        }
    }
    if sc.at_end() {
        Ok(fields)
    } else {
        Err(scan::SyntaxError)
    }
}

enum RootKey {
    Uid,
    Ts,
    Other,
}

/// Classifies a root key, honouring escapes (`"\u0075id"` is `uid`).
#[inline]
fn root_key(msg: &[u8], key: StrSpan) -> RootKey {
    let raw = &msg[key.start..key.end];
    if !key.escaped {
        return match raw {
            b"uid" => RootKey::Uid,
            b"ts" => RootKey::Ts,
            _ => RootKey::Other,
        };
    }
    // Escaped keys are rare; an escaped "uid" is at most 18 bytes.
    if raw.len() > 18 {
        return RootKey::Other;
    }
    let mut buf = Vec::with_capacity(raw.len());
    match unescape::unescape_into(raw, &mut buf) {
        Ok(()) if buf == b"uid" => RootKey::Uid,
        Ok(()) if buf == b"ts" => RootKey::Ts,
        _ => RootKey::Other,
    }
}

#[cfg(test)]
mod tests;
