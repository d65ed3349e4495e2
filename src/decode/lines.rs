//! Line mode: many JSON lines decoded at once, with the same result per
//! line as [`Decoder::decode`].
//!
//! Decoding line by line pays a fixed cost per line: finding its end, a
//! UTF-8 check, a stage 1 whose last block is copied into a padded buffer.
//! For ~50-byte frames that is most of the work. Line mode runs the UTF-8
//! check and stage 1 over a batch of lines at once, with newlines found in
//! the same pass ([`index::build_lines`]), then walks each line's slice of
//! the index.
//!
//! Stage 1 cannot tell lines apart once one of them is broken (a string
//! left open runs on into the next line), so a batch in which it finds
//! anything wrong (bad UTF-8, a control byte in a string, a bad escape) is
//! decoded again line by line: broken lines cost more, and every line gets
//! the reason it would get on its own.

use super::index::{self, LineEnd};
use super::walk;
use super::{root_event, Decoder, Event};
use crate::reject::Reject;

/// Bytes per batch (whole lines): the batch's index stays in cache, and a
/// broken line sends at most this much back to line-by-line decoding.
const BATCH: usize = 64 << 10;

impl Decoder {
    /// Decodes every line of `data` (separated by `\n`; the last one may
    /// lack it), in order, calling `f` with each line's event or reason. A
    /// line longer than `max_line` bytes is [`Reject::TooLarge`]. A final
    /// `\n` does not start another line.
    pub fn decode_lines(
        &mut self,
        data: &[u8],
        max_line: usize,
        mut f: impl FnMut(Result<Event<'_>, Reject>),
    ) {
        let mut pos = 0;
        while pos < data.len() {
            let limit = (pos + BATCH).min(data.len());
            let end = if limit == data.len() {
                limit
            } else {
                match memchr::memrchr(b'\n', &data[pos..limit]) {
                    Some(i) => pos + i + 1,
                    // One line longer than a batch: that line alone.
                    None => {
                        memchr::memchr(b'\n', &data[limit..]).map_or(data.len(), |i| limit + i + 1)
                    }
                }
            };
            let batch = &data[pos..end];
            if !self.batch(batch, max_line, &mut f) {
                self.one_by_one(batch, max_line, &mut f);
            }
            pos = end;
        }
    }

    /// Line mode over one batch; `false` (before `f` is called at all) if
    /// stage 1 found something wrong.
    fn batch(
        &mut self,
        batch: &[u8],
        max_line: usize,
        f: &mut impl FnMut(Result<Event<'_>, Reject>),
    ) -> bool {
        if batch.len() > BATCH || simdutf8::basic::from_utf8(batch).is_err() {
            return false;
        }
        let Decoder {
            index,
            uid_buf,
            inner_buf,
            lines_index,
            line_ends,
            fields,
        } = self;
        if index::build_lines(batch, lines_index, line_ends).is_err() {
            return false;
        }
        // The last line, unless the batch ends with its newline.
        if batch.last() != Some(&b'\n') {
            line_ends.push(LineEnd {
                tokens: lines_index.len() as u32,
                at: batch.len() as u32,
            });
        }
        let (mut start, mut first) = (0, 0);
        for &LineEnd { tokens, at } in line_ends.iter() {
            let (at, tokens) = (at as usize, tokens as usize);
            if at - start > max_line {
                f(Err(Reject::TooLarge));
            } else {
                // Positions are the batch's: the line is walked in place.
                let capture = fields.as_mut().and_then(super::FieldState::capture);
                let result = walk::walk(batch, &lines_index[first..tokens], capture)
                    .map_err(|_| Reject::NotJson)
                    .and_then(|root| {
                        root_event(batch, root, index, uid_buf, inner_buf, fields.as_mut())
                    });
                f(result);
            }
            (start, first) = (at + 1, tokens);
        }
        true
    }

    fn one_by_one(
        &mut self,
        batch: &[u8],
        max_line: usize,
        f: &mut impl FnMut(Result<Event<'_>, Reject>),
    ) {
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', batch)
            .chain((batch.last() != Some(&b'\n')).then_some(batch.len()));
        for end in ends {
            let line = &batch[start..end];
            start = end + 1;
            if line.len() > max_line {
                f(Err(Reject::TooLarge));
            } else {
                f(self.decode(line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, FrameKind, GenerateOptions};

    /// Every line decoded on its own, as `decode_lines` must see them.
    fn one_at_a_time(data: &[u8], max_line: usize) -> Vec<Result<(u64, Vec<u8>), Reject>> {
        let mut d = Decoder::new();
        let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        if data.last() == Some(&b'\n') {
            lines.pop();
        }
        lines
            .into_iter()
            .map(|l| {
                if l.len() > max_line {
                    Err(Reject::TooLarge)
                } else {
                    d.decode(l).map(|e| (e.ts, e.uid.to_vec()))
                }
            })
            .collect()
    }

    fn in_line_mode(data: &[u8], max_line: usize) -> Vec<Result<(u64, Vec<u8>), Reject>> {
        let mut d = Decoder::new();
        let mut got = Vec::new();
        d.decode_lines(data, max_line, |r| {
            got.push(r.map(|e| (e.ts, e.uid.to_vec())))
        });
        got
    }

    #[test]
    fn agrees_with_one_line_at_a_time_on_generated_streams() {
        for frame in [FrameKind::Minimal, FrameKind::Realistic] {
            let opts = GenerateOptions {
                events: 3_000,
                frame,
                invalid_share: 0.05,
                ..GenerateOptions::default()
            };
            let mut data = Vec::new();
            let grid = [crate::window::size::Grid::fixed(60)];
            generate(&opts, &grid, &mut data).unwrap();
            for tail in [
                &b""[..],
                b"\n",
                b"\n\n",
                b"{\"ts\":5,\"uid\":\"last\"}",
                b"{\"ts\":5,",
            ] {
                let mut d = data.clone();
                d.extend_from_slice(tail);
                let want = one_at_a_time(&d, 1 << 20);
                assert!(want.iter().filter(|r| r.is_err()).count() > 10);
                assert_eq!(in_line_mode(&d, 1 << 20), want, "{frame:?} + {tail:?}");
                // A limit some lines exceed.
                assert_eq!(in_line_mode(&d, 300), one_at_a_time(&d, 300));
            }
        }
    }

    #[test]
    fn a_broken_line_does_not_change_its_neighbours() {
        let good = br#"{"ts":60,"uid":"a","x":"y"}"#;
        for bad in [
            &br#"{"ts":60,"uid":"b","x":"open"#[..],
            br#"{"ts":60,"uid":"b","x":"\q"}"#,
            b"{\"ts\":60,\"uid\":\"b\",\"x\":\"\x01\"}",
            b"{\"ts\":60,\"uid\":\"b\",\"x\":\"\xff\"}",
            br#"{"ts":60,"uid":"b"} \"#,
            br#"{"ts":60,"uid":"b","x":"a\"#,
            br#""{\"ts\":60,\"uid\":\"wrapped\"}""#,
            b"",
            b"   \r",
        ] {
            let mut data = Vec::new();
            for i in 0..3000 {
                data.extend_from_slice(if i % 1000 == 500 { bad } else { good });
                data.push(b'\n');
            }
            let want = one_at_a_time(&data, 1 << 20);
            assert_eq!(
                in_line_mode(&data, 1 << 20),
                want,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn lines_longer_than_a_batch() {
        let mut data = br#"{"ts":1,"uid":"a"}"#.to_vec();
        data.push(b'\n');
        let long = format!(r#"{{"ts":2,"uid":"b","pad":"{}"}}"#, "x".repeat(3 * BATCH));
        data.extend_from_slice(long.as_bytes());
        data.extend_from_slice(b"\n{\"ts\":3,\"uid\":\"c\"}");
        assert_eq!(in_line_mode(&data, 1 << 20), one_at_a_time(&data, 1 << 20));
        assert_eq!(in_line_mode(&data, 1000), one_at_a_time(&data, 1000));
        assert_eq!(in_line_mode(&data, 1000)[1], Err(Reject::TooLarge));
    }

    #[test]
    fn agrees_with_one_line_at_a_time_on_mutated_streams() {
        let opts = GenerateOptions {
            events: 40,
            frame: FrameKind::Realistic,
            invalid_share: 0.0,
            ..GenerateOptions::default()
        };
        let mut data = Vec::new();
        generate(&opts, &[crate::window::size::Grid::fixed(60)], &mut data).unwrap();
        let specials = b"\n\"\\{}[]:, u0\x01\xff\xc3\r";
        crate::decode::tests::mutations(&data, specials, 4, 300, |m| {
            assert_eq!(in_line_mode(&m, 1 << 20), one_at_a_time(&m, 1 << 20));
        });
    }
}
