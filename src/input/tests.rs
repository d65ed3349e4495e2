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
