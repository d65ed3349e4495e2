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

mod fields {
    use super::super::*;

    /// The fields of `msg` at `paths`, as strings (`-` missing, `!reason`).
    fn captured(paths: &[&str], msg: &str) -> Result<Vec<String>, Reject> {
        let paths: Vec<FieldPath> = paths.iter().map(|p| FieldPath::parse(p).unwrap()).collect();
        let mut d = Decoder::with_fields(&paths);
        let e = d.decode(msg.as_bytes())?;
        Ok((0..e.fields.len()).map(|i| show(e.fields.get(i))).collect())
    }

    fn show(v: FieldValue<'_>) -> String {
        match v {
            FieldValue::Missing => "-".into(),
            FieldValue::Value(b) => String::from_utf8(b.to_vec()).unwrap(),
            FieldValue::Refused(r) => format!("!{}", r.as_str()),
        }
    }

    #[test]
    fn values_at_root_keys_and_pointers() {
        let paths = [
            "country",
            "/ctx/device",
            "page",
            "/tags/1",
            "n",
            "b",
            "/ctx/os/v",
        ];
        let msg = r#"{"uid":"u","ts":1,"country":"DE","ctx":{"device":"mobile","os":{"v":"14"}},"tags":["a","b\u00e4"],"n":1.5e3,"b":false}"#;
        assert_eq!(
            captured(&paths, msg).unwrap(),
            ["DE", "mobile", "-", "bä", "1.5e3", "false", "14"]
        );
        // Missing, null, objects, arrays, duplicates, escapes.
        let msg = r#"{"ctx":{"device":null},"uid":"u","country":{"x":1},"page":[1],"n":null,"n2":1,"b":true,"b":false,"ts":1}"#;
        assert_eq!(
            captured(
                &["country", "/ctx/device", "page", "/tags/1", "n", "b"],
                msg
            )
            .unwrap(),
            ["!not_scalar", "-", "!not_scalar", "-", "-", "!duplicate"]
        );
        // Keys compared after unescaping; a value of escapes only.
        let msg = r#"{"uid":"u","ts":1,"co\u0075ntry":"\"q\"","ctx":{"dev\u0069ce":"\u0009"}}"#;
        assert_eq!(
            captured(&["country", "/ctx/device"], msg).unwrap(),
            ["\"q\"", "\t"]
        );
        // An unpaired surrogate, a value over the limit.
        let long = "x".repeat(fields::MAX_VALUE_BYTES + 1);
        let msg = format!(
            r#"{{"uid":"u","ts":1,"a":"\ud800","b":"{long}","c":"{}"}}"#,
            &long[1..]
        );
        assert_eq!(
            captured(&["a", "b", "c"], &msg).unwrap(),
            ["!bad_escape", "!too_long", &long[1..]]
        );
        // A path through a scalar, or into the wrong kind of container.
        let msg =
            r#"{"uid":"u","ts":1,"ctx":"flat","tags":{"1":"one"},"arr":[{"k":"v0"},{"k":"v1"}]}"#;
        assert_eq!(
            captured(&["/ctx/device", "/tags/1", "/arr/1/k", "/arr/01/k"], msg).unwrap(),
            ["-", "one", "v1", "-"]
        );
        // A duplicate parent key makes the field ambiguous.
        let msg = r#"{"uid":"u","ts":1,"ctx":{"device":"a"},"ctx":{"device":"b"}}"#;
        assert_eq!(captured(&["/ctx/device"], msg).unwrap(), ["!duplicate"]);
        // A path and a path under it: the outer is an object.
        let msg = r#"{"uid":"u","ts":1,"ctx":{"device":"a"}}"#;
        assert_eq!(
            captured(&["ctx", "/ctx/device"], msg).unwrap(),
            ["!not_scalar", "a"]
        );
        // Fields do not change what is accepted or why it is rejected.
        assert_eq!(
            captured(&["country"], r#"{"country":"DE","ts":1}"#),
            Err(Reject::MissingUid)
        );
        assert_eq!(
            captured(&["/a/b"], r#"{"uid":"u","ts":1,"a":{"b":"x",}}"#),
            Err(Reject::NotJson)
        );
    }

    #[test]
    fn a_wrapped_frame_gives_its_fields() {
        let msg = r#""{\"uid\":\"u\",\"ts\":1,\"country\":\"FR\",\"ctx\":{\"device\":\"tv\"}}""#;
        assert_eq!(
            captured(&["country", "/ctx/device"], msg).unwrap(),
            ["FR", "tv"]
        );
    }

    /// A random JSON tree, its text, and the oracle: what a pointer finds.
    #[derive(Debug, Clone)]
    enum Tree {
        Str(String),
        Num(String),
        Lit(&'static str),
        Arr(Vec<Tree>),
        Obj(Vec<(String, Tree)>),
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const KEYS: [&str; 5] = ["a", "b", "c~d", "e/f", "g"];

    fn tree(r: &mut Rng, depth: u32) -> Tree {
        match r.below(if depth >= 3 { 3 } else { 5 }) {
            0 => Tree::Str(["x", "y", "", "ä\"q", "\\t"][r.below(5) as usize].to_string()),
            1 => Tree::Num(["0", "-1", "2.50", "1e3", "7"][r.below(5) as usize].to_string()),
            2 => Tree::Lit(["true", "false", "null"][r.below(3) as usize]),
            3 => Tree::Arr((0..r.below(4)).map(|_| tree(r, depth + 1)).collect()),
            _ => {
                let mut keys: Vec<&str> = KEYS.to_vec();
                let n = r.below(4) as usize;
                let mut members = Vec::new();
                for _ in 0..n {
                    let k = keys.remove(r.below(keys.len() as u64) as usize);
                    members.push((k.to_string(), tree(r, depth + 1)));
                }
                Tree::Obj(members)
            }
        }
    }

    fn json_str(s: &str, r: &mut Rng) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if r.below(4) == 0 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn render(t: &Tree, r: &mut Rng, out: &mut String) {
        match t {
            Tree::Str(s) => out.push_str(&json_str(s, r)),
            Tree::Num(n) => out.push_str(n),
            Tree::Lit(l) => out.push_str(l),
            Tree::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(if r.below(2) == 0 { "," } else { " , " });
                    }
                    render(item, r, out);
                }
                out.push(']');
            }
            Tree::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&json_str(k, r));
                    out.push(':');
                    render(v, r, out);
                }
                out.push('}');
            }
        }
    }

    fn find<'t>(t: &'t Tree, path: &[String]) -> Option<&'t Tree> {
        let Some((first, rest)) = path.split_first() else {
            return Some(t);
        };
        match t {
            Tree::Obj(members) => members
                .iter()
                .find(|(k, _)| k == first)
                .and_then(|(_, v)| find(v, rest)),
            Tree::Arr(items) => {
                let canonical = first == "0" || (!first.starts_with('0') && !first.is_empty());
                let i: usize = first.parse().ok().filter(|_| canonical)?;
                items.get(i).and_then(|v| find(v, rest))
            }
            _ => None,
        }
    }

    fn expected(t: Option<&Tree>) -> String {
        match t {
            None | Some(Tree::Lit("null")) => "-".into(),
            Some(Tree::Str(s)) => s.clone(),
            Some(Tree::Num(n)) => n.clone(),
            Some(Tree::Lit(l)) => l.to_string(),
            Some(Tree::Arr(_) | Tree::Obj(_)) => "!not_scalar".into(),
        }
    }

    #[test]
    fn pointers_agree_with_an_oracle_on_random_trees() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let segs = ["a", "b", "c~d", "e/f", "g", "0", "1", "2"];
        for case in 0..4000 {
            // The root: uid, ts and random members.
            let mut members = vec![];
            let mut keys: Vec<&str> = KEYS.to_vec();
            for _ in 0..r.below(5) {
                let k = keys.remove(r.below(keys.len() as u64) as usize);
                members.push((k.to_string(), tree(&mut r, 0)));
            }
            let root = Tree::Obj(members);
            let mut body = String::new();
            render(&root, &mut r, &mut body);
            let msg = if body == "{}" {
                r#"{"uid":"u","ts":1}"#.to_string()
            } else {
                format!(r#"{{"uid":"u","ts":1,{}"#, &body[1..])
            };
            let paths: Vec<Vec<String>> = (0..1 + r.below(4))
                .map(|_| {
                    (0..1 + r.below(3))
                        .map(|_| segs[r.below(segs.len() as u64) as usize].to_string())
                        .collect()
                })
                .collect();
            let texts: Vec<String> = paths
                .iter()
                .map(|p| {
                    p.iter()
                        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
                        .collect()
                })
                .collect();
            let want: Vec<String> = paths.iter().map(|p| expected(find(&root, p))).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let got = captured(&refs, &msg).unwrap_or_else(|e| panic!("{case}: {e:?} {msg}"));
            assert_eq!(got, want, "case {case}: {msg} {texts:?}");
            // Line mode agrees.
            let parsed: Vec<FieldPath> =
                texts.iter().map(|t| FieldPath::parse(t).unwrap()).collect();
            let mut d = Decoder::with_fields(&parsed);
            let data = format!("{msg}\n{msg}\n");
            let mut lines = Vec::new();
            d.decode_lines(data.as_bytes(), 1 << 20, |e| {
                let e = e.unwrap();
                lines.push(
                    (0..e.fields.len())
                        .map(|i| show(e.fields.get(i)))
                        .collect::<Vec<_>>(),
                );
            });
            assert_eq!(lines, [want.clone(), want], "line mode, case {case}");
        }
    }
}

#[test]
fn following_fields_keeps_validation_as_serde_json_has_it() {
    // The walk down wanted paths is a second grammar walk: mutations of a
    // frame whose paths it follows must be judged as serde_json judges them.
    let mut frame = realistic(r#""user-7""#, "1767225601");
    frame.insert_str(
        1,
        r#""ctx":{"device":"mobile","os":{"v":[1,{"x":"y"},null]},"n":-2.5e3},"tags":["a",{"b":[]},"c"],"#,
    );
    let paths: Vec<FieldPath> = ["/ctx/device", "/ctx/os/v/1/x", "/tags/2", "ctx", "/ctx/n"]
        .iter()
        .map(|p| FieldPath::parse(p).unwrap())
        .collect();
    let mut d = Decoder::with_fields(&paths);
    assert_eq!(
        d.decode(frame.as_bytes()).unwrap().fields.get(1),
        FieldValue::Value(b"y")
    );
    let specials = b"{}[]\":,\\ 0-.eEtfnu\x01\x0c\x1a";
    mutations(frame.as_bytes(), specials, 3, 20_000, |m| {
        let serde_ok = std::str::from_utf8(&m).is_ok()
            && serde_json::from_slice::<serde::de::IgnoredAny>(&m).is_ok();
        let ours = d.decode(&m);
        let ours_invalid = matches!(ours, Err(Reject::NotJson | Reject::NotUtf8));
        assert_eq!(
            ours_invalid,
            !serde_ok,
            "{}: {:?}",
            String::from_utf8_lossy(&m),
            ours.map(|e| e.ts)
        );
    });
}
