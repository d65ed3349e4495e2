//! Core settings: the `DISTINCTLY_*` environment variables, their defaults
//! (all in [`defaults`]), command-line overrides and cross-field validation.
//!
//! Loaded with `envy`; a malformed or inconsistent value stops start-up with
//! one line that names the variable and the expected form. A flag wins over
//! its variable: the variable is then not even parsed, and a message about
//! the value names the flag ([`CoreConfig::load`]; the flags themselves are
//! the command line's, which this module does not know). A `DISTINCTLY_*`
//! variable that no setting reads is reported by [`unknown_variables`],
//! given the settings structs of every command.

use crate::counter::{cpc, hll, CounterKind, BACKENDS};
use crate::group::Groupings;
use crate::window::size::WindowSize;
use crate::window::WindowConfig;
use serde::Deserialize;

/// Every default of the core settings, each written once here ([`CoreConfig`]'s
/// `Default` and therefore serde use them; the README's table is checked
/// against them by a test).
pub mod defaults {
    pub const COUNTER: &str = "exact";
    pub const HLL_PRECISION: u8 = crate::counter::hll::DEFAULT_PRECISION;
    /// lgK of `cpc` and `hll4`; why this value: docs/performance.md.
    pub const SKETCH_LGK: u8 = crate::counter::DEFAULT_SKETCH_LG_K;
    /// `DISTINCTLY_WINDOWS`: one size, the old app's minute.
    pub const WINDOWS: &str = "1m";
    pub const TIMEZONE: &str = "UTC";
    pub const ALLOWED_LATENESS_SECONDS: u64 = 5;
    pub const LATE_RETENTION_SECONDS: u64 = 600;
    pub const MAX_AHEAD_SECONDS: u64 = 300;
    pub const MAX_BEHIND_SECONDS: u64 = 86_400;
    pub const JUMP_CONFIRM_EVENTS: u64 = 16;
    pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
    /// `DISTINCTLY_MAX_GROUPS`: groups per grouping and window. A long tail
    /// of 10^5 small groups costs a few MB per window; past it, the events of
    /// new groups go to the window's overflow record.
    pub const MAX_GROUPS: usize = 100_000;
    /// `DISTINCTLY_METRICS_ADDR` when `run` is not told otherwise (all
    /// interfaces: a container's port must be reachable from Prometheus).
    pub const METRICS_ADDR: &str = "0.0.0.0:9464";
    /// `DISTINCTLY_SLICES`: the resolutions range queries are answered from.
    pub const SLICES: &str = crate::slices::DEFAULT_SLICES;
}

/// Counting settings shared by `count` and `run`. Field `foo` is read from
/// `DISTINCTLY_FOO`; an unset variable takes the value of [`defaults`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct CoreConfig {
    /// `DISTINCTLY_COUNTER`: `exact`, `roaring`, `hll`, `cpc` or `hll4`.
    pub counter: String,
    /// `DISTINCTLY_HLL_PRECISION`: HyperLogLog++ precision (2^p registers).
    /// Only used by `hll`.
    pub hll_precision: u8,
    /// `DISTINCTLY_SKETCH_LGK`: log2 of K for the DataSketches backends
    /// `cpc` and `hll4` (2^lgK registers or rows). Only used by them.
    pub sketch_lgk: u8,
    /// `DISTINCTLY_WINDOWS`: comma-separated window sizes (see
    /// `window::size`); unset: `DISTINCTLY_WINDOW_SECONDS`, else
    /// [`defaults::WINDOWS`].
    pub windows: Option<String>,
    /// `DISTINCTLY_WINDOW_SECONDS`: the one-size form, a window length in
    /// seconds (not together with `DISTINCTLY_WINDOWS`).
    pub window_seconds: Option<u64>,
    /// `DISTINCTLY_TIMEZONE`: IANA zone whose wall clock hour, day, week and
    /// month windows follow.
    pub timezone: String,
    /// `DISTINCTLY_ALLOWED_LATENESS_SECONDS`: how far behind the highest event
    /// time the watermark trails (the source promises 99.9 % of events
    /// within the default).
    pub allowed_lateness_seconds: u64,
    /// `DISTINCTLY_LATE_RETENTION_SECONDS`: how long after its close a window
    /// still accepts late events and is re-emitted with a correction.
    pub late_retention_seconds: u64,
    /// `DISTINCTLY_MAX_AHEAD_SECONDS`: how far ahead of the stream time an
    /// event may be before it is held as a possible bit flip.
    pub max_ahead_seconds: u64,
    /// `DISTINCTLY_MAX_BEHIND_SECONDS`: events further behind the stream time
    /// are `ts_out_of_range` rather than late (at least lateness +
    /// retention).
    pub max_behind_seconds: u64,
    /// `DISTINCTLY_JUMP_CONFIRM_EVENTS`: agreeing events needed before the
    /// stream time follows a jump ahead.
    pub jump_confirm_events: u64,
    /// `DISTINCTLY_MAX_MESSAGE_BYTES`: longer messages are rejected as
    /// `too_large` without being parsed.
    pub max_message_bytes: usize,
    /// `DISTINCTLY_GROUP_BY`: groupings counted beside each window's total
    /// (see `group`); unset or empty: none.
    pub group_by: Option<String>,
    /// `DISTINCTLY_MAX_GROUPS`: groups per grouping and window.
    pub max_groups: usize,
    /// `DISTINCTLY_ROLLING`: `<length>/<step>,…`, rolling windows
    /// (`window::rolling`); unset or empty: none.
    pub rolling: Option<String>,
    /// `DISTINCTLY_SLICES`: `<size>:<retention>,…`, the slices range
    /// queries merge (`count --serve`); empty: none.
    pub slices: String,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            counter: defaults::COUNTER.to_string(),
            hll_precision: defaults::HLL_PRECISION,
            sketch_lgk: defaults::SKETCH_LGK,
            windows: None,
            window_seconds: None,
            timezone: defaults::TIMEZONE.to_string(),
            allowed_lateness_seconds: defaults::ALLOWED_LATENESS_SECONDS,
            late_retention_seconds: defaults::LATE_RETENTION_SECONDS,
            max_ahead_seconds: defaults::MAX_AHEAD_SECONDS,
            max_behind_seconds: defaults::MAX_BEHIND_SECONDS,
            jump_confirm_events: defaults::JUMP_CONFIRM_EVENTS,
            max_message_bytes: defaults::MAX_MESSAGE_BYTES,
            group_by: None,
            max_groups: defaults::MAX_GROUPS,
            rolling: None,
            slices: defaults::SLICES.to_string(),
        }
    }
}

/// Bounds of the settings that have them (checked by
/// [`CoreConfig::validate`]).
pub mod bounds {
    /// Smallest `DISTINCTLY_MAX_MESSAGE_BYTES`: no valid event is shorter.
    pub const MIN_MESSAGE_BYTES: usize = 16;
    /// Largest `DISTINCTLY_MAX_MESSAGE_BYTES`: the parser indexes messages
    /// with 32-bit positions, and nothing legitimate comes close.
    pub const MAX_MESSAGE_BYTES: usize = 1 << 30;
    /// Largest window, lateness and retention: 366 days. Longer ones would
    /// overflow time arithmetic near the end of the representable range
    /// long before they made sense.
    pub const MAX_SPAN_SECONDS: u64 = 366 * 86_400;
    /// Largest `DISTINCTLY_JUMP_CONFIRM_EVENTS`: the time guard holds about
    /// this many events per candidate region (see `window::guard`).
    pub const MAX_JUMP_CONFIRM_EVENTS: u64 = 1000;
    /// Most sizes in `DISTINCTLY_WINDOWS`: every event is inserted once per
    /// size, so a list of thousands would count a thousand times slower.
    pub const MAX_WINDOW_SIZES: usize = 64;
    /// Largest `DISTINCTLY_MAX_GROUPS`: ten million groups of one window are
    /// gigabytes; a grouping that needs more is not a grouping.
    pub const MAX_GROUPS: usize = 10_000_000;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A value out of range or inconsistent; `name` is the variable or the
    /// flag that set it.
    #[error("{name}: {reason}")]
    Invalid { name: String, reason: String },
    /// A variable that could not be parsed; the message starts with its name.
    #[error("{0}")]
    Env(String),
}

/// An invalid value of the setting called `name`.
pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        reason: reason.into(),
    }
}

/// How messages name a core setting: its flag if a flag set it, else its
/// variable.
struct Names<'a> {
    from_flags: &'a [&'static str],
}

impl Names<'_> {
    fn of(&self, field: &str) -> String {
        if self.from_flags.contains(&field) {
            format!("--{}", field.replace('_', "-"))
        } else {
            format!("DISTINCTLY_{}", field.to_uppercase())
        }
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

    /// The settings from the variables among `vars`, overridden by flags,
    /// validated: `from_flags` names the fields a flag set, and `apply` sets
    /// them (the command line's own step, `cli::CoreArgs::load`). A flag
    /// wins over its variable, which is then not parsed at all, and messages
    /// about a value name whichever set it.
    pub fn load(
        vars: impl IntoIterator<Item = (String, String)>,
        from_flags: &[&'static str],
        apply: impl FnOnce(&mut CoreConfig),
    ) -> Result<Self, ConfigError> {
        let overridden: Vec<String> = from_flags
            .iter()
            .map(|f| format!("DISTINCTLY_{}", f.to_uppercase()))
            .collect();
        let mut cfg = Self::from_vars(vars.into_iter().filter(|(k, _)| !overridden.contains(k)))?;
        apply(&mut cfg);
        cfg.check(&Names { from_flags })?;
        Ok(cfg)
    }

    /// The counter kind these settings select.
    pub fn counter_kind(&self) -> Result<CounterKind, ConfigError> {
        self.kind(&Names { from_flags: &[] })
    }

    fn kind(&self, names: &Names<'_>) -> Result<CounterKind, ConfigError> {
        if !(hll::MIN_PRECISION..=hll::MAX_PRECISION).contains(&self.hll_precision) {
            return Err(invalid(
                names.of("hll_precision"),
                format!(
                    "{} is outside {}..={}",
                    self.hll_precision,
                    hll::MIN_PRECISION,
                    hll::MAX_PRECISION
                ),
            ));
        }
        if !(cpc::MIN_LG_K..=cpc::MAX_LG_K).contains(&self.sketch_lgk) {
            return Err(invalid(
                names.of("sketch_lgk"),
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
                    names.of("counter"),
                    format!("{:?} is not one of {BACKENDS}", self.counter),
                )
            },
        )
    }

    /// Checks every field and their relations (messages name variables).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(&Names { from_flags: &[] })
    }

    fn check(&self, names: &Names<'_>) -> Result<(), ConfigError> {
        use bounds::*;
        self.kind(names)?;
        let in_range = |field: &str, v: u64, min: u64, max: u64| {
            if (min..=max).contains(&v) {
                Ok(())
            } else {
                Err(invalid(
                    names.of(field),
                    format!("{v} is outside {min}..={max}"),
                ))
            }
        };
        self.sizes_named(names)?;
        self.groupings_named(names)?;
        self.slices_named(names)?;
        self.rolling_named(names)?;
        crate::window::size::time_zone(&self.timezone)
            .map_err(|reason| invalid(names.of("timezone"), reason))?;
        in_range(
            "allowed_lateness_seconds",
            self.allowed_lateness_seconds,
            0,
            MAX_SPAN_SECONDS,
        )?;
        in_range(
            "late_retention_seconds",
            self.late_retention_seconds,
            0,
            MAX_SPAN_SECONDS,
        )?;
        in_range("max_ahead_seconds", self.max_ahead_seconds, 1, u64::MAX)?;
        in_range(
            "jump_confirm_events",
            self.jump_confirm_events,
            1,
            MAX_JUMP_CONFIRM_EVENTS,
        )?;
        in_range(
            "max_message_bytes",
            self.max_message_bytes as u64,
            MIN_MESSAGE_BYTES as u64,
            MAX_MESSAGE_BYTES as u64,
        )?;
        let horizon = self
            .allowed_lateness_seconds
            .saturating_add(self.late_retention_seconds);
        if self.max_behind_seconds < horizon {
            return Err(invalid(
                names.of("max_behind_seconds"),
                format!(
                    "{} is less than {} + {} = {horizon}: late events \
                     within retention would be rejected as out of range",
                    self.max_behind_seconds,
                    names.of("allowed_lateness_seconds"),
                    names.of("late_retention_seconds"),
                ),
            ));
        }
        Ok(())
    }

    /// The window sizes these settings ask for (validated).
    pub fn sizes(&self) -> Result<Vec<WindowSize>, ConfigError> {
        self.sizes_named(&Names { from_flags: &[] })
    }

    fn sizes_named(&self, names: &Names<'_>) -> Result<Vec<WindowSize>, ConfigError> {
        use crate::window::size::parse_sizes;
        let sizes = match (&self.windows, self.window_seconds) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    names.of("windows"),
                    format!(
                        "set either it or {} (the one-size form), not both",
                        names.of("window_seconds")
                    ),
                ))
            }
            (Some(list), None) => {
                parse_sizes(list).map_err(|e| invalid(names.of("windows"), e.to_string()))?
            }
            (None, Some(seconds)) => vec![WindowSize::Seconds(seconds)],
            (None, None) => parse_sizes(defaults::WINDOWS).expect("the default parses"),
        };
        let field = if self.windows.is_some() {
            "windows"
        } else {
            "window_seconds"
        };
        if sizes.len() > bounds::MAX_WINDOW_SIZES {
            return Err(invalid(
                names.of(field),
                format!(
                    "{} sizes; at most {} (each event is counted once per size)",
                    sizes.len(),
                    bounds::MAX_WINDOW_SIZES
                ),
            ));
        }
        for &size in &sizes {
            let reason = match size {
                WindowSize::Seconds(n) if !(1..=bounds::MAX_SPAN_SECONDS).contains(&n) => {
                    format!("{n} is outside 1..={}", bounds::MAX_SPAN_SECONDS)
                }
                WindowSize::Days(_) if size.nominal_seconds() > bounds::MAX_SPAN_SECONDS => {
                    format!("{size} is longer than 366 days")
                }
                _ => continue,
            };
            return Err(invalid(names.of(field), reason));
        }
        Ok(sizes)
    }

    /// The groupings these settings ask for (validated).
    pub fn groupings(&self) -> Result<Groupings, ConfigError> {
        self.groupings_named(&Names { from_flags: &[] })
    }

    fn groupings_named(&self, names: &Names<'_>) -> Result<Groupings, ConfigError> {
        if !(1..=bounds::MAX_GROUPS).contains(&self.max_groups) {
            return Err(invalid(
                names.of("max_groups"),
                format!("{} is outside 1..={}", self.max_groups, bounds::MAX_GROUPS),
            ));
        }
        Groupings::parse(self.group_by.as_deref().unwrap_or(""), self.max_groups)
            .map_err(|e| invalid(names.of("group_by"), e.to_string()))
    }

    /// The rolling windows these settings ask for (validated).
    pub fn rolling(&self) -> Result<Vec<crate::window::rolling::Rolling>, ConfigError> {
        self.rolling_named(&Names { from_flags: &[] })
    }

    fn rolling_named(
        &self,
        names: &Names<'_>,
    ) -> Result<Vec<crate::window::rolling::Rolling>, ConfigError> {
        crate::window::rolling::parse_rolling(self.rolling.as_deref().unwrap_or(""))
            .map_err(|e| invalid(names.of("rolling"), e.to_string()))
    }

    /// The slice resolutions these settings ask for (validated).
    pub fn slices(&self) -> Result<Vec<crate::slices::Resolution>, ConfigError> {
        self.slices_named(&Names { from_flags: &[] })
    }

    fn slices_named(
        &self,
        names: &Names<'_>,
    ) -> Result<Vec<crate::slices::Resolution>, ConfigError> {
        crate::slices::parse_slices(&self.slices)
            .map_err(|e| invalid(names.of("slices"), e.to_string()))
    }

    pub fn window_config(&self) -> WindowConfig {
        WindowConfig {
            sizes: self
                .sizes()
                .unwrap_or_else(|_| vec![WindowSize::Seconds(60)]),
            timezone: self.timezone.clone(),
            allowed_lateness_seconds: self.allowed_lateness_seconds,
            late_retention_seconds: self.late_retention_seconds,
            max_ahead_seconds: self.max_ahead_seconds,
            max_behind_seconds: self.max_behind_seconds,
            jump_confirm_events: self.jump_confirm_events,
            groupings: self.groupings().unwrap_or_default(),
            rolling: self.rolling().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests;
mod vars;

pub(crate) use vars::from_prefixed;
#[cfg(test)]
pub(crate) use vars::vars;
pub use vars::{field_names, unknown_variables, variable_names};
