//! Logs: `tracing` events on stderr, filtered by `DISTINCTLY_LOG` (the
//! `RUST_LOG` directive syntax: `info`, `debug`, `distinctly::kafka=debug`;
//! unset: `info` for the service, `warn` for the commands people run by
//! hand, whose stderr carries their summary), written as text or as one JSON
//! object per line (`DISTINCTLY_LOG_FORMAT`).
//!
//! JSON lines carry `timestamp`, `level`, `target`, `message` and the
//! event's own fields at the top level, for log shippers. Writing never
//! panics: a log line that cannot be written (`2>/dev/full`) is dropped.
//! What a command prints as its result (`count`'s records and summary) is
//! not a log and does not go through here.

use crate::config::{from_prefixed, invalid, ConfigError};
use serde::Deserialize;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-01-01T00:00:00.000000Z  INFO distinctly::kafka: message key=value`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The log settings (field `foo` is `DISTINCTLY_FOO`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `DISTINCTLY_LOG`: filter directives, `RUST_LOG` syntax (unset: the
    /// command's own level, see [`init`]).
    pub log: Option<String>,
    /// `DISTINCTLY_LOG_FORMAT`: `text` or `json` (see [`LogConfig::format`]).
    pub log_format: Option<String>,
}

/// The level when `DISTINCTLY_LOG` is unset: `run` reports its life at
/// `info`; `count`, `generate` and `bench` only warn (their stderr is the
/// summary or the progress).
pub fn default_level(service: bool) -> &'static str {
    if service {
        "info"
    } else {
        "warn"
    }
}

impl LogConfig {
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        from_prefixed("DISTINCTLY_", vars)
    }

    /// The format asked for (text when unset).
    pub fn format(&self) -> Result<LogFormat, ConfigError> {
        match self.log_format.as_deref() {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(invalid(
                "DISTINCTLY_LOG_FORMAT",
                format!("{other:?} is not text or json"),
            )),
        }
    }

    fn filter(&self, default: &str) -> Result<EnvFilter, ConfigError> {
        let directives = self.log.as_deref().unwrap_or(default);
        EnvFilter::builder()
            .parse(directives)
            .map_err(|e| invalid("DISTINCTLY_LOG", format!("{directives:?}: {e}")))
    }
}

/// Installs the global subscriber, filtering at `default` unless
/// `DISTINCTLY_LOG` says otherwise. Call once, before anything logs.
pub fn init(cfg: &LogConfig, default: &str) -> Result<(), ConfigError> {
    let filter = cfg.filter(default)?;
    let format = cfg.format()?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Reporting a failed write would itself write to stderr (and
        // `eprintln!` panics when that fails too).
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    // Already installed (tests call this more than once): keep the first.
    let _ = installed;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vars;

    #[test]
    fn settings_and_their_errors() {
        let c = LogConfig::from_vars(vars(&[])).unwrap();
        assert_eq!(c, LogConfig::default());
        let c = LogConfig::from_vars(vars(&[
            ("DISTINCTLY_LOG", "warn,distinctly::kafka=debug"),
            ("DISTINCTLY_LOG_FORMAT", "json"),
        ]))
        .unwrap();
        assert_eq!(c.format().unwrap(), LogFormat::Json);
        c.filter("info").unwrap();
        let e = LogConfig::from_vars(vars(&[("DISTINCTLY_LOG_FORMAT", "xml")]))
            .unwrap()
            .format()
            .unwrap_err();
        assert!(e.to_string().starts_with("DISTINCTLY_LOG_FORMAT: "), "{e}");
        let c = LogConfig::from_vars(vars(&[("DISTINCTLY_LOG", "info,=[")])).unwrap();
        let e = c.filter("info").unwrap_err();
        assert!(e.to_string().starts_with("DISTINCTLY_LOG: "), "{e}");
    }
}
