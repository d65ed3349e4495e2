use super::*;

fn decode(msg: &[u8]) -> Result<(u64, String), Reject> {
    let mut d = Decoder::new();
    d.decode(msg).map(|e| {
        (
            e.ts,
            String::from_utf8(e.uid.to_vec()).expect("uid is UTF-8"),
        )
    })
}

fn ok(msg: &str, ts: u64, uid: &str) {
    assert_eq!(decode(msg.as_bytes()), Ok((ts, uid.to_string())), "{msg}");
}

fn rejected(msg: &[u8], reason: Reject) {
    assert_eq!(decode(msg), Err(reason), "{}", String::from_utf8_lossy(msg));
}

/// A ~2 KB frame of the real shape: many root keys, nested decoys, escapes,
/// Cyrillic text, uid and ts in the middle.
fn realistic(uid_json: &str, ts_json: &str) -> String {
    let mut s = String::from("{");
    s.push_str(r#""event_type":"page_view","session_id":"c0ffee-42","#);
    s.push_str(
        r#""referrer":{"uid":"decoy-1","ts":"yesterday","nested":{"uid":"decoy-2","ts":5}},"#,
    );
    s.push_str(r#""title":"Купить \"слона\"\tнедорого\nи быстро \u0436 \\ \/","#);
    for i in 0..12 {
        s.push_str(&format!(
            r#""field_{i}":{{"k":[1,-2.5e-3,true,false,null,"x\ty"],"ts":{i},"uid":{i}}},"#
        ));
    }
    s.push_str(&format!(r#""uid":{uid_json},"#));
    s.push_str(r#""items":[{"uid":"decoy-3","ts":1,"name":"Молоко"},{"price":12.50}],"#);
    s.push_str(&format!(r#""ts":{ts_json},"#));
    for i in 0..6 {
        s.push_str(&format!(
            r#""text_{i}":"{}","#,
            "Съешь же ещё этих мягких французских булок. ".repeat(4)
        ));
    }
    s.push_str(r#""device":{"os":"Android","ts":1234,"uid":"device-uid"},"last":null}"#);
    s
}

#[test]
fn minimal_frames() {
    ok(r#"{"ts":1767225600,"uid":"u1"}"#, 1_767_225_600, "u1");
    ok(r#"{"uid":"u1","ts":1767225600}"#, 1_767_225_600, "u1");
    ok(
        " \t{ \"uid\" : \"u1\" , \"ts\" : 1767225600.9 }\r\n ",
        1_767_225_600,
        "u1",
    );
    ok(
        r#"{"ts":1.7672256e9,"uid":"u1","extra":[{}]}"#,
        1_767_225_600,
        "u1",
    );
}

#[test]
fn realistic_frame_with_decoys() {
    let frame = realistic(r#""user-7""#, "1767225601");
    assert!(frame.len() > 1500, "fixture is ~2 KB: {}", frame.len());
    ok(&frame, 1_767_225_601, "user-7");
    // serde_json agrees on the root fields.
    let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(v["uid"], "user-7");
}

#[test]
fn uid_is_compared_after_unescaping() {
    ok(r#"{"ts":1,"uid":"\u00e4"}"#, 1, "ä");
    ok(r#"{"ts":1,"uid":"ä"}"#, 1, "ä");
    ok(r#"{"ts":1,"uid":"a\/b\"c"}"#, 1, "a/b\"c");
    ok(r#"{"ts":1,"uid":"\ud83d\ude00"}"#, 1, "😀");
    ok(r#"{"ts":1,"\u0075id":"escaped-key"}"#, 1, "escaped-key");
    ok(
        &realistic(
            r#""\u043f\u043e\u043b\u044c\u0437\u043e\u0432\u0430\u0442\u0435\u043b\u044c-3""#,
            "7",
        ),
        7,
        "пользователь-3",
    );
}

#[test]
fn wrapped_in_a_json_string() {
    ok(
        r#""{\"ts\":1767225600,\"uid\":\"u1\"}""#,
        1_767_225_600,
        "u1",
    );
    ok(r#" "{\"uid\":\"\\u00e4\",\"ts\":5}" "#, 5, "ä");
    let inner = realistic(r#""wrapped""#, "9");
    let wrapped = serde_json::to_string(&inner).unwrap();
    ok(&wrapped, 9, "wrapped");
    rejected(br#""[1,2]""#, Reject::NotObject);
    rejected(
        br#""\"{\\\"ts\\\":1,\\\"uid\\\":\\\"a\\\"}\"""#,
        Reject::NotObject,
    );
    rejected(br#""{\"ts\":1,\"uid\":\"a\"""#, Reject::NotJson);
    rejected(br#""{\"ts\":1,\"uid\":\"a\"}" x"#, Reject::NotJson);
    rejected(br#""{\"ts\":1,\"uid\":\"a\"""#, Reject::NotJson);
    rejected(br#""\ud800""#, Reject::NotUtf8);
    // The content's reason is the one it would get as a message.
    rejected(br#""""#, Reject::Empty);
    rejected(br#"" \t ""#, Reject::Empty);
    rejected(br#""42""#, Reject::NotObject);
    rejected(br#""{\"ts\":1}""#, Reject::MissingUid);
    rejected(br#""{\"ts\":\"x\",\"uid\":\"a\"}""#, Reject::BadTs);
}

#[test]
fn every_rejection_reason() {
    rejected(b"", Reject::Empty);
    rejected(b" \r\n\t", Reject::Empty);
    rejected(b"{\"ts\":1,\"uid\":\"\xff\"}", Reject::NotUtf8);
    rejected(b"{\"ts\":1,\"uid\":\"\xd0\"}", Reject::NotUtf8);
    rejected(br#"{"ts":1,"uid":"a""#, Reject::NotJson);
    rejected(br#"{"ts":1,"uid":"a"}}"#, Reject::NotJson);
    rejected(br#"{"ts":1,"uid":"a"} x"#, Reject::NotJson);
    rejected(br#"{"ts":1,"uid":"a",}"#, Reject::NotJson);
    rejected(br#"{"ts":01,"uid":"a"}"#, Reject::NotJson);
    rejected(br#"{"ts":1,"uid":"a\x"}"#, Reject::NotJson);
    rejected(b"{\"ts\":1,\"uid\":\"a\x01\"}", Reject::NotJson);
    rejected(b"\xef\xbb\xbf{\"ts\":1,\"uid\":\"a\"}", Reject::NotJson); // BOM
    rejected(br#"[{"ts":1,"uid":"a"}]"#, Reject::NotObject);
    rejected(b"42", Reject::NotObject);
    rejected(b"null", Reject::NotObject);
    rejected(br#"{"ts":1,"nested":{"uid":"a"}}"#, Reject::MissingUid);
    rejected(br#"{"uid":"a","nested":{"ts":1}}"#, Reject::MissingTs);
    rejected(br#"{"uid":"a","ts":1,"uid":"b"}"#, Reject::DuplicateKey);
    rejected(br#"{"uid":"a","ts":1,"ts":2}"#, Reject::DuplicateKey);
    rejected(br#"{"uid":7,"ts":1}"#, Reject::BadUid);
    rejected(br#"{"uid":"","ts":1}"#, Reject::BadUid);
    rejected(br#"{"uid":null,"ts":1}"#, Reject::BadUid);
    rejected(br#"{"uid":"\ud800","ts":1}"#, Reject::BadUid);
    let long = format!(r#"{{"uid":"{}","ts":1}}"#, "x".repeat(MAX_UID_BYTES + 1));
    rejected(long.as_bytes(), Reject::BadUid);
    let longest = format!(r#"{{"uid":"{}","ts":1}}"#, "x".repeat(MAX_UID_BYTES));
    assert!(decode(longest.as_bytes()).is_ok());
    rejected(br#"{"uid":"a","ts":"1767225600"}"#, Reject::BadTs);
    rejected(br#"{"uid":"a","ts":-1}"#, Reject::BadTs);
    rejected(br#"{"uid":"a","ts":true}"#, Reject::BadTs);
    rejected(br#"{"uid":"a","ts":1e300}"#, Reject::TsOutOfRange);
    rejected(br#"{"uid":"a","ts":253402300800}"#, Reject::TsOutOfRange);
}

#[test]
fn truncation_at_every_byte_of_a_realistic_frame_is_rejected() {
    let frame = realistic(r#""user-7""#, "1767225601");
    let bytes = frame.as_bytes();
    let mut d = Decoder::new();
    for cut in 0..bytes.len() {
        let got = d.decode(&bytes[..cut]);
        assert!(
            matches!(got, Err(Reject::NotJson | Reject::NotUtf8 | Reject::Empty)),
            "cut at {cut}: {got:?}"
        );
    }
    assert!(d.decode(bytes).is_ok());
}

#[test]
fn agrees_with_serde_json_on_validity_of_mutations() {
    // Flip, drop and insert bytes all over a realistic frame: whenever
    // serde_json says "not JSON" we must too, and vice versa.
    let frame = realistic(r#""user-7""#, "1767225601").into_bytes();
    let mut d = Decoder::new();
    // 0x0C and 0x1A: control bytes the AVX2 classifier folds onto `,` and `:`.
    let specials = b"{}[]\":,\\ 0-.eEtfnu\x01\x0c\x1a";
    mutations(&frame, specials, 3, 20_000, |m| {
        let serde_ok = std::str::from_utf8(&m).is_ok()
            && serde_json::from_slice::<serde::de::IgnoredAny>(&m).is_ok();
        let ours = d.decode(&m);
        let ours_invalid = matches!(ours, Err(Reject::NotJson | Reject::NotUtf8));
        assert_eq!(
            ours_invalid,
            !serde_ok,
            "{}: {ours:?}",
            String::from_utf8_lossy(&m)
        );
        if let Ok(e) = ours {
            let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
            assert_eq!(v["uid"].as_str().unwrap().as_bytes(), e.uid);
        }
    });
}

/// Calls `check` with `rounds` copies of `base`, each with 1 to
/// `max_edits` random edits: a byte of `specials` written over, inserted,
/// or a byte removed. Deterministic (a fixed xorshift seed).
pub(super) fn mutations(
    base: &[u8],
    specials: &[u8],
    max_edits: u64,
    rounds: usize,
    mut check: impl FnMut(Vec<u8>),
) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..rounds {
        let mut m = base.to_vec();
        for _ in 0..1 + next() % max_edits {
            let at = (next() % m.len() as u64) as usize;
            let b = specials[(next() % specials.len() as u64) as usize];
            match next() % 3 {
                0 => m[at] = b,
                1 => {
                    m.remove(at);
                }
                _ => m.insert(at, b),
            }
        }
        check(m);
    }
}
