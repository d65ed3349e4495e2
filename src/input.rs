//! JSON-lines input: files, stdin, gzip; split into lines in large batches.
//!
//! A plain file is memory-mapped and split in place: no read syscalls, no
//! copy (the copy alone was ~15 % of `count`'s time on 2 KB frames). Stdin
//! and gzip are read in 4 MiB blocks. Either way lines are found with
//! `memchr`, so a line costs no syscall and no allocation. A line longer than
//! `max_message_bytes` is reported once as too large and skipped up to its
//! newline without being buffered: a runaway line cannot exhaust memory.
//!
//! A mapped file must not be truncated while it is being counted (the
//! process would get SIGBUS); appending to it is harmless. What has been
//! read is given back as reading goes ([`release_read`]): the pages stay in
//! the kernel's page cache, but leave the process's resident set, so the
//! memory of `count` does not grow with the size of the file.
//!
//! Stdin and other streams (pipes, FIFOs) wait for data through
//! [`Stop::wait_readable`], so a signal ends a read that would block. A read
//! error part-way (a gzip stream cut short or followed by garbage) first
//! delivers every complete line read before it, then reports the error.

use crate::stop::Stop;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsFd;
use std::path::Path;

const BLOCK: usize = 4 << 20;

/// One input line, without its `\n`.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Message(&'a [u8]),
    /// Longer than the limit; its bytes were skipped.
    TooLarge,
}

/// An opened input.
pub enum Source {
    /// A plain file, mapped; `pos` is the start of the next batch.
    Mapped {
        map: memmap2::Mmap,
        pos: usize,
        /// Bytes before this were given back ([`release_read`]).
        released: usize,
    },
    Stream(LineReader<Box<dyn Read + Send>>),
}

impl Source {
    /// Opens `path` (`-` is stdin), mapping plain non-empty files. Reads
    /// of streams give up with [`crate::stop::Stopped`] once `stop` is
    /// requested.
    pub fn open(path: &str, max_line: usize, stop: &Stop) -> io::Result<Source> {
        let file = if path == "-" {
            File::from(io::stdin().as_fd().try_clone_to_owned()?)
        } else {
            File::open(Path::new(path))?
        };
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            ));
        }
        if meta.is_file() {
            if meta.len() > 0 {
                // SAFETY: the map is only read; see the module docs on
                // concurrent truncation.
                let map = unsafe { memmap2::Mmap::map(&file)? };
                if !map.starts_with(&GZIP_MAGIC) {
                    let _ = map.advise(memmap2::Advice::Sequential);
                    return Ok(Source::Mapped {
                        map,
                        pos: 0,
                        released: 0,
                    });
                }
            }
            return Ok(Source::Stream(LineReader::new(
                decompressed(file)?,
                max_line,
            )));
        }
        // A pipe, FIFO or terminal: wait for data where a signal can wake us.
        let stream = Interruptible {
            file,
            stop: stop.clone(),
        };
        Ok(Source::Stream(LineReader::new(
            decompressed(stream)?,
            max_line,
        )))
    }

    /// Hands every line of the next batch to `f`; `false` once exhausted.
    pub fn next_batch(&mut self, max_line: usize, mut f: impl FnMut(Line<'_>)) -> io::Result<bool> {
        match self {
            Source::Stream(reader) => reader.next_batch(f),
            Source::Mapped { map, pos, released } => {
                let data = &map[..];
                if *pos >= data.len() {
                    return Ok(false);
                }
                let limit = (*pos + BLOCK).min(data.len());
                // End the batch after a newline: the last one before the
                // limit, or the first one after it for a huge line.
                let end = match memchr::memrchr(b'\n', &data[*pos..limit]) {
                    Some(i) if limit < data.len() => *pos + i + 1,
                    _ if limit == data.len() => data.len(),
                    _ => {
                        memchr::memchr(b'\n', &data[limit..]).map_or(data.len(), |i| limit + i + 1)
                    }
                };
                let mut start = *pos;
                let mut skipping = false;
                for nl in memchr::memchr_iter(b'\n', &data[*pos..end]) {
                    let nl = *pos + nl;
                    deliver(&data[start..nl], max_line, &mut skipping, &mut f);
                    start = nl + 1;
                }
                if start < end {
                    deliver(&data[start..end], max_line, &mut skipping, &mut f);
                }
                *pos = end;
                release_read(map, released, end);
                Ok(true)
            }
        }
    }

    /// Bytes consumed so far (decompressed for gzip).
    pub fn bytes_read(&self) -> u64 {
        match self {
            Source::Stream(reader) => reader.bytes_read(),
            Source::Mapped { pos, .. } => *pos as u64,
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Gives back the pages of `map` before `upto` (those after `*released`),
/// once nothing refers to them any more: every line in them was handed out
/// and dealt with. Only whole pages go; the one `upto` falls in stays.
/// Failing is harmless (the pages just stay resident), so errors are
/// ignored.
pub fn release_read(map: &memmap2::Mmap, released: &mut usize, upto: usize) {
    let page = page_size();
    let end = upto.min(map.len()) / page * page;
    if end <= *released {
        return;
    }
    // SAFETY: the map is private and read-only and is never written, so
    // discarding its pages loses nothing: a later access would read them
    // from the file again. The range lies inside the map (`end` is at most
    // its length, `*released` is below `end`).
    let _ = unsafe {
        map.unchecked_advise_range(
            memmap2::UncheckedAdvice::DontNeed,
            *released,
            end - *released,
        )
    };
    *released = end;
}

fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no memory arguments.
    *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    })
}

/// A byte stream, gunzipped when it starts with gzip's magic bytes, so
/// `.gz` files and gzipped stdin both work.
fn decompressed(raw: impl Read + Send + 'static) -> io::Result<Box<dyn Read + Send>> {
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    let magic = buffered.fill_buf()?;
    if magic.starts_with(&GZIP_MAGIC) {
        Ok(Box::new(Gunzip(MultiGzDecoder::new(buffered))))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Gzip decompression whose errors say that they are about the gzip stream
/// (flate2's own texts, such as "unexpected end of file", do not).
struct Gunzip<R>(MultiGzDecoder<R>);

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if crate::stop::is_stopped(&e) || e.kind() == io::ErrorKind::Interrupted {
                e
            } else {
                io::Error::new(e.kind(), format!("corrupt gzip stream: {e}"))
            }
        })
    }
}

/// A stream whose reads wait in [`Stop::wait_readable`].
struct Interruptible {
    file: File,
    stop: Stop,
}

impl Read for Interruptible {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stop.wait_readable(self.file.as_fd())?;
        self.file.read(buf)
    }
}

/// Splits a byte stream into lines, block by block.
pub struct LineReader<R> {
    inner: R,
    /// Zeroed once and reused: `buf[..len]` holds data (a carried-over
    /// incomplete line at the start of a batch).
    buf: Vec<u8>,
    len: usize,
    max_line: usize,
    /// Bytes read so far (for throughput figures).
    bytes: u64,
    /// Inside an over-long line: drop bytes up to the next newline.
    skipping: bool,
    eof: bool,
    /// A read error, reported once the lines read before it are delivered.
    failed: Option<io::Error>,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R, max_line: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            len: 0,
            max_line,
            bytes: 0,
            skipping: false,
            eof: false,
            failed: None,
        }
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Reads the next block and hands every complete line in it to `f`.
    /// Returns `false` once the input is exhausted (the last line, even
    /// without a trailing newline, has then been delivered). After a read
    /// error the complete lines read before it are delivered first; the
    /// error comes with the next call, and the incomplete line it cut is
    /// dropped.
    pub fn next_batch(&mut self, mut f: impl FnMut(Line<'_>)) -> io::Result<bool> {
        if let Some(e) = self.failed.take() {
            self.eof = true;
            return Err(e);
        }
        if self.eof {
            return Ok(false);
        }
        // Top the buffer up to a full block after any carried-over tail
        // (grown, and zeroed, only when a longer tail needs it).
        let tail = self.len;
        let end = tail + BLOCK;
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        let mut filled = tail;
        let mut has_line = false;
        while filled < end {
            let wanted = end - filled;
            match self.inner.read(&mut self.buf[filled..end]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    has_line =
                        has_line || memchr::memchr(b'\n', &self.buf[filled..filled + n]).is_some();
                    filled += n;
                    // A short read: the source (a pipe, a socket) has no
                    // more ready now. With a complete line in hand, deliver
                    // it instead of waiting: a slow stream is counted (and
                    // its windows and metrics published) as it arrives.
                    if n < wanted && has_line {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed = Some(e);
                    break;
                }
            }
            if filled - tail >= BLOCK / 2 {
                break; // enough for one batch
            }
        }
        self.bytes += (filled - tail) as u64;
        let data = &self.buf[..filled];

        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            deliver(&data[start..nl], self.max_line, &mut self.skipping, &mut f);
            start = nl + 1;
        }
        if self.failed.is_some() {
            self.len = 0;
            return Ok(true);
        }
        if self.eof {
            if start < filled {
                deliver(&data[start..], self.max_line, &mut self.skipping, &mut f);
            }
            self.len = 0;
            return Ok(true);
        }
        // Carry the incomplete last line over, unless it is already too long.
        if filled - start > self.max_line {
            if !self.skipping {
                f(Line::TooLarge);
            }
            self.skipping = true;
            self.len = 0;
        } else {
            self.buf.copy_within(start..filled, 0);
            self.len = filled - start;
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
pub(crate) mod tests {
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

    /// A pipe whose writer is slow: each read returns what one write put in.
    struct Trickle(Vec<&'static [u8]>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let chunk = self.0.remove(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn a_slow_stream_is_delivered_as_its_lines_arrive() {
        let mut r = LineReader::new(Trickle(vec![b"{\"a\"", b":1}\n{\"b", b"\":2}\n"]), 1024);
        let mut batches = Vec::new();
        loop {
            let mut batch = Vec::new();
            let more = r
                .next_batch(|l| {
                    if let Line::Message(m) = l {
                        batch.push(m.to_vec());
                    }
                })
                .unwrap();
            batches.push(batch);
            if !more {
                break;
            }
        }
        // The first complete line comes out without waiting for the rest
        // (a short read with a line in hand ends the batch); the partial
        // second line is carried over.
        assert_eq!(batches[0], vec![b"{\"a\":1}".to_vec()]);
        assert_eq!(batches[1], vec![b"{\"b\":2}".to_vec()]);
        assert_eq!(r.bytes_read(), 16);
    }

    /// Data, then a read error (a corrupt gzip stream, say).
    struct Faulty(Option<&'static [u8]>);

    impl Read for Faulty {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.take() {
                Some(d) => {
                    buf[..d.len()].copy_from_slice(d);
                    Ok(d.len())
                }
                None => Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt")),
            }
        }
    }

    #[test]
    fn lines_before_a_read_error_are_delivered_then_the_error() {
        let mut r = LineReader::new(Faulty(Some(b"one\ntwo\nthr")), 100);
        let mut got = Vec::new();
        let e = loop {
            let batch = r.next_batch(|l| {
                if let Line::Message(m) = l {
                    got.push(m.to_vec());
                }
            });
            match batch {
                Ok(true) => {}
                Ok(false) => panic!("the error must be reported"),
                Err(e) => break e,
            }
        };
        // The cut line ("thr") is not a message.
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(!r.next_batch(|_| panic!("ended")).unwrap());
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
    fn mapped_files_split_like_streams() {
        let dir = std::env::temp_dir().join(format!("distinctly-map-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut input = Vec::new();
        for i in 0..(BLOCK / 900) {
            input.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, 700 + i % 400));
            input.push(b'\n');
        }
        input.extend(std::iter::repeat_n(b'x', 2 * BLOCK + 17)); // too large
        input.extend(b"\nlast");
        let path = dir.join("in.jsonl");
        std::fs::write(&path, &input).unwrap();
        let mut src = Source::open(path.to_str().unwrap(), 1100, &Stop::never()).unwrap();
        assert!(matches!(src, Source::Mapped { .. }));
        let mut got = Vec::new();
        while src
            .next_batch(1100, |l| {
                got.push(match l {
                    Line::Message(m) => Ok(m.to_vec()),
                    Line::TooLarge => Err(()),
                })
            })
            .unwrap()
        {}
        assert_eq!(src.bytes_read(), input.len() as u64);
        assert_eq!(got, lines(&input, 1100));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Resident bytes of the mapping that contains `addr`, from
    /// /proc/self/smaps.
    #[cfg(target_os = "linux")]
    pub(crate) fn mapping_rss(addr: usize) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = (lo..hi).contains(&addr);
                        continue;
                    }
                }
            }
            if let Some(kb) = line.strip_prefix("Rss:").filter(|_| inside) {
                return kb
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<usize>()
                    .unwrap()
                    * 1024;
            }
        }
        panic!("no mapping at {addr:#x}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn what_was_read_leaves_the_resident_set() {
        let dir = std::env::temp_dir().join(format!("distinctly-rss-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.jsonl");
        let line = [b"x".repeat(999), b"\n".to_vec()].concat();
        std::fs::write(&path, line.repeat(8 * BLOCK / line.len())).unwrap();
        let mut src = Source::open(path.to_str().unwrap(), 2000, &Stop::never()).unwrap();
        let Source::Mapped { map, .. } = &src else {
            panic!("not mapped");
        };
        let addr = map.as_ptr() as usize;
        let mut lines = 0;
        let mut most = 0;
        while src
            .next_batch(2000, |l| {
                assert_eq!(l, Line::Message(&line[..999]));
                lines += 1;
            })
            .unwrap()
        {
            most = most.max(mapping_rss(addr));
        }
        assert_eq!(lines, 8 * BLOCK / line.len());
        // Every batch was read (a block is 4 MiB), yet at most one block and
        // a page stay resident between batches.
        assert!(most <= BLOCK + 4096, "{most} bytes of the map resident");
        std::fs::remove_dir_all(dir).unwrap();
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
        let mut r = Source::open(path.to_str().unwrap(), 100, &Stop::never()).unwrap();
        assert!(matches!(r, Source::Stream(_)));
        let mut got = Vec::new();
        while r
            .next_batch(100, |l| {
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
