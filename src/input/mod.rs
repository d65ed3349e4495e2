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

mod stream;

pub use stream::LineReader;

use crate::stop::Stop;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use stream::{decompressed, deliver, interruptible};

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
        Ok(Source::Stream(LineReader::new(
            interruptible(file, stop)?,
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

#[cfg(test)]
pub(crate) mod tests;
