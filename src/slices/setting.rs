//! `DISTINCTLY_SLICES`: `<size>:<retention>,…`, e.g. `1m:48h,1h:35d,1d:400d`.

use crate::window::size::WindowSize;
use std::fmt;

/// Minute slices for two days, hour slices for 35 days, day slices for 400.
pub const DEFAULT_SLICES: &str = "1m:48h,1h:35d,1d:400d";

/// Most resolutions: every event is counted once per resolution.
const MAX_RESOLUTIONS: usize = 6;
/// Most slices one resolution may hold: each costs at least a counter.
const MAX_SLICES_PER_RESOLUTION: u64 = 100_000;
/// Longest retention: ten years.
const MAX_RETENTION_SECONDS: u64 = 3653 * 86_400;

/// One resolution: slices of `size`, held for `retention` seconds after
/// the watermark passes their end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    pub size: WindowSize,
    pub retention: u64,
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.size, Span(self.retention))
    }
}

/// A span of seconds, written in its largest whole unit.
struct Span(u64);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s >= n && s % n == 0 {
                return write!(f, "{}{unit}", s / n);
            }
        }
        write!(f, "{s}s")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSlices {
    #[error("{entry:?}: expected <size>:<retention> such as 1m:48h")]
    Form { entry: String },
    #[error("{entry:?}: {reason}")]
    Size { entry: String, reason: String },
    #[error("{entry:?}: retention {retention:?} is not a span such as 90m, 48h or 35d")]
    Retention { entry: String, retention: String },
    #[error("{entry:?}: retention must be at least the size and at most 3653d")]
    RetentionBounds { entry: String },
    #[error(
        "{entry:?}: {slices} slices held at once; at most {MAX_SLICES_PER_RESOLUTION} per \
         resolution (a coarser size or a shorter retention)"
    )]
    TooMany { entry: String, slices: u64 },
    #[error("sizes must grow from entry to entry, finest first: {0:?} after a size as long")]
    Order(String),
    #[error("at most {MAX_RESOLUTIONS} resolutions")]
    TooManyResolutions,
}

/// The resolutions of a `DISTINCTLY_SLICES` value, finest first; empty for
/// an empty value (no slices: range queries are off).
pub fn parse_slices(setting: &str) -> Result<Vec<Resolution>, BadSlices> {
    let mut out: Vec<Resolution> = Vec::new();
    for entry in setting.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let form = || BadSlices::Form {
            entry: entry.to_string(),
        };
        let (size, retention) = entry.split_once(':').ok_or_else(form)?;
        let size: WindowSize = size.trim().parse().map_err(|e| BadSlices::Size {
            entry: entry.to_string(),
            reason: format!("{e}"),
        })?;
        let retention = parse_span(retention.trim()).ok_or_else(|| BadSlices::Retention {
            entry: entry.to_string(),
            retention: retention.trim().to_string(),
        })?;
        let nominal = size.nominal_seconds();
        if retention < nominal || retention > MAX_RETENTION_SECONDS {
            return Err(BadSlices::RetentionBounds {
                entry: entry.to_string(),
            });
        }
        let slices = retention / nominal + 2;
        if slices > MAX_SLICES_PER_RESOLUTION {
            return Err(BadSlices::TooMany {
                entry: entry.to_string(),
                slices,
            });
        }
        if out
            .last()
            .is_some_and(|last| last.size.nominal_seconds() >= nominal)
        {
            return Err(BadSlices::Order(entry.to_string()));
        }
        out.push(Resolution { size, retention });
    }
    if out.len() > MAX_RESOLUTIONS {
        return Err(BadSlices::TooManyResolutions);
    }
    Ok(out)
}

/// `<n><unit>` with unit `s`, `m`, `h`, `d` or `w`.
fn parse_span(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(unit).filter(|&v| v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_and_its_display() {
        let r = parse_slices(DEFAULT_SLICES).unwrap();
        let shown: Vec<String> = r.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["1m:2d", "1h:35d", "1d:400d"]);
        assert_eq!(r[0].retention, 48 * 3600);
        assert_eq!(r[2].size, WindowSize::Days(1));
        assert!(parse_slices("").unwrap().is_empty());
        assert!(parse_slices(" , ").unwrap().is_empty());
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let err = |s: &str| parse_slices(s).unwrap_err().to_string();
        assert!(err("1m").contains("expected <size>:<retention>"));
        assert!(err("7x:1d").contains("\"7x:1d\""));
        assert!(err("1m:forever").contains("not a span"));
        assert!(err("1h:30m").contains("at least the size"));
        assert!(err("1m:20000d").contains("at most 3653d"));
        assert!(err("1s:400d").contains("slices held at once"));
        assert!(err("1h:1d,1m:1d").contains("finest first"));
        assert!(err("1m:1d,60s:1d").contains("finest first"));
        assert!(err("1m:0s").contains("not a span"));
    }
}
