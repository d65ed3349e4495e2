//! Differential fuzz target for `distinctly::decode::Decoder`, with
//! serde_json as the oracle.
//!
//! For any input bytes it checks that `decode`:
//! - never panics, and gives the same answer on a fresh decoder and on a
//!   long-lived one before and after other messages (scratch-buffer reuse);
//! - agrees with serde_json on what is valid JSON (UTF-8 + grammar), with the
//!   one documented exception of a string-wrapped frame (Kafka Connect), whose
//!   unescaped content is judged by the same rule;
//! - accepts exactly the frames whose root object has one string `uid` (non
//!   empty, at most `MAX_UID_BYTES`, no lone surrogate) and one numeric `ts`
//!   (>= 0 and <= `MAX_TS` once floored), returning the unescaped uid and the
//!   exactly floored ts;
//! - rejects everything else with a reason that actually applies.
//!
//! The oracle reads root keys and the `uid`/`ts` values as raw JSON text
//! (`serde_json::value::RawValue`) rather than through `serde_json::Value`,
//! because `Value` keeps only the last duplicate key, refuses numbers outside
//! f64 range (`1e400`), refuses lone surrogates in any string, and has a
//! 128-level recursion limit; all four are inputs the decoder must handle.
//! A `Value`-based check as described in the fuzzing brief runs as well on
//! accepted events, when `Value` can parse the frame.

#![no_main]

use std::cell::RefCell;
use std::fmt::Write as _;

use distinctly::decode::{Decoder, MAX_TS, MAX_UID_BYTES};
use distinctly::reject::Reject;
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// An owned copy of a decode result, comparable across calls.
type Owned = Result<(u64, Vec<u8>), Reject>;

thread_local! {
    /// One decoder for the whole fuzzing run, so its scratch buffers carry
    /// leftovers from earlier inputs.
    static LONG_LIVED: RefCell<Decoder> = RefCell::new(Decoder::new());
}

/// Messages decoded between the two calls on `data`: they fill both scratch
/// buffers (escaped uid, wrapped frame) with other content.
const FILLERS: &[&[u8]] = &[
    br#""{\"uid\":\"\\u00e4\\u00e4\\u00e4-filler-filler-filler-filler-filler\",\"ts\":1767225600}""#,
    br#"{"ts":12,"uid":"\u0041\u0042\u0043\u0044\u0045\u0046\u0047\u0048\u0049\u004a"}"#,
    br#""{\"uid\":\"x\"}""#,
    b"",
];

fn owned(r: Result<distinctly::decode::Event<'_>, Reject>) -> Owned {
    r.map(|e| (e.ts, e.uid.to_vec()))
}

fn is_json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn first_non_ws(data: &[u8]) -> Option<u8> {
    data.iter().copied().find(|&b| !is_json_ws(b))
}

/// serde_json's verdict: UTF-8 and exactly one JSON value.
fn json_valid(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok() && serde_json::from_slice::<IgnoredAny>(data).is_ok()
}

/// What the decoder must answer for a message.
#[derive(Debug)]
enum Expect {
    /// Must be rejected with one of these reasons.
    Reject(Vec<Reject>),
    /// Must be accepted with exactly this event.
    Accept { ts: u64, uid: Vec<u8> },
}

/// The root object's members, as raw JSON text.
struct Members<'a>(Vec<(&'a RawValue, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<&'de RawValue>()? {
                    let value = map.next_value::<&'de RawValue>()?;
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON number token floored to whole seconds, computed exactly on the
/// decimal text (no floats).
#[derive(Debug, PartialEq, Eq)]
enum Floor {
    /// Strictly below zero (-0 and -0.0 are zero, not negative).
    Negative,
    /// Floor value, when it fits comfortably (< 10^30).
    Value(u128),
    /// At least 10^30.
    Huge,
}

fn exact_floor(token: &str) -> Floor {
    let (neg, body) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, ""),
    };
    let exp: i64 = {
        let (eneg, edigits) = match exp.as_bytes().first() {
            Some(b'-') => (true, &exp[1..]),
            Some(b'+') => (false, &exp[1..]),
            _ => (false, exp),
        };
        let edigits = edigits.trim_start_matches('0');
        // Anything with more than 9 exponent digits is astronomically far.
        let mag: i64 = if edigits.is_empty() {
            0
        } else if edigits.len() > 9 {
            1_000_000_000_000
        } else {
            edigits.parse().unwrap()
        };
        if eneg {
            -mag
        } else {
            mag
        }
    };
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    let digits: String = format!("{int}{frac}");
    if digits.bytes().all(|b| b == b'0') {
        return Floor::Value(0);
    }
    if neg {
        return Floor::Negative;
    }
    // Position of the decimal point within `digits` after applying exp.
    let point = int.len() as i64 + exp;
    if point <= 0 {
        return Floor::Value(0);
    }
    let int_part: String = if point as usize >= digits.len() {
        let zeros = point - digits.len() as i64;
        if zeros > 40 {
            return Floor::Huge;
        }
        format!("{digits}{}", "0".repeat(zeros as usize))
    } else {
        digits[..point as usize].to_string()
    };
    let int_part = int_part.trim_start_matches('0');
    if int_part.is_empty() {
        return Floor::Value(0);
    }
    if int_part.len() >= 31 {
        return Floor::Huge;
    }
    Floor::Value(int_part.parse().unwrap())
}

/// Unescapes a raw JSON string token; `None` when it holds a lone surrogate
/// (or is not a string at all).
fn raw_string(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<String>(raw.get()).ok()
}

/// Expected answer for a message already known to be valid JSON (judged on
/// `text`, which is `data` or the unwrapped content of a wrapped frame).
fn expect_valid_root(text: &str) -> Expect {
    if first_non_ws(text.as_bytes()) != Some(b'{') {
        return Expect::Reject(vec![Reject::NotObject]);
    }
    let members = serde_json::from_str::<Members>(text)
        .unwrap_or_else(|e| panic!("oracle: valid object did not parse as members: {e}"));
    let mut uids = Vec::new();
    let mut tss = Vec::new();
    for (key, value) in &members.0 {
        match raw_string(key).as_deref() {
            Some("uid") => uids.push(*value),
            Some("ts") => tss.push(*value),
            _ => {}
        }
    }
    let mut reasons = Vec::new();
    if uids.len() > 1 || tss.len() > 1 {
        reasons.push(Reject::DuplicateKey);
    }
    if uids.is_empty() {
        reasons.push(Reject::MissingUid);
    }
    if tss.is_empty() {
        reasons.push(Reject::MissingTs);
    }
    let mut uid_ok = None;
    for raw in &uids {
        let good = if raw.get().starts_with('"') {
            raw_string(raw).filter(|s| !s.is_empty() && s.len() <= MAX_UID_BYTES)
        } else {
            None
        };
        match good {
            Some(s) => uid_ok = Some(s),
            None => reasons.push(Reject::BadUid),
        }
    }
    let mut ts_ok = None;
    for raw in &tss {
        let t = raw.get();
        let is_number = matches!(t.as_bytes().first(), Some(b'-' | b'0'..=b'9'));
        if !is_number {
            reasons.push(Reject::BadTs);
            continue;
        }
        match exact_floor(t) {
            Floor::Negative => reasons.push(Reject::BadTs),
            Floor::Value(v) if v <= u128::from(MAX_TS) => ts_ok = Some(v as u64),
            Floor::Value(_) | Floor::Huge => reasons.push(Reject::TsOutOfRange),
        }
    }
    reasons.sort();
    reasons.dedup();
    if !reasons.is_empty() {
        return Expect::Reject(reasons);
    }
    Expect::Accept {
        ts: ts_ok.expect("one ts"),
        uid: uid_ok.expect("one uid").into_bytes(),
    }
}

/// Expected answer for any input bytes.
fn expect(data: &[u8]) -> Expect {
    if std::str::from_utf8(data).is_err() {
        return Expect::Reject(vec![Reject::NotUtf8]);
    }
    if data.iter().all(|&b| is_json_ws(b)) {
        return Expect::Reject(vec![Reject::Empty]);
    }
    if !json_valid(data) {
        return Expect::Reject(vec![Reject::NotJson]);
    }
    let text = std::str::from_utf8(data).unwrap();
    if first_non_ws(data) == Some(b'"') {
        // Kafka Connect style: the frame is the string's content.
        let inner = match serde_json::from_slice::<String>(data) {
            Ok(s) => s,
            // A valid JSON string that has no UTF-8 form: lone surrogate.
            Err(_) => return Expect::Reject(vec![Reject::NotUtf8]),
        };
        if !json_valid(inner.as_bytes()) {
            // Whitespace-only content may fairly be called empty or not JSON.
            return Expect::Reject(vec![Reject::NotJson, Reject::Empty]);
        }
        return expect_valid_root(&inner);
    }
    expect_valid_root(text)
}

/// The check spelled out in the fuzzing brief, on `serde_json::Value`: run for
/// accepted events whenever `Value` can represent the frame.
fn check_with_value(data: &[u8], ts: u64, uid: &[u8]) {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return; // deeper than 128 levels, a number beyond f64, a lone surrogate
    };
    if let serde_json::Value::String(s) = &v {
        match serde_json::from_str::<serde_json::Value>(s) {
            Ok(inner) => v = inner,
            Err(_) => return,
        }
    }
    let obj = v.as_object().expect("accepted frame is not an object");
    let got_uid = obj
        .get("uid")
        .and_then(|u| u.as_str())
        .expect("accepted frame has no string uid");
    assert_eq!(got_uid.as_bytes(), uid, "uid differs from serde_json's");
    let n = obj
        .get("ts")
        .and_then(|t| t.as_number())
        .expect("accepted frame has no numeric ts");
    if let Some(u) = n.as_u64() {
        assert_eq!(u, ts, "integer ts differs from serde_json's");
    } else if let Some(f) = n.as_f64() {
        // f64 may round the decimal text; the decoder floors it exactly.
        assert!(
            (ts as f64 - f.floor()).abs() <= 1.0,
            "ts {ts} is not floor({f}) even within f64 rounding"
        );
    }
}

fn escaped(data: &[u8]) -> String {
    let mut s = String::new();
    for &b in data {
        if (0x20..0x7f).contains(&b) && b != b'\\' && b != b'"' {
            s.push(b as char);
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let fresh = owned(Decoder::new().decode(data));

    let (first, second) = LONG_LIVED.with(|d| {
        let mut d = d.borrow_mut();
        let first = owned(d.decode(data));
        for filler in FILLERS {
            let _ = d.decode(filler);
        }
        // And something close to the input itself.
        let _ = d.decode(&data[..data.len() / 2]);
        let second = owned(d.decode(data));
        (first, second)
    });
    assert_eq!(
        fresh,
        first,
        "long-lived decoder disagrees with a fresh one on b\"{}\"",
        escaped(data)
    );
    assert_eq!(
        first,
        second,
        "decoder not repeatable after other messages on b\"{}\"",
        escaped(data)
    );

    // Decoder-only reasons that need no oracle: decode never looks at size.
    assert_ne!(
        fresh,
        Err(Reject::TooLarge),
        "decode itself returned TooLarge"
    );

    let want = expect(data);
    match (&want, &fresh) {
        (Expect::Reject(reasons), Err(r)) => assert!(
            reasons.contains(r),
            "rejected as {r:?}, but only {reasons:?} apply, on b\"{}\"",
            escaped(data)
        ),
        (Expect::Reject(reasons), Ok((ts, uid))) => panic!(
            "accepted ts={ts} uid=b\"{}\" but it should be rejected ({reasons:?}), on b\"{}\"",
            escaped(uid),
            escaped(data)
        ),
        (Expect::Accept { .. }, Err(r)) => panic!(
            "rejected as {r:?} but it is a good frame ({want:?}), on b\"{}\"",
            escaped(data)
        ),
        (Expect::Accept { ts: wts, uid: wuid }, Ok((ts, uid))) => {
            assert_eq!(
                ts,
                wts,
                "ts differs from the exact floor, on b\"{}\"",
                escaped(data)
            );
            assert_eq!(
                uid,
                wuid,
                "uid differs from serde_json's unescaping, on b\"{}\"",
                escaped(data)
            );
        }
    }

    // The brief's own coarse-grained conditions, stated directly.
    let valid = json_valid(data);
    if !valid {
        assert!(
            matches!(
                fresh,
                Err(Reject::NotJson | Reject::NotUtf8 | Reject::Empty | Reject::TooLarge)
            ),
            "invalid JSON got {fresh:?}"
        );
    }
    if fresh == Err(Reject::Empty) {
        assert!(
            data.iter().all(|&b| is_json_ws(b)),
            "Empty for non-blank input"
        );
    }
    if let Ok((ts, uid)) = &fresh {
        check_with_value(data, *ts, uid);
    }
});
