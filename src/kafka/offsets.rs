//! Commit metadata: what a restart needs besides the offset.
//!
//! - Input partitions (the splitter's commits): `distinctly/1 st=<unix
//!   seconds>`, the partition's stream time (highest plausible event time)
//!   when the offset was committed, then ` groups=<16 hex digits>` when the
//!   events were split grouped: the fingerprint of `DISTINCTLY_GROUP_BY`,
//!   so that an instance with another setting refuses the partition before
//!   it writes a batch the counters could not read.
//! - Shard partitions (the counter's commits): `distinctly/2
//!   <p>=<st>[i]@<position>,...`, every input partition as the shard had it
//!   from the markers: stream time (`-`: none yet), idle (`i`), and the
//!   input position of its latest marker.
//!
//! Anything else (another tool's metadata, an older format) is ignored: the
//! partition then starts without restored stream times.

const INPUT: &str = "distinctly/1";
const SOURCES: &str = "distinctly/2 ";

/// What the splitter's commit of an input partition says besides the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputMark {
    pub stream_time: Option<u64>,
    /// `Groupings::fingerprint` of the splitter (0: ungrouped).
    pub groupings: u64,
}

/// Metadata for an input partition's commit.
pub fn encode(mark: InputMark) -> String {
    let mut out = INPUT.to_string();
    if let Some(t) = mark.stream_time {
        out.push_str(&format!(" st={t}"));
    }
    if mark.groupings != 0 {
        out.push_str(&format!(" groups={:016x}", mark.groupings));
    }
    out
}

/// What [`encode`] stored; `None` for another tool's metadata (or none).
/// A field that does not parse is taken as absent.
pub fn decode(metadata: &str) -> Option<InputMark> {
    let rest = metadata.strip_prefix(INPUT)?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let mut mark = InputMark::default();
    for field in rest.split(' ') {
        if let Some(t) = field.strip_prefix("st=") {
            mark.stream_time = t.parse().ok();
        } else if let Some(g) = field.strip_prefix("groups=") {
            mark.groupings = u64::from_str_radix(g, 16).unwrap_or(0);
        }
    }
    Some(mark)
}

/// What a shard knows of one input partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceTime {
    pub partition: i32,
    pub stream_time: Option<u64>,
    pub idle: bool,
    /// The input offset the partition's latest marker gave (-1: none).
    pub position: i64,
}

/// Metadata for a shard partition: every input partition's stream time.
pub fn encode_sources(sources: impl IntoIterator<Item = SourceTime>) -> String {
    let mut out = SOURCES.to_string();
    for (i, s) in sources.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&s.partition.to_string());
        out.push('=');
        match s.stream_time {
            Some(t) => out.push_str(&t.to_string()),
            None => out.push('-'),
        }
        if s.idle {
            out.push('i');
        }
        out.push('@');
        out.push_str(&s.position.to_string());
    }
    out
}

/// The input partitions' times stored by [`encode_sources`] (empty for
/// anything else).
pub fn decode_sources(metadata: &str) -> Vec<SourceTime> {
    let Some(list) = metadata.strip_prefix(SOURCES) else {
        return Vec::new();
    };
    let parse = |entry: &str| -> Option<SourceTime> {
        let (p, rest) = entry.split_once('=')?;
        let (rest, position) = rest.split_once('@')?;
        let (t, idle) = match rest.strip_suffix('i') {
            Some(t) => (t, true),
            None => (rest, false),
        };
        Some(SourceTime {
            partition: p.parse().ok()?,
            stream_time: if t == "-" {
                None
            } else {
                Some(t.parse().ok()?)
            },
            idle,
            position: position.parse().ok()?,
        })
    };
    list.split(',')
        .map(parse)
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_metadata() {
        let mark = |stream_time, groupings| InputMark {
            stream_time,
            groupings,
        };
        for m in [
            mark(Some(1_767_225_600), 0),
            mark(None, 0),
            mark(Some(7), 0xdead_beef_0000_0001),
            mark(None, u64::MAX),
        ] {
            assert_eq!(decode(&encode(m)), Some(m), "{}", encode(m));
        }
        // Ungrouped metadata is what earlier releases wrote and read.
        assert_eq!(encode(mark(Some(5), 0)), "distinctly/1 st=5");
        assert_eq!(decode(""), None);
        assert_eq!(decode("some other tool"), None);
        assert_eq!(decode("distinctly/10 st=4"), None);
        assert_eq!(decode("distinctly/1 st=x"), Some(mark(None, 0)));
    }

    #[test]
    fn source_times_round_trip() {
        let s = |partition, stream_time, idle, position| SourceTime {
            partition,
            stream_time,
            idle,
            position,
        };
        let sources = vec![
            s(0, Some(1_767_225_600), false, 12),
            s(1, None, true, -1),
            s(7, Some(3), true, 0),
            s(2, None, false, 5),
        ];
        let m = encode_sources(sources.clone());
        assert_eq!(m, "distinctly/2 0=1767225600@12,1=-i@-1,7=3i@0,2=-@5");
        assert_eq!(decode_sources(&m), sources);
        assert!(decode_sources(&encode(InputMark::default())).is_empty());
        assert!(decode_sources("distinctly/2 0=x").is_empty());
        assert!(decode_sources("").is_empty());
    }
}
