//! Commit metadata: what a restart needs besides the offset.
//!
//! Format: `distinctly/1 st=<unix seconds>`, the partition's stream time
//! (highest plausible event time) when the offset was committed. Anything
//! else (another tool's metadata, an older format) is ignored: the partition
//! then starts without a restored stream time.

const PREFIX: &str = "distinctly/1 st=";

/// Metadata for a partition whose stream time is `stream_time`.
pub fn encode(stream_time: Option<u64>) -> String {
    match stream_time {
        Some(t) => format!("{PREFIX}{t}"),
        None => "distinctly/1".to_string(),
    }
}

/// The stream time stored by [`encode`], if any.
pub fn decode(metadata: &str) -> Option<u64> {
    metadata.strip_prefix(PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_metadata() {
        assert_eq!(decode(&encode(Some(1_767_225_600))), Some(1_767_225_600));
        assert_eq!(decode(&encode(None)), None);
        assert_eq!(decode(""), None);
        assert_eq!(decode("some other tool"), None);
        assert_eq!(decode("distinctly/1 st=x"), None);
    }
}
