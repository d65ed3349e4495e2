//! Streams (stdin, pipes, gzip): read in blocks and split into lines, the
//! incomplete last line of a block carried over to the next.

use super::{Line, BLOCK, GZIP_MAGIC};
use crate::stop::Stop;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsFd;

/// A byte stream, gunzipped when it starts with gzip's magic bytes, so
/// `.gz` files and gzipped stdin both work.
pub(super) fn decompressed(raw: impl Read + Send + 'static) -> io::Result<Box<dyn Read + Send>> {
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    if is_gzip(&mut buffered)? {
        Ok(Box::new(Gunzip(MultiGzDecoder::new(buffered))))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Whether the stream starts with gzip's magic bytes (waits for its first
/// bytes).
fn is_gzip(buffered: &mut BufReader<impl Read>) -> io::Result<bool> {
    Ok(buffered.fill_buf()?.starts_with(&GZIP_MAGIC))
}

/// A pipe or terminal, read through [`Interruptible`]; a plain one pauses
/// as `stop` says ([`Stop::pause`]), gzip never (its decoder is not told
/// of a read that would block).
pub(super) fn interruptible(file: File, stop: &Stop) -> io::Result<Box<dyn Read + Send>> {
    let stream = Interruptible {
        file,
        stop: stop.clone(),
        pause: None,
    };
    let mut buffered = BufReader::with_capacity(1 << 16, stream);
    if is_gzip(&mut buffered)? {
        return Ok(Box::new(Gunzip(MultiGzDecoder::new(buffered))));
    }
    buffered.get_mut().pause = stop.pause();
    Ok(Box::new(buffered))
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

/// A stream whose reads wait in [`Stop::wait_readable`]; with a pause, a
/// read that waited that long without data is `WouldBlock`.
pub(super) struct Interruptible {
    file: File,
    stop: Stop,
    pause: Option<std::time::Duration>,
}

impl Read for Interruptible {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.stop.wait_readable(self.file.as_fd(), self.pause)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
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
                // A paused pipe: hand over what is here, come back later.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
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
pub(super) fn deliver(
    line: &[u8],
    max_line: usize,
    skipping: &mut bool,
    f: &mut impl FnMut(Line<'_>),
) {
    if *skipping {
        // The remainder of an over-long line, already reported.
        *skipping = false;
    } else if line.len() > max_line {
        f(Line::TooLarge);
    } else {
        f(Line::Message(line));
    }
}
