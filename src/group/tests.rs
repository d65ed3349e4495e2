use super::*;
use crate::decode::Decoder;

#[test]
fn the_setting_parses_into_groupings_over_distinct_fields() {
    let g = Groupings::parse("country, /ctx/device ,country+/ctx/device,page", 100).unwrap();
    let texts: Vec<&str> = g.list.iter().map(|x| x.text.as_str()).collect();
    assert_eq!(
        texts,
        ["country", "/ctx/device", "country+/ctx/device", "page"]
    );
    assert_eq!(g.paths.len(), 3, "country and /ctx/device read once");
    assert_eq!(g.list[2].parts, [0, 1]);
    assert!(Groupings::parse("", 1).unwrap().is_empty());
    let err = |s: &str| Groupings::parse(s, 1).unwrap_err().to_string();
    assert_eq!(err("a,a"), "a is listed twice");
    assert_eq!(err("a+"), r#""a+": an empty field before or after `+`"#);
    assert_eq!(
        err("a+b+c+d+e"),
        r#""a+b+c+d+e": at most 4 fields joined by `+`"#
    );
    assert_eq!(
        err("a+/a"),
        r#""a+/a": the same field twice in one grouping"#
    );
    assert_eq!(
        err("country,/country"),
        r#""country" and "/country" are the same grouping"#
    );
    assert_eq!(err("a+b,b+a"), r#""a+b" and "b+a" are the same grouping"#);
    assert!(
        Groupings::parse("a,a+b,b", 1).is_ok(),
        "a part is not the whole"
    );
    assert_eq!(
        Groupings::parse("a,,b,", 1).unwrap().list.len(),
        2,
        "empty entries are skipped, as in DISTINCTLY_WINDOWS"
    );
    assert!(err("uid").contains("uid and ts are the event itself"));
    assert!(err("/a~x").contains("`~` must be followed by 0 or 1"));
    let many: Vec<String> = (0..17).map(|i| format!("k{i}")).collect();
    assert_eq!(err(&many.join(",")), "17 groupings; at most 16");
}

/// The keys of one message, as the records would show them.
fn keys(setting: &str, msg: &str) -> (Vec<String>, Refusals) {
    let g = Groupings::parse(setting, 100).unwrap();
    let mut d = Decoder::with_fields(&g.paths);
    let e = d.decode(msg.as_bytes()).unwrap();
    let mut k = GroupKeys::default();
    let mut refusals = Refusals::default();
    g.keys_of(&e.fields, &mut k, &mut refusals);
    let shown = (0..k.len())
        .map(|i| {
            let value = match k.get(i) {
                Some((key, _)) => GroupValue::Key(key.into()),
                None => GroupValue::None,
            };
            let mut s = String::new();
            write_group_json(&value, g.list[i].parts.len(), &mut s);
            s
        })
        .collect();
    (shown, refusals)
}

#[test]
fn keys_of_single_and_combined_groupings() {
    let setting = "country,/ctx/device,country+/ctx/device,n";
    let (k, r) = keys(
        setting,
        r#"{"uid":"u","ts":1,"country":"D\"E","ctx":{"device":"a\tb"},"n":42}"#,
    );
    assert_eq!(
        k,
        [r#""D\"E""#, r#""a\tb""#, r#"["D\"E","a\tb"]"#, r#""42""#]
    );
    assert_eq!(r.total(), 0);
    // One part missing: the combination keeps the other; all missing: none.
    let (k, _) = keys(setting, r#"{"uid":"u","ts":1,"country":"DE"}"#);
    assert_eq!(k, [r#""DE""#, "null", r#"["DE",null]"#, "null"]);
    let (k, _) = keys(setting, r#"{"uid":"u","ts":1,"ctx":{"device":null}}"#);
    assert_eq!(k, ["null", "null", "null", "null"]);
    // Refused values are no group, and counted.
    let (k, r) = keys(
        setting,
        r#"{"uid":"u","ts":1,"country":{"a":1},"ctx":{"device":"x"},"n":[1]}"#,
    );
    assert_eq!(k, ["null", r#""x""#, r#"[null,"x"]"#, "null"]);
    assert_eq!(r.get(0, Refusal::NotScalar), 1);
    assert_eq!(r.get(2, Refusal::NotScalar), 1, "the combination's part");
    assert_eq!(r.get(3, Refusal::NotScalar), 1);
    assert_eq!(r.total(), 3);
    // A string and a number with the same text are one group.
    let (a, _) = keys("n", r#"{"uid":"u","ts":1,"n":"42"}"#);
    let (b, _) = keys("n", r#"{"uid":"u","ts":1,"n":42}"#);
    assert_eq!(a, b);
}

#[test]
fn json_strings_escape_what_json_requires() {
    let mut s = String::new();
    json_string("a\"b\\c\nd\u{1}e\u{2028}ä日本".as_bytes(), &mut s);
    assert_eq!(s, r#""a\"b\\c\nd\u0001e\u2028ä日本""#);
    let v: String = serde_json::from_str(&s).unwrap();
    assert_eq!(v, "a\"b\\c\nd\u{1}e\u{2028}ä日本");
}

#[test]
fn keys_round_trip_through_their_bytes() {
    let mut k = GroupKeys::default();
    k.push(Some(b"DE"));
    k.push(None);
    k.push(Some(b""));
    k.push(Some("日本".as_bytes()));
    let mut bytes = Vec::new();
    k.encode(&mut bytes);
    bytes.extend_from_slice(b"rest");
    let mut back = GroupKeys::default();
    let mut rest = &bytes[..];
    assert!(back.decode(&mut rest, 4));
    assert_eq!(rest, b"rest");
    for g in 0..4 {
        assert_eq!(back.get(g), k.get(g));
    }
    // Truncated or lying lengths are refused.
    assert!(!back.decode(&mut &bytes[..3], 4));
    assert!(!back.decode(&mut &[9u8, b'a'][..], 1));
}

#[test]
fn short_keys_hash_apart() {
    // Every key of up to 3 bytes over a small alphabet, and words of up to
    // 16: no two of them collide in 64 bits, and the low bits (the
    // tables' buckets) spread.
    let alphabet = b"aZ0 \"\xc3";
    let mut keys: Vec<Vec<u8>> = vec![Vec::new()];
    for a in alphabet {
        keys.push(vec![*a]);
        for b in alphabet {
            keys.push(vec![*a, *b]);
            for c in alphabet {
                keys.push(vec![*a, *b, *c]);
            }
        }
    }
    for n in 4..=24 {
        for i in 0..50u8 {
            keys.push((0..n).map(|j| i.wrapping_mul(31).wrapping_add(j)).collect());
        }
    }
    let hashes: std::collections::HashSet<u64> = keys.iter().map(|k| key_hash(k)).collect();
    assert_eq!(hashes.len(), keys.len());
    let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
    assert!(buckets.len() > 500, "{} of 1024 buckets", buckets.len());
}
