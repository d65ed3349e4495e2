//! JSON-lines input: files, stdin, gzip; split into lines in large batches.
//!
//! Input is read in 4 MiB blocks and split with `memchr`, so a line costs no
//! syscall and no allocation. A line that does not fit in
//! `max_message_bytes` is reported once as too large and skipped up to its
//! newline without being buffered: a runaway line cannot exhaust memory.

use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

const BLOCK: usize = 4 << 20;

/// One input line, without its `\n`.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Message(&'a [u8]),
    /// Longer than the limit; its bytes were skipped.
    TooLarge,
}

/// Opens `path` (`-` is stdin); gzip is recognized by its magic bytes, so
/// `.gz` files and gzipped stdin both work.
pub fn open(path: &str) -> io::Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = if path == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(
            File::open(Path::new(path))
                .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?,
        )
    };
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    let magic = buffered.fill_buf()?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(MultiGzDecoder::new(buffered)))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Splits a byte stream into lines, block by block.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    max_line: usize,
    /// Bytes read so far (for throughput figures).
    bytes: u64,
    /// Inside an over-long line: drop bytes up to the next newline.
    skipping: bool,
    eof: bool,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R, max_line: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::with_capacity(BLOCK),
            max_line,
            bytes: 0,
            skipping: false,
            eof: false,
        }
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Reads the next block and hands every complete line in it to `f`.
    /// Returns `false` once the input is exhausted (the last line, even
    /// without a trailing newline, has then been delivered).
    pub fn next_batch(&mut self, mut f: impl FnMut(Line<'_>)) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        // Top the buffer up to a full block after any carried-over tail.
        let tail = self.buf.len();
        self.buf.resize(tail + BLOCK, 0);
        let mut filled = tail;
        while filled < self.buf.len() {
            match self.inner.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if filled - tail >= BLOCK / 2 {
                break; // enough for one batch; don't wait on slow pipes
            }
        }
        self.bytes += (filled - tail) as u64;
        self.buf.truncate(filled);

        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &self.buf) {
            deliver(
                &self.buf[start..nl],
                self.max_line,
                &mut self.skipping,
                &mut f,
            );
            start = nl + 1;
        }
        if self.eof {
            if start < self.buf.len() {
                deliver(
                    &self.buf[start..],
                    self.max_line,
                    &mut self.skipping,
                    &mut f,
                );
            }
            self.buf.clear();
            return Ok(true);
        }
        // Carry the incomplete last line over, unless it is already too long.
        if self.buf.len() - start > self.max_line {
            if !self.skipping {
                f(Line::TooLarge);
            }
            self.skipping = true;
            self.buf.clear();
        } else {
            self.buf.drain(..start);
        }
        Ok(true)
    }
}

/// Hands one complete line to `f`, unless it ends an over-long line.
#[inline]
fn deliver(line: &[u8], max_line: usize, skipping: &mut bool, f: &mut impl FnMut(Line<'_>)) {
    if *skipping {
        // The remainder of an over-long line, already reported.
        *skipping = false;
    } else if line.len() > max_line {
        f(Line::TooLarge);
    } else {
        f(Line::Message(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max_line: usize) -> Vec<Result<Vec<u8>, ()>> {
        let mut r = LineReader::new(input, max_line);
        let mut v = Vec::new();
        while r
            .next_batch(|l| {
                v.push(match l {
                    Line::Message(m) => Ok(m.to_vec()),
                    Line::TooLarge => Err(()),
                })
            })
            .unwrap()
        {}
        assert_eq!(r.bytes_read(), input.len() as u64);
        v
    }

    #[test]
    fn splits_lines_with_and_without_final_newline() {
        let want = vec![Ok(b"a".to_vec()), Ok(b"".to_vec()), Ok(b"bc\r".to_vec())];
        assert_eq!(lines(b"a\n\nbc\r\n", 100), want);
        assert_eq!(lines(b"a\n\nbc\r", 100), want);
        assert!(lines(b"", 100).is_empty());
    }

    #[test]
    fn over_long_lines_are_reported_once_and_skipped() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * BLOCK));
        input.extend(b"\nafter\n");
        input.extend(std::iter::repeat_n(b'y', 50));
        input.extend(b"\nlast");
        let got = lines(&input, 20);
        assert_eq!(
            got,
            vec![
                Ok(b"ok".to_vec()),
                Err(()),
                Ok(b"after".to_vec()),
                Err(()),
                Ok(b"last".to_vec())
            ]
        );
    }

    #[test]
    fn lines_spanning_blocks_are_reassembled() {
        let line = vec![b'z'; 1000];
        let mut input = Vec::new();
        for _ in 0..(3 * BLOCK / 1001) {
            input.extend(&line);
            input.push(b'\n');
        }
        let got = lines(&input, 2000);
        assert_eq!(got.len(), 3 * BLOCK / 1001);
        assert!(got.iter().all(|l| l.as_ref().unwrap() == &line));
    }

    #[test]
    fn gzip_is_detected_by_magic() {
        use flate2::{write::GzEncoder, Compression};
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("distinctly-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.jsonl.gz");
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(b"one\ntwo\n").unwrap();
        std::fs::write(&path, enc.finish().unwrap()).unwrap();
        let mut r = LineReader::new(open(path.to_str().unwrap()).unwrap(), 100);
        let mut got = Vec::new();
        while r
            .next_batch(|l| {
                if let Line::Message(m) = l {
                    got.push(m.to_vec())
                }
            })
            .unwrap()
        {}
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
