//! Frame writing: minimal and realistic JSON objects, wrapped and invalid variants.

use super::push_uid;
use super::rng::Rng;
pub(super) fn lit(o: &mut Vec<u8>, s: &str) {
    o.extend_from_slice(s.as_bytes());
}

pub(super) fn put_u64(o: &mut Vec<u8>, mut n: u64) {
    let (mut b, mut i) = ([0u8; 20], 20);
    loop {
        i -= 1;
        b[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break o.extend_from_slice(&b[i..]);
        }
    }
}

/// The low `digits` decimal digits of `n`, zero-padded.
pub(super) fn put_digits(o: &mut Vec<u8>, n: u64, digits: u32) {
    for d in (0..digits).rev() {
        o.push(b'0' + (n / 10u64.pow(d) % 10) as u8);
    }
}

pub(super) fn put_hex(o: &mut Vec<u8>, n: u64, digits: u32, upper: bool) {
    let table = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    for d in (0..digits).rev() {
        o.push(table[((n >> (4 * d)) & 15) as usize]);
    }
}

/// Root `ts` as JSON: an integer, in realistic frames sometimes `N.fff` (decoders floor it) or
/// an exponent form that is exactly the integer (`1.7672256e9`).
pub(super) fn put_ts(o: &mut Vec<u8>, r: &mut Rng, ts: u64, realistic: bool) {
    o.clear();
    put_u64(o, ts);
    // Below 2^40 s, `.999` never rounds up to the next integer and every form is exact in f64.
    match if realistic && ts < 1 << 40 {
        r.below(20)
    } else {
        0
    } {
        17 | 18 => {
            o.push(b'.');
            put_digits(o, r.below(1000), 3);
        }
        19 if ts > 0 && o.last() == Some(&b'0') => {
            let exp = o.len() - 1;
            while o.last() == Some(&b'0') {
                o.pop();
            }
            if o.len() > 1 {
                o.insert(1, b'.');
            }
            lit(o, r.pick(&["e", "E", "e+"]));
            put_u64(o, exp as u64);
        }
        _ => {}
    }
}

/// Root `uid` as a JSON string. Realistic frames escape non-ASCII as `\uXXXX` in about half of
/// the frames, sometimes escape one more char, and sometimes write `/` as `\/`.
pub(super) fn put_uid(o: &mut Vec<u8>, r: &mut Rng, uid: &str, realistic: bool) {
    o.clear();
    o.push(b'"');
    if !realistic {
        o.extend_from_slice(uid.as_bytes());
    } else {
        let (non_ascii, slash, upper) = (r.chance(0.5), r.chance(0.5), r.chance(0.5));
        let one = if r.chance(0.15) {
            r.below(uid.len() as u64) as usize
        } else {
            usize::MAX
        };
        for (i, c) in uid.char_indices() {
            if c == '/' && slash {
                lit(o, r"\/");
            } else if (non_ascii && !c.is_ascii()) || i == one {
                for &unit in c.encode_utf16(&mut [0; 2]).iter() {
                    lit(o, r"\u");
                    put_hex(o, u64::from(unit), 4, upper);
                }
            } else {
                lit(o, c.encode_utf8(&mut [0; 4]));
            }
        }
    }
    o.push(b'"');
}

/// Product titles (Russian, with `\"`, `\t`, `\n`, `\\` and `\uXXXX` escapes).
#[rustfmt::skip]
const TITLES: &[&str] = &[
    r#"Чайник электрический \"Витязь\" 1,7 л"#,
    r"Смартфон Galaxy A55 — 8\/256 ГБ",
    r"\u0416урнал \u00abВокруг света\u00bb №12",
    r"Кроссовки беговые\tмужские, размер 42",
    r#"Книга \"Мастер и Маргарита\"\nизд. 2024"#,
    r"Набор отвёрток C:\\tools (12 шт.)",
];

/// Words of the `message` filler: Cyrillic, Latin-1, and every kind of JSON escape.
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "Пользователь", "открыл", "страницу", "каталога", "и", "добавил", "товар", "в", "корзину;",
    "lorem", "ipsum", "dolor", "sit", "amet,", r"\n", r"\t", r#"\"цитата\""#, r"C:\\logs\\app.log",
    r"\u0436\u0443\u0440\u043d\u0430\u043b", "ошибка:", "timeout", "Grüße", "naïve", "—",
    r"\/api\/v2\/events", "ok",
];

/// Root fields of realistic frames as templates (see [`expand`]). The first three are in every
/// frame; 0 and 1 carry nested `uid`/`ts` decoys that a correct decoder must ignore.
const FIELDS: [&str; 31] = [
    r#""referrer":{"url":"https:\/\/${p:example.com|shop.example.ru}\/${p:promo|blog\/2025\/12|search}?utm_source=${p:newsletter|vk}","uid":"u${x:12}","ts":${p:"yesterday"|1767139200|null|"2025-12-31T23:59:59Z"},"campaign":{"id":${i:0-99999},"name":"Новогодняя распродажа"}}"#,
    r#""device":{"type":"${p:mobile|desktop|tablet}","os":{"name":"${p:Android|iOS|Windows}","version":"1${i:0-9}.${z:2}"},"model":"${p:Pixel 8|iPhone15,3|SM-A556B}","ts":${i:0-999},"screen":{"w":1080,"h":2400,"dpr":${p:1|2.625|3.0|1.5e0}},"battery":0.${i:10-99},"charging":${p:true|false}}"#,
    r#""event_type":"${p:page_view|click|add_to_cart|purchase|search|scroll}""#,
    r#""session_id":"${x:16}${x:16}""#,
    r#""page":"\/catalog\/${p:kitchen|phones|books}\/${i:0-999999}?ref=home&q=%D1%87%D0%B0%D0%B9""#,
    r#""user_agent":"${p:Mozilla\/5.0 (Linux; Android 14; Pixel 8) AppleWebKit\/537.36 (KHTML, like Gecko) Chrome\/131.0.0.0 Mobile Safari\/537.36|Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1}""#,
    r#""ip":"203.0.${i:0-255}.${i:1-254}""#,
    r#""country":"${p:RU|DE|BR|CH|US|KZ}""#,
    r#""city":"${p:Москва|Санкт-Петербург|München|São Paulo|\u041a\u0430\u0437\u0430\u043d\u044c}""#,
    r#""geo":{"lat":${i:0-89}.${z:4},"lon":-${i:0-179}.${z:4},"accuracy_m":${i:0-99}.${z:1},"source":{"kind":"gps","meta":{"uid":"geo-svc-${i:0-99}","ts":-${i:1-99999},"ok":true}}}"#,
    r#""experiment":{"id":"exp-${i:0-99}","variant":"${p:A|B|control}","buckets":[1,2,3],"uid":null,"weight":0.${i:1-9}}"#,
    r#""items":[{"sku":"SKU-${i:0-99999}","title":"${T}","price":${i:0-4999}.${z:2},"qty":${i:1-5},"discount":${p:0|-0.15|1.5e-3|2E-2},"tags":["sale","новинка"]}]"#,
    r#""props":{"scroll_depth":0.${z:2},"ratio":${p:1.5e-3|-2.5E+10|6.02e23|0.0},"flags":[true,false,null],"nested":{"a":{"b":"c\td","ts":"not-a-time"}}}"#,
    r#""title":"${T}""#,
    r#""consent":${p:true|false}"#,
    r#""ab_score":-0.${z:3}"#,
    r#""latency_ms":${i:0-4999}"#,
    r#""retries":${i:0-3}"#,
    r#""tags":["sale","новинка","a\/b","\u0436"]"#,
    r#""locale":"${p:ru-RU|de-CH|pt-BR}""#,
    r#""timezone":"${p:Europe\/Moscow|America/Sao_Paulo}""#,
    r#""app_version":"5.${i:0-19}.${i:0-9}""#,
    r#""build":202512${i:10-31}"#,
    r#""debug":null"#,
    r#""sample_rate":${p:1e-2|0.5|1.0E0}"#,
    r#""request_id":"req-${X:16}""#,
    r#""offset":-${i:1-1099511627776}"#,
    r#""extra":{"list":[],"obj":{},"nil":null,"deep":[[1,[2,[3]]]]}"#,
    r#""note":"${p:line1\nline2\t\"quoted\"|C:\\temp\\x\r\nend|tab\there\u0000zero}""#,
    r#""cart":{"total":{"amount":${i:0-99999}.${z:1},"currency":"RUB"},"coupon":null,"items_count":${i:0-19},"recommended":[{"sku":"SKU-${i:0-99999}","title":"${T}","score":0.${z:3}}]}"#,
    r#""context":{"library":{"name":"analytics.js","version":"4.1.0"},"ts":"2026-01-01T00:00:00Z","user":{"uid":"anon-${x:8}","traits":{"ts":0,"vip":false}}}"#,
];

/// Expands a field template: `${i:LO-HI}` random integer, `${z:D}` D random digits,
/// `${x:N}`/`${X:N}` N <= 16 random hex digits, `${p:a|b}` one alternative, `${T}` a product title.
pub(super) fn expand(o: &mut Vec<u8>, r: &mut Rng, template: &str) {
    let mut rest = template;
    while let Some(at) = rest.find("${") {
        lit(o, &rest[..at]);
        let len = rest[at..].find('}').unwrap_or(rest.len() - at);
        let (kind, arg) = rest[at + 2..at + len].split_at(1);
        let arg = arg.strip_prefix(':').unwrap_or(arg);
        rest = rest.get(at + len + 1..).unwrap_or("");
        let num = |s: &str| s.parse::<u64>().unwrap_or(0);
        match kind {
            "i" => {
                let (lo, hi) = arg.split_once('-').unwrap_or((arg, arg));
                put_u64(o, r.range(num(lo), num(hi)));
            }
            "z" => put_digits(o, r.next(), num(arg) as u32),
            "x" | "X" => put_hex(o, r.next(), num(arg) as u32, kind == "X"),
            "p" => {
                let n = arg.split('|').count() as u64;
                lit(o, arg.split('|').nth(r.below(n) as usize).unwrap_or(""));
            }
            _ => lit(o, r.pick(TITLES)),
        }
    }
    lit(o, rest);
}

/// Reused buffers (no allocation per frame after warm-up) plus the PRNG, building one line at
/// a time: [`Gen::roots`] encodes the root values, then [`Gen::frame`] or [`Gen::invalid`].
#[derive(Default)]
pub(super) struct Gen {
    pub(super) r: Rng,
    pub(super) realistic: bool,
    pub(super) uid_text: String,
    pub(super) ts: Vec<u8>,
    pub(super) uid: Vec<u8>,
    pub(super) fields: Vec<u8>,
    pub(super) spans: Vec<(usize, usize)>,
    pub(super) frame: Vec<u8>,
    /// `--groups`: fields to group by in every valid frame.
    pub(super) groups: Option<super::groups::GroupFields>,
}

impl Gen {
    pub(super) fn roots(&mut self, ts: u64, user: u64) {
        put_ts(&mut self.ts, &mut self.r, ts, self.realistic);
        self.uid_text.clear();
        push_uid(&mut self.uid_text, user);
        put_uid(&mut self.uid, &mut self.r, &self.uid_text, self.realistic);
    }

    /// Builds a frame into `self.frame` from the encoded roots, leaving out those not `has_*`
    /// (then only a nested decoy of that name remains). `poison` goes into a realistic frame's
    /// `message` string.
    pub(super) fn frame(&mut self, has_ts: bool, has_uid: bool, poison: &[u8]) {
        let roots = [
            ("\"ts\":", has_ts, &self.ts),
            ("\"uid\":", has_uid, &self.uid),
        ];
        let (f, r) = (&mut self.fields, &mut self.r);
        f.clear();
        self.spans.clear();
        if !self.realistic {
            f.push(b'{');
            for (n, (key, has, value)) in roots.into_iter().enumerate() {
                lit(f, if n > 0 { "," } else { "" });
                if has {
                    lit(f, key);
                    f.extend_from_slice(value);
                } else {
                    lit(
                        f,
                        [r#""ctx":{"ts":1767225600}"#, r#""ctx":{"uid":"u0decoy"}"#][n],
                    );
                }
            }
            if let Some(groups) = &self.groups {
                let mut fields = Vec::new();
                let mut spans = Vec::new();
                groups.write(r, &mut fields, |a, b| spans.push((a, b)));
                for (a, b) in spans {
                    f.push(b',');
                    f.extend_from_slice(&fields[a..b]);
                }
            }
            f.push(b'}');
            return std::mem::swap(f, &mut self.frame);
        }
        // Fields 0-2 always, then 13-25 more of the rest in random order
        // (with `--groups`, not the random `page` and `country`: the group
        // fields have those keys).
        let mut ids: [usize; FIELDS.len()] = std::array::from_fn(|i| i);
        let mut pool = FIELDS.len();
        if self.groups.is_some() {
            ids.swap(4, FIELDS.len() - 1);
            ids.swap(7, FIELDS.len() - 2);
            pool -= 2;
        }
        let chosen = 3 + r.range(13, 25) as usize;
        for i in 3..chosen {
            ids.swap(i, i + r.below((pool - i) as u64) as usize);
        }
        for &id in &ids[..chosen] {
            let start = f.len();
            expand(f, r, FIELDS[id]);
            self.spans.push((start, f.len()));
        }
        if let Some(groups) = &self.groups {
            let spans = &mut self.spans;
            groups.write(r, f, |a, b| spans.push((a, b)));
        }
        for (key, _, value) in roots.into_iter().filter(|root| root.1) {
            let start = f.len();
            lit(f, key);
            f.extend_from_slice(value);
            self.spans.push((start, f.len()));
        }
        // The `message` filler brings the frame to a random size in 1650..2350 bytes.
        let size: usize = self.spans.iter().map(|(a, b)| b - a + 1).sum::<usize>() + 14;
        let need = (1650 + r.below(700) as usize).saturating_sub(size);
        let start = f.len();
        lit(f, r#""message":""#);
        lit(f, r.pick(WORDS));
        f.extend_from_slice(poison);
        while f.len() - start < need + 11 {
            f.push(b' ');
            lit(f, r.pick(WORDS));
        }
        f.push(b'"');
        self.spans.push((start, f.len()));
        for i in (1..self.spans.len()).rev() {
            self.spans.swap(i, r.below(i as u64 + 1) as usize);
        }
        self.frame.clear();
        for (n, &(a, b)) in self.spans.iter().enumerate() {
            self.frame.push(if n == 0 { b'{' } else { b',' });
            self.frame.extend_from_slice(&f[a..b]);
        }
        self.frame.push(b'}');
    }

    /// Appends one line of a uniformly chosen invalid kind to `out`; [`Gen::roots`] must have run.
    pub(super) fn invalid(&mut self, ts: u64, user: u64, out: &mut Vec<u8>) {
        let (mut has_ts, mut has_uid, mut poison) = (true, true, &b""[..]);
        let kind = self.r.below(14);
        match kind {
            0 | 1 => {
                self.frame(true, true, b"");
                if kind == 0 {
                    let cut = 1 + self.r.below(self.frame.len() as u64 - 1) as usize;
                    return out.extend_from_slice(&self.frame[..cut]);
                }
                out.extend_from_slice(&self.frame);
                return lit(out, self.r.pick(&["}", "x", " ,", "{}", "}x"]));
            }
            2 => has_uid = false,
            3 => has_ts = false,
            4 => set(&mut self.uid, &user.to_string()),
            5 => set(&mut self.uid, "\"\""),
            6 => set(&mut self.ts, &format!("\"{ts}\"")),
            7 => set(&mut self.ts, &format!("-{}", ts.max(1))),
            8 => return lit(out, "[1,2]"),
            9 => return out.extend_from_slice(&self.ts),
            10 => return lit(out, "null"),
            11 => poison = br"\x41",
            12 => poison = b"\x01",
            _ => poison = b"\xff",
        }
        if !poison.is_empty() && (!self.realistic || self.r.chance(0.5)) {
            self.uid.pop();
            self.uid.extend_from_slice(poison);
            self.uid.push(b'"');
            poison = b"";
        }
        self.frame(has_ts, has_uid, poison);
        out.extend_from_slice(&self.frame);
    }
}

pub(super) fn set(o: &mut Vec<u8>, s: &str) {
    o.clear();
    lit(o, s);
}
