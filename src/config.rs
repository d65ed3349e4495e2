//! Core settings: the `DISTINCTLY_*` environment variables, their defaults
//! (all in [`defaults`]), command-line overrides and cross-field validation.
//!
//! Loaded with `envy`; a malformed or inconsistent value stops start-up with
//! one line that names the variable and the expected form. A flag wins over
//! its variable: the variable is then not even parsed, and a message about
//! the value names the flag ([`CoreConfig::load`]). A `DISTINCTLY_*`
//! variable that no setting reads is reported by [`unknown_variables`].

use crate::counter::{cpc, hll, CounterKind, BACKENDS};
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
    /// `DISTINCTLY_METRICS_ADDR` when `run` is not told otherwise (all
    /// interfaces: a container's port must be reachable from Prometheus).
    pub const METRICS_ADDR: &str = "0.0.0.0:9464";
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

    /// The settings from the variables among `vars` and the flags in
    /// `args`, validated. A flag wins over its variable, which is then not
    /// parsed at all, and messages about a value name whichever set it.
    pub fn load(
        vars: impl IntoIterator<Item = (String, String)>,
        args: &crate::cli::CoreArgs,
    ) -> Result<Self, ConfigError> {
        let from_flags = args.given();
        let overridden: Vec<String> = from_flags
            .iter()
            .map(|f| format!("DISTINCTLY_{}", f.to_uppercase()))
            .collect();
        let mut cfg = Self::from_vars(vars.into_iter().filter(|(k, _)| !overridden.contains(k)))?;
        args.apply(&mut cfg);
        cfg.check(&Names {
            from_flags: &from_flags,
        })?;
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
        }
    }
}

/// The names of the fields of the settings struct `T`, as serde sees them
/// (so the list of known variables cannot drift from the structs).
fn field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    struct Probe(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Done;
    impl std::fmt::Display for Done {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Done {}
    impl de::Error for Done {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Done
        }
    }
    impl<'de> de::Deserializer<'de> for &mut Probe {
        type Error = Done;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Done> {
            Err(Done)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Done> {
            self.0 = Some(fields);
            Err(Done)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut probe = Probe(None);
    let _ = T::deserialize(&mut probe);
    probe.0.unwrap_or(&[])
}

/// Every `DISTINCTLY_*` variable a setting reads, besides the
/// `DISTINCTLY_RDKAFKA_*` pass-through family.
pub fn known_variables() -> Vec<String> {
    let mut names: Vec<String> = [
        field_names::<CoreConfig>(),
        field_names::<crate::metrics::MetricsConfig>(),
        field_names::<crate::kafka::config::ServiceEnv>(),
        field_names::<crate::logging::LogConfig>(),
    ]
    .concat()
    .iter()
    .map(|f| format!("DISTINCTLY_{}", f.to_uppercase()))
    .collect();
    names.sort();
    names
}

/// The `DISTINCTLY_*` variables among `vars` that no setting reads (a typo
/// such as `DISTINCTLY_COUNTR`), each with the closest known name when one
/// is close.
pub fn unknown_variables(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, Option<String>)> {
    let known = known_variables();
    let mut unknown: Vec<(String, Option<String>)> = vars
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("DISTINCTLY_") && !k.starts_with("DISTINCTLY_RDKAFKA_"))
        .filter(|k| !known.contains(k))
        .map(|k| {
            let closest = known
                .iter()
                .map(|n| (edit_distance(&k, n), n))
                .min()
                .filter(|(d, _)| *d <= 3)
                .map(|(_, n)| n.clone());
            (k, closest)
        })
        .collect();
    unknown.sort();
    unknown
}

/// Levenshtein distance (short ASCII names only).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
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

/// `(name, value)` pairs as the environment gives them (tests).
#[cfg(test)]
pub(crate) fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.window_seconds, Some(300));
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
    fn a_flag_wins_over_its_variable_even_a_malformed_one() {
        use crate::cli::CoreArgs;
        let env = vars(&[
            ("DISTINCTLY_WINDOW_SECONDS", "abc"),
            ("DISTINCTLY_COUNTER", "hll"),
        ]);
        let args = CoreArgs {
            window_seconds: Some(300),
            ..CoreArgs::default()
        };
        let c = CoreConfig::load(env.clone(), &args).unwrap();
        assert_eq!(c.window_seconds, Some(300));
        assert_eq!(c.counter, "hll");
        // Without the flag the variable is read, and its error names it.
        let e = CoreConfig::load(env, &CoreArgs::default()).unwrap_err();
        assert!(
            e.to_string().starts_with("DISTINCTLY_WINDOW_SECONDS: "),
            "{e}"
        );
        // A bad flag value is named by its flag.
        let args = CoreArgs {
            window_seconds: Some(0),
            max_behind_seconds: Some(10),
            ..CoreArgs::default()
        };
        let e = CoreConfig::load(vars(&[]), &args).unwrap_err().to_string();
        assert_eq!(e, "--window-seconds: 0 is outside 1..=31622400");
        let args = CoreArgs {
            max_behind_seconds: Some(10),
            ..CoreArgs::default()
        };
        let e = CoreConfig::load(vars(&[]), &args).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "--max-behind-seconds: 10 is less than DISTINCTLY_ALLOWED_LATENESS_SECONDS"
            ),
            "{e}"
        );
    }

    #[test]
    fn absurd_values_are_refused_with_their_bounds() {
        for (var, value, want) in [
            (
                "DISTINCTLY_MAX_MESSAGE_BYTES",
                "1073741825",
                "1073741825 is outside 16..=1073741824",
            ),
            (
                "DISTINCTLY_WINDOW_SECONDS",
                "18446744073709551615",
                "18446744073709551615 is outside 1..=31622400",
            ),
            (
                "DISTINCTLY_LATE_RETENTION_SECONDS",
                "99999999999",
                "99999999999 is outside 0..=31622400",
            ),
            (
                "DISTINCTLY_JUMP_CONFIRM_EVENTS",
                "1001",
                "1001 is outside 1..=1000",
            ),
        ] {
            let c = CoreConfig::from_vars(vars(&[
                (var, value),
                ("DISTINCTLY_MAX_BEHIND_SECONDS", "18446744073709551615"),
            ]))
            .unwrap();
            assert_eq!(
                c.validate().unwrap_err().to_string(),
                format!("{var}: {want}")
            );
        }
        let c = CoreConfig::from_vars(vars(&[
            ("DISTINCTLY_MAX_MESSAGE_BYTES", "1073741824"),
            ("DISTINCTLY_WINDOW_SECONDS", "31622400"),
        ]))
        .unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn unknown_variables_are_found_with_a_suggestion() {
        let found = unknown_variables(vars(&[
            ("DISTINCTLY_COUNTR", "hll"),
            ("DISTINCTLY_COUNTER", "hll"),
            ("DISTINCTLY_METRICS_ADDR", ""),
            ("DISTINCTLY_IDLE_PARTITION_SECONDS", "3"),
            ("DISTINCTLY_RDKAFKA_SSL_CA_LOCATION", "/ca"),
            ("DISTINCTLY_SOMETHING_ELSE_ENTIRELY", "x"),
            ("PATH", "/bin"),
        ]));
        assert_eq!(
            found,
            vec![
                (
                    "DISTINCTLY_COUNTR".to_string(),
                    Some("DISTINCTLY_COUNTER".to_string())
                ),
                ("DISTINCTLY_SOMETHING_ELSE_ENTIRELY".to_string(), None),
            ]
        );
        let known = known_variables();
        assert!(known.contains(&"DISTINCTLY_WINDOW_SECONDS".to_string()));
        assert!(known.contains(&"DISTINCTLY_COMMIT_INTERVAL_SECONDS".to_string()));
    }

    /// `variable -> default cell` of every table row of the README that
    /// starts with a variable in backticks.
    fn readme_rows() -> std::collections::BTreeMap<String, String> {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let mut rows = std::collections::BTreeMap::new();
        for line in readme.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split(" | ").collect();
            let names = cells[0].trim_start_matches("| ");
            for name in names.split(", ") {
                rows.insert(
                    name.trim_matches('`').to_string(),
                    cells[1].trim().to_string(),
                );
            }
        }
        rows
    }

    #[test]
    fn the_readme_tables_match_the_code() {
        let rows = readme_rows();
        // Every setting the code reads has a row, and no row is invented.
        let mut code: Vec<String> = known_variables();
        code.extend(
            field_names::<crate::kafka::config::KafkaEnv>()
                .iter()
                .map(|f| format!("KAFKA_{}", f.to_uppercase())),
        );
        for var in &code {
            assert!(rows.contains_key(var), "{var} has no row in the README");
        }
        for var in rows
            .keys()
            .filter(|v| v.starts_with("DISTINCTLY_") || v.starts_with("KAFKA_"))
        {
            let family = var.starts_with("DISTINCTLY_RDKAFKA_") && var.contains("<NAME>");
            assert!(
                family || code.contains(var),
                "README row {var}: no such setting"
            );
        }
        // Every default in the README is the code's.
        let mut want: Vec<(String, String)> = Vec::new();
        let as_text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        for value in [
            serde_json::to_value(CoreConfig::default()).unwrap(),
            serde_json::to_value(crate::kafka::config::ServiceEnv::default()).unwrap(),
        ] {
            for (field, v) in value.as_object().unwrap() {
                let var = format!("DISTINCTLY_{}", field.to_uppercase());
                // An optional setting: its default is checked below.
                if !v.is_null() {
                    want.push((var, as_text(v)));
                }
            }
        }
        use crate::kafka::config::defaults as kafka;
        want.extend([
            (
                "KAFKA_SERVICE_INTERNAL_PORT".into(),
                kafka::port().to_string(),
            ),
            ("KAFKA_SERVICE_GROUP_ID".into(), kafka::group_id()),
            ("KAFKA_AUTO_OFFSET_RESET".into(), kafka::auto_offset_reset()),
            (
                "KAFKA_SERVICE_SASL_MECHANISM".into(),
                kafka::sasl_mechanism(),
            ),
            ("DISTINCTLY_WINDOWS".into(), defaults::WINDOWS.into()),
            (
                "DISTINCTLY_METRICS_ADDR".into(),
                defaults::METRICS_ADDR.into(),
            ),
            (
                "DISTINCTLY_LOG".into(),
                crate::logging::default_level(true).into(),
            ),
            ("DISTINCTLY_LOG_FORMAT".into(), "text".into()),
        ]);
        for (var, value) in want {
            let cell = &rows[&var];
            assert!(
                cell.starts_with(&format!("`{value}`")),
                "README says {var} defaults to {cell}, the code to {value}"
            );
        }
        // The one-size form has no value of its own.
        assert!(rows["DISTINCTLY_WINDOW_SECONDS"].starts_with("unset"));
        for var in [
            "KAFKA_SERVICE_INTERNAL_HOST",
            "KAFKA_SERVICE_INPUT_TOPIC",
            "KAFKA_SERVICE_OUTPUT_TOPIC",
        ] {
            assert_eq!(rows[var], "required", "{var}");
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
