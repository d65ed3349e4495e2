//! Core settings: the `DISTINCTLY_*` environment variables, their defaults
//! (all in [`defaults`]), command-line overrides and cross-field validation.
//!
//! Loaded with `envy`; a malformed or inconsistent value stops start-up with
//! one line that names the variable and the expected form.

use crate::counter::{cpc, hll, CounterKind, BACKENDS};
use crate::window::WindowConfig;
use serde::Deserialize;

/// Every default, in one place.
pub mod defaults {
    pub const COUNTER: &str = "exact";
    pub const HLL_PRECISION: u8 = 14;
    /// lgK of `cpc` and `hll4`; why this value: README, Performance.
    pub const SKETCH_LGK: u8 = crate::counter::DEFAULT_SKETCH_LG_K;
    pub const WINDOW_SECONDS: u64 = 60;
    pub const ALLOWED_LATENESS_SECONDS: u64 = 5;
    pub const LATE_RETENTION_SECONDS: u64 = 600;
    pub const MAX_AHEAD_SECONDS: u64 = 300;
    pub const MAX_BEHIND_SECONDS: u64 = 86_400;
    pub const JUMP_CONFIRM_EVENTS: u64 = 16;
    pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
    /// `DISTINCTLY_METRICS_ADDR` when `run` is not told otherwise (all
    /// interfaces: a container's port must be reachable from Prometheus).
    pub const METRICS_ADDR: &str = "0.0.0.0:9464";

    // serde's `default = "..."` needs functions.
    pub(super) fn counter() -> String {
        COUNTER.to_string()
    }
    pub(super) fn hll_precision() -> u8 {
        HLL_PRECISION
    }
    pub(super) fn sketch_lgk() -> u8 {
        SKETCH_LGK
    }
    pub(super) fn window_seconds() -> u64 {
        WINDOW_SECONDS
    }
    pub(super) fn allowed_lateness_seconds() -> u64 {
        ALLOWED_LATENESS_SECONDS
    }
    pub(super) fn late_retention_seconds() -> u64 {
        LATE_RETENTION_SECONDS
    }
    pub(super) fn max_ahead_seconds() -> u64 {
        MAX_AHEAD_SECONDS
    }
    pub(super) fn max_behind_seconds() -> u64 {
        MAX_BEHIND_SECONDS
    }
    pub(super) fn jump_confirm_events() -> u64 {
        JUMP_CONFIRM_EVENTS
    }
    pub(super) fn max_message_bytes() -> usize {
        MAX_MESSAGE_BYTES
    }
}

/// Counting settings shared by `count` and `run`. Field `foo` is read from
/// `DISTINCTLY_FOO`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CoreConfig {
    /// `DISTINCTLY_COUNTER`: `exact` (default), `roaring`, `hll`, `cpc` or
    /// `hll4`.
    #[serde(default = "defaults::counter")]
    pub counter: String,
    /// `DISTINCTLY_HLL_PRECISION`: HyperLogLog++ precision, 4..=18 (default
    /// 14: 2^14 registers, ~0.81 % standard error). Only used by `hll`.
    #[serde(default = "defaults::hll_precision")]
    pub hll_precision: u8,
    /// `DISTINCTLY_SKETCH_LGK`: log2 of K for the DataSketches backends
    /// `cpc` and `hll4`, 4..=21 (2^lgK registers or rows). Only used by them.
    #[serde(default = "defaults::sketch_lgk")]
    pub sketch_lgk: u8,
    /// `DISTINCTLY_WINDOW_SECONDS`: tumbling window length (default 60).
    #[serde(default = "defaults::window_seconds")]
    pub window_seconds: u64,
    /// `DISTINCTLY_ALLOWED_LATENESS_SECONDS`: how far behind the highest event
    /// time the watermark trails (default 5: the source promises 99.9 % of
    /// events within 5 s).
    #[serde(default = "defaults::allowed_lateness_seconds")]
    pub allowed_lateness_seconds: u64,
    /// `DISTINCTLY_LATE_RETENTION_SECONDS`: how long after its close a window
    /// still accepts late events and is re-emitted with a correction
    /// (default 600).
    #[serde(default = "defaults::late_retention_seconds")]
    pub late_retention_seconds: u64,
    /// `DISTINCTLY_MAX_AHEAD_SECONDS`: how far ahead of the stream time an
    /// event may be before it is held as a possible bit flip (default 300).
    #[serde(default = "defaults::max_ahead_seconds")]
    pub max_ahead_seconds: u64,
    /// `DISTINCTLY_MAX_BEHIND_SECONDS`: events further behind the stream time
    /// are `ts_out_of_range` rather than late (default 86400; must be at least
    /// lateness + retention).
    #[serde(default = "defaults::max_behind_seconds")]
    pub max_behind_seconds: u64,
    /// `DISTINCTLY_JUMP_CONFIRM_EVENTS`: agreeing events needed before the
    /// stream time follows a jump ahead (default 16).
    #[serde(default = "defaults::jump_confirm_events")]
    pub jump_confirm_events: u64,
    /// `DISTINCTLY_MAX_MESSAGE_BYTES`: longer messages are rejected as
    /// `too_large` without being parsed (default 1048576).
    #[serde(default = "defaults::max_message_bytes")]
    pub max_message_bytes: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            counter: defaults::counter(),
            hll_precision: defaults::HLL_PRECISION,
            sketch_lgk: defaults::SKETCH_LGK,
            window_seconds: defaults::WINDOW_SECONDS,
            allowed_lateness_seconds: defaults::ALLOWED_LATENESS_SECONDS,
            late_retention_seconds: defaults::LATE_RETENTION_SECONDS,
            max_ahead_seconds: defaults::MAX_AHEAD_SECONDS,
            max_behind_seconds: defaults::MAX_BEHIND_SECONDS,
            jump_confirm_events: defaults::JUMP_CONFIRM_EVENTS,
            max_message_bytes: defaults::MAX_MESSAGE_BYTES,
        }
    }
}

/// Upper bound of `DISTINCTLY_MAX_MESSAGE_BYTES`: the parser indexes
/// messages with 32-bit positions, and nothing legitimate comes close.
pub const MAX_MESSAGE_BYTES_LIMIT: usize = 1 << 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var}: {reason}")]
    Invalid { var: &'static str, reason: String },
    /// A variable that could not be parsed; the message starts with its name.
    #[error("{0}")]
    Env(String),
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        reason: reason.into(),
    }
}

impl CoreConfig {
    /// Reads `DISTINCTLY_*` from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads `DISTINCTLY_*` from the given pairs (tests pass their own).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        from_prefixed("DISTINCTLY_", vars)
    }

    /// The counter kind these settings select.
    pub fn counter_kind(&self) -> Result<CounterKind, ConfigError> {
        if !(hll::MIN_PRECISION..=hll::MAX_PRECISION).contains(&self.hll_precision) {
            return Err(invalid(
                "DISTINCTLY_HLL_PRECISION",
                format!("{} is outside 4..=18", self.hll_precision),
            ));
        }
        if !(cpc::MIN_LG_K..=cpc::MAX_LG_K).contains(&self.sketch_lgk) {
            return Err(invalid(
                "DISTINCTLY_SKETCH_LGK",
                format!(
                    "{} is outside {}..={}",
                    self.sketch_lgk,
                    cpc::MIN_LG_K,
                    cpc::MAX_LG_K
                ),
            ));
        }
        CounterKind::from_backend(&self.counter, self.hll_precision, self.sketch_lgk).map_err(
            |_| {
                invalid(
                    "DISTINCTLY_COUNTER",
                    format!("{:?} is not one of {BACKENDS}", self.counter),
                )
            },
        )
    }

    /// Checks every field and their relations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.counter_kind()?;
        if self.window_seconds == 0 {
            return Err(invalid("DISTINCTLY_WINDOW_SECONDS", "must be at least 1"));
        }
        if self.max_ahead_seconds == 0 {
            return Err(invalid(
                "DISTINCTLY_MAX_AHEAD_SECONDS",
                "must be at least 1",
            ));
        }
        if self.jump_confirm_events == 0 {
            return Err(invalid(
                "DISTINCTLY_JUMP_CONFIRM_EVENTS",
                "must be at least 1",
            ));
        }
        let horizon = self
            .allowed_lateness_seconds
            .saturating_add(self.late_retention_seconds);
        if self.max_behind_seconds < horizon {
            return Err(invalid(
                "DISTINCTLY_MAX_BEHIND_SECONDS",
                format!(
                    "{} is less than DISTINCTLY_ALLOWED_LATENESS_SECONDS + \
                     DISTINCTLY_LATE_RETENTION_SECONDS = {horizon}: late events \
                     within retention would be rejected as out of range",
                    self.max_behind_seconds
                ),
            ));
        }
        if self.max_message_bytes < 16 {
            return Err(invalid(
                "DISTINCTLY_MAX_MESSAGE_BYTES",
                "must be at least 16",
            ));
        }
        Ok(())
    }

    pub fn window_config(&self) -> WindowConfig {
        WindowConfig {
            window_seconds: self.window_seconds,
            allowed_lateness_seconds: self.allowed_lateness_seconds,
            late_retention_seconds: self.late_retention_seconds,
            max_ahead_seconds: self.max_ahead_seconds,
            max_behind_seconds: self.max_behind_seconds,
            jump_confirm_events: self.jump_confirm_events,
        }
    }
}

/// Reads the settings struct `T` from the `prefix*` variables among `vars`
/// (field `foo` from `{prefix}FOO`), every error naming its variable.
pub(crate) fn from_prefixed<T: serde::de::DeserializeOwned>(
    prefix: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    envy::prefixed(prefix)
        .from_iter(vars)
        .map_err(|e| env_error(prefix, e))
}

/// Turns an envy error into one line naming the variable: envy names the
/// field (`window_seconds`) or the variable without its prefix.
fn env_error(prefix: &str, e: envy::Error) -> ConfigError {
    ConfigError::Env(match e {
        envy::Error::MissingValue(field) => {
            format!("{prefix}{} is required", field.to_uppercase())
        }
        // envy reports "... provided by WINDOW_SECONDS" (prefix stripped).
        envy::Error::Custom(msg) => match msg.rsplit_once(" provided by ") {
            Some((what, var)) => format!("{prefix}{var}: {what}"),
            None => msg,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = CoreConfig::from_vars(vars(&[("UNRELATED", "x")])).unwrap();
        assert_eq!(c, CoreConfig::default());
        c.validate().unwrap();
        assert_eq!(c.counter_kind().unwrap(), CounterKind::Exact);
    }

    #[test]
    fn variables_are_read() {
        let c = CoreConfig::from_vars(vars(&[
            ("DISTINCTLY_COUNTER", "hll"),
            ("DISTINCTLY_HLL_PRECISION", "12"),
            ("DISTINCTLY_WINDOW_SECONDS", "300"),
        ]))
        .unwrap();
        assert_eq!(
            c.counter_kind().unwrap(),
            CounterKind::Hll { precision: 12 }
        );
        assert_eq!(c.window_seconds, 300);
        for (backend, kind) in [
            ("cpc", CounterKind::Cpc { lg_k: 11 }),
            ("hll4", CounterKind::Hll4 { lg_k: 11 }),
        ] {
            let c = CoreConfig::from_vars(vars(&[
                ("DISTINCTLY_COUNTER", backend),
                ("DISTINCTLY_SKETCH_LGK", "11"),
            ]))
            .unwrap();
            assert_eq!(c.counter_kind().unwrap(), kind);
            assert_eq!(kind.to_string(), format!("{backend}-lgk11"));
        }
    }

    #[test]
    fn errors_name_the_variable() {
        let e = CoreConfig::from_vars(vars(&[("DISTINCTLY_WINDOW_SECONDS", "sixty")])).unwrap_err();
        assert!(
            e.to_string().starts_with("DISTINCTLY_WINDOW_SECONDS: "),
            "{e}"
        );
        for (pairs, var) in [
            (vec![("DISTINCTLY_COUNTER", "bloom")], "DISTINCTLY_COUNTER"),
            (
                vec![
                    ("DISTINCTLY_COUNTER", "hll"),
                    ("DISTINCTLY_HLL_PRECISION", "20"),
                ],
                "DISTINCTLY_HLL_PRECISION",
            ),
            (
                vec![
                    ("DISTINCTLY_COUNTER", "cpc"),
                    ("DISTINCTLY_SKETCH_LGK", "22"),
                ],
                "DISTINCTLY_SKETCH_LGK",
            ),
            (
                vec![("DISTINCTLY_SKETCH_LGK", "3")],
                "DISTINCTLY_SKETCH_LGK",
            ),
            (
                vec![("DISTINCTLY_WINDOW_SECONDS", "0")],
                "DISTINCTLY_WINDOW_SECONDS",
            ),
            (
                vec![("DISTINCTLY_MAX_BEHIND_SECONDS", "100")],
                "DISTINCTLY_MAX_BEHIND_SECONDS",
            ),
        ] {
            let c = CoreConfig::from_vars(vars(&pairs)).unwrap();
            let e = c.validate().unwrap_err();
            assert!(e.to_string().starts_with(var), "{e}");
        }
    }
}
