//! Fields to group by (`generate --groups`): `country` (about 30 values,
//! Zipf, with quotes, commas, `:`, `=`, tabs, CJK, an emoji, numbers and
//! booleans among them), `page` (`--group-pages`, a thousand by default,
//! Zipf, some of them numbers)
//! and `ctx.device` (nested). Each is sometimes `null`, missing, an object
//! or an array, and `country` sometimes longer than a group value may be,
//! so that every rule of `decode::fields` is met. A script outside the code
//! under test computes their truth (`scripts/group-truth.py`).

use super::frame::{lit, put_u64};
use super::rng::{Rng, Zipf};

/// `country` values as JSON, most frequent first.
#[rustfmt::skip]
const COUNTRIES: [&str; 30] = [
    r#""DE""#, r#""US""#, r#""FR""#, r#""BR""#, r#""JP""#, r#""IN""#, r#""GB""#, r#""IT""#,
    r#""ES""#, r#""PL""#, r#""a \"quoted\" one""#, r#""comma,separated""#, r#""colon:value""#,
    r#""key=value""#, r#""tab\there""#, r#""日本""#, r#""\u65e5\u672c""#, r#""Straße""#,
    r#""🦀 crab""#, r#""with space""#, r#""slash/and\\backslash""#, r#""""#, "42", "1.5e3",
    "true", "false", r#""42""#, r#""NL""#, r#""SE""#, r#""CH""#,
];

/// `ctx.device` values as JSON.
const DEVICES: [&str; 7] = [
    r#""mobile""#,
    r#""desktop""#,
    r#""tv""#,
    r#""tablet""#,
    r#""\u00e9cran""#,
    r#""car play""#,
    "7",
];

pub(super) struct GroupFields {
    country: Zipf,
    page: Zipf,
    device: Zipf,
}

impl GroupFields {
    /// With `pages` distinct `page` values.
    pub(super) fn new(pages: u64) -> Self {
        GroupFields {
            country: Zipf::new(COUNTRIES.len() as u64, 1.1),
            page: Zipf::new(pages.max(1), 1.0),
            device: Zipf::new(DEVICES.len() as u64, 0.8),
        }
    }

    /// Appends each field (`"key":value`, no separator) to `out`, calling
    /// `field(start, end)` with its span.
    pub(super) fn write(
        &self,
        r: &mut Rng,
        out: &mut Vec<u8>,
        mut field: impl FnMut(usize, usize),
    ) {
        let mut start = out.len();
        let roll = r.below(1000);
        match roll {
            0..=39 => {} // missing
            40..=79 => lit(out, r#""country":null"#),
            80..=89 => lit(out, r#""country":{"code":"DE"}"#),
            90..=99 => lit(out, r#""country":["DE"]"#),
            100..=104 => {
                lit(out, r#""country":""#);
                for _ in 0..300 {
                    out.push(b'x');
                }
                out.push(b'"');
            }
            _ => {
                lit(out, r#""country":"#);
                lit(out, COUNTRIES[self.country.sample(r) as usize]);
            }
        }
        if out.len() > start {
            field(start, out.len());
        }
        start = out.len();
        if r.below(100) >= 5 {
            let page = self.page.sample(r);
            if page % 10 == 7 {
                lit(out, r#""page":"#);
                put_u64(out, page);
            } else {
                lit(out, r#""page":"/p/"#);
                put_u64(out, page);
                out.push(b'"');
            }
            field(start, out.len());
        }
        start = out.len();
        match r.below(100) {
            0..=4 => {}
            5..=9 => lit(out, r#""ctx":{"os":"x"}"#),
            10..=14 => lit(out, r#""ctx":{"device":null}"#),
            15..=16 => lit(out, r#""ctx":"flat""#),
            _ => {
                lit(out, r#""ctx":{"app":{"v":3},"device":"#);
                lit(out, DEVICES[self.device.sample(r) as usize]);
                out.push(b'}');
            }
        }
        if out.len() > start {
            field(start, out.len());
        }
    }
}
