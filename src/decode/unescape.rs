//! JSON string unescaping into a reusable buffer.
//!
//! Only strings that contain a backslash get here (the scanner says so), so
//! the common case of a plain uid is borrowed straight from the message.

/// The string has a `\u` escape that does not form a Unicode scalar value
/// (an unpaired surrogate), so it has no UTF-8 form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoneSurrogate;

/// Appends the unescaped form of `s` (the bytes between the quotes, already
/// validated by the scanner) to `out`.
pub fn unescape_into(s: &[u8], out: &mut Vec<u8>) -> Result<(), LoneSurrogate> {
    out.reserve(s.len());
    let mut i = 0;
    while i < s.len() {
        let Some(off) = memchr::memchr(b'\\', &s[i..]) else {
            out.extend_from_slice(&s[i..]);
            break;
        };
        out.extend_from_slice(&s[i..i + off]);
        i += off;
        let simple = match s[i + 1] {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            continue;
        }
        // \uXXXX, possibly the first half of a surrogate pair.
        let hi = hex4(&s[i + 2..i + 6]);
        i += 6;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if s.get(i..i + 2) != Some(b"\\u") {
                return Err(LoneSurrogate);
            }
            let lo = hex4(&s[i + 2..i + 6]);
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(LoneSurrogate);
            }
            i += 6;
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else if (0xDC00..0xE000).contains(&hi) {
            return Err(LoneSurrogate);
        } else {
            hi
        };
        let ch = char::from_u32(code).ok_or(LoneSurrogate)?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    Ok(())
}

fn hex4(h: &[u8]) -> u32 {
    h.iter().fold(0, |acc, &c| {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => c - b'A' + 10,
        };
        (acc << 4) | u32::from(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(s: &str) -> Result<String, LoneSurrogate> {
        let mut out = Vec::new();
        unescape_into(s.as_bytes(), &mut out)?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn agrees_with_serde_json() {
        for s in [
            r"plain",
            r#"a\tb\nc\"d\\e\/f\b\f\r"#,
            r"\u00e4\u00C4",
            r"\ud83d\ude00 smile",
            r"пользователь-\u0436",
            r"\u0000",
        ] {
            let want: String = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            assert_eq!(un(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn lone_surrogates_are_refused() {
        for s in [
            r"\ud800",
            r"\ud800x",
            r"\udc00",
            r"\ud800\u0041",
            r"\ud800\ud800",
        ] {
            assert_eq!(un(s), Err(LoneSurrogate), "{s}");
        }
    }
}
