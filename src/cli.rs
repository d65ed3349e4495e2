//! Command-line interface. Every counting flag mirrors a `DISTINCTLY_*`
//! variable: the variable sets the value, the flag overrides it.

use crate::bench::{BenchError, BenchOptions};
use crate::config::{ConfigError, CoreConfig};
pub use crate::count::Emit;
use crate::counter::CounterKind;
use crate::generate::{FrameKind, GenerateOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "distinctly",
    version,
    about = "Counts unique users per event-time window."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Count unique users per window in JSON-lines files (or stdin).
    Count(CountArgs),
    /// Write a reproducible synthetic event stream (and its exact truth).
    Generate(GenerateArgs),
    /// The Kafka service: consume, count, produce (settings: KAFKA_* and
    /// DISTINCTLY_* variables, see the README).
    Run(RunArgs),
    /// Measure every counter backend on reproducible workloads: error, heap
    /// and serialized bytes, throughput, estimate and merge times (markdown
    /// table on stdout; CSV and SVG charts with --out).
    Bench(BenchArgs),
    /// Ask a running instance's /healthz (or /readyz): exit 0 when it
    /// answers 200 (for container health checks; no curl needed).
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Ask /readyz (holds its partitions, broker answers) instead of
    /// /healthz (its loop runs).
    #[arg(long)]
    pub ready: bool,
    /// host:port of the instance [default: 127.0.0.1 and the port of
    /// DISTINCTLY_METRICS_ADDR, else 9464].
    #[arg(long)]
    pub addr: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Distinct users per window, comma-separated [default: 10^3 .. 10^7].
    #[arg(long, value_delimiter = ',')]
    pub cardinalities: Vec<u64>,
    /// Also run 10^8 distinct users per window (minutes per window; `exact`
    /// only if two windows fit in available memory).
    #[arg(long)]
    pub with_1e8: bool,
    /// Windows per workload [default: 256 at 10^3 down to 3 at 10^7].
    #[arg(long)]
    pub windows: Option<u64>,
    /// Zipf exponents of repeat visits, comma-separated; 0 = uniform.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 1.0])]
    pub skews: Vec<f64>,
    /// Counters to run, comma-separated, as in output records (exact,
    /// roaring, hll-p14, cpc-lgk12, hll4-lgk12, ...) [default: all backends,
    /// cpc and hll4 at lgK 11, 12, 14].
    #[arg(long, value_delimiter = ',')]
    pub counters: Vec<String>,
    /// A small, fast run: 10^3 and 10^4 distinct, 4 windows (unless given).
    #[arg(long)]
    pub quick: bool,
    /// Seed of the workloads: the same seed gives the same events.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Also write bench.md, bench.csv and SVG charts into this directory.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// No progress bar (it is only drawn when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Measure groups instead (DISTINCTLY_GROUP_BY): heap per group at 1,
    /// 10, 100 and 1000 users, and error and rate on a window of 10^5 groups
    /// of Zipf sizes, per counter.
    #[arg(long)]
    pub groups: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub core: CoreArgs,
    /// Exit once every partition has been read to its end and all windows
    /// are emitted and acknowledged (benchmarks, tests, back-fills).
    #[arg(long)]
    pub exit_when_idle: bool,
    /// Serve Prometheus metrics on this address (overrides
    /// DISTINCTLY_METRICS_ADDR; default 0.0.0.0:9464, empty disables).
    #[arg(long)]
    pub metrics_addr: Option<String>,
}

#[derive(Debug, Args)]
pub struct CountArgs {
    /// Input files; `-` or none means stdin. Gzip is detected and decompressed.
    pub files: Vec<String>,
    #[command(flatten)]
    pub core: CoreArgs,
    /// Summary on stderr: text, json or none.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    pub summary: SummaryFormat,
    /// Records: `updates` streams each window as it closes and every
    /// correction; `final` prints one record per window at the end of the
    /// input, in window order per size.
    #[arg(long, value_enum, default_value_t = Emit::Updates)]
    pub emit: Emit,
    /// Serve Prometheus metrics on this address while counting (overrides
    /// DISTINCTLY_METRICS_ADDR; off unless one of them is set).
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Serve the HTTP endpoints on this ip:port (range queries on
    /// /v1/uniques, /metrics, /healthz), and keep serving after the input
    /// until SIGINT or SIGTERM.
    #[arg(long, value_name = "IP:PORT", conflicts_with = "metrics_addr")]
    pub serve: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    Text,
    Json,
    None,
}

/// Every `DISTINCTLY_*` variable a setting of some command reads, besides
/// the `DISTINCTLY_RDKAFKA_*` pass-through family, sorted.
pub fn known_variables() -> Vec<String> {
    use crate::config::variable_names;
    let mut names = [
        variable_names::<CoreConfig>(),
        variable_names::<crate::metrics::MetricsConfig>(),
        variable_names::<crate::kafka::config::ServiceEnv>(),
        variable_names::<crate::logging::LogConfig>(),
    ]
    .concat();
    names.sort();
    names
}

/// The `DISTINCTLY_*` variables among `vars` that no setting reads, each
/// with the closest known name when one is close (a typo).
pub fn unknown_variables(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, Option<String>)> {
    crate::config::unknown_variables(vars, &known_variables())
}

/// Overrides for the core settings (see `config::CoreConfig`).
#[derive(Debug, Args, Default)]
pub struct CoreArgs {
    /// Counter backend: exact, roaring, hll, cpc or hll4 [env: DISTINCTLY_COUNTER].
    #[arg(long)]
    pub counter: Option<String>,
    /// HLL precision 4..=18 [env: DISTINCTLY_HLL_PRECISION].
    #[arg(long)]
    pub hll_precision: Option<u8>,
    /// lgK of cpc and hll4, 4..=21 [env: DISTINCTLY_SKETCH_LGK].
    #[arg(long)]
    pub sketch_lgk: Option<u8>,
    /// Window sizes, comma-separated: <n>s, <n>m, <n>h, <n>d, 1w, 1mo, 1y
    /// [env: DISTINCTLY_WINDOWS; default 1m].
    #[arg(long)]
    pub windows: Option<String>,
    /// One window length in seconds, the one-size form of --windows
    /// [env: DISTINCTLY_WINDOW_SECONDS].
    #[arg(long)]
    pub window_seconds: Option<u64>,
    /// IANA time zone of hour, day, week and month windows
    /// [env: DISTINCTLY_TIMEZONE; default UTC].
    #[arg(long)]
    pub timezone: Option<String>,
    /// Watermark lag behind the highest event time [env: DISTINCTLY_ALLOWED_LATENESS_SECONDS].
    #[arg(long)]
    pub allowed_lateness_seconds: Option<u64>,
    /// How long closed windows accept corrections [env: DISTINCTLY_LATE_RETENTION_SECONDS].
    #[arg(long)]
    pub late_retention_seconds: Option<u64>,
    /// Plausible lead over the stream time [env: DISTINCTLY_MAX_AHEAD_SECONDS].
    #[arg(long)]
    pub max_ahead_seconds: Option<u64>,
    /// Beyond this lag events are out of range [env: DISTINCTLY_MAX_BEHIND_SECONDS].
    #[arg(long)]
    pub max_behind_seconds: Option<u64>,
    /// Agreeing events needed to follow a time jump [env: DISTINCTLY_JUMP_CONFIRM_EVENTS].
    #[arg(long)]
    pub jump_confirm_events: Option<u64>,
    /// Longer messages are rejected as too_large [env: DISTINCTLY_MAX_MESSAGE_BYTES].
    #[arg(long)]
    pub max_message_bytes: Option<usize>,
    /// Groupings counted beside each window's total, comma-separated: a
    /// root key (country), a JSON Pointer (/ctx/device), or fields joined by
    /// + (country+/ctx/device) [env: DISTINCTLY_GROUP_BY].
    #[arg(long)]
    pub group_by: Option<String>,
    /// Groups per grouping and window; further groups' events go to the
    /// window's overflow record [env: DISTINCTLY_MAX_GROUPS; default 100000].
    #[arg(long)]
    pub max_groups: Option<usize>,
    /// Rolling windows, comma-separated <length>/<step> (1h/1m, 7d/1d,
    /// 30d/1d): every step, the distinct users of the last length
    /// [env: DISTINCTLY_ROLLING].
    #[arg(long)]
    pub rolling: Option<String>,
    /// Slices held for range queries, <size>:<retention> comma-separated,
    /// finest first [env: DISTINCTLY_SLICES; default 1m:48h,1h:35d,1d:400d].
    #[arg(long)]
    pub slices: Option<String>,
}

/// Calls `$m!` with the flag fields of [`CoreArgs`] other than `counter`
/// (each is `Option<T: Copy>` named as its `CoreConfig` field).
macro_rules! copy_fields {
    ($m:ident) => {
        $m!(
            hll_precision,
            sketch_lgk,
            allowed_lateness_seconds,
            late_retention_seconds,
            max_ahead_seconds,
            max_behind_seconds,
            jump_confirm_events,
            max_message_bytes,
            max_groups
        )
    };
}

impl CoreArgs {
    /// The core settings: the variables among `vars`, these flags over
    /// them, validated (messages name the flag where one set the value).
    pub fn load(
        &self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<CoreConfig, ConfigError> {
        CoreConfig::load(vars, &self.given(), |cfg| self.apply(cfg))
    }

    /// Applies the flags that were given on top of `cfg`.
    pub fn apply(&self, cfg: &mut CoreConfig) {
        if let Some(v) = &self.counter {
            cfg.counter = v.clone();
        }
        if let Some(v) = &self.timezone {
            cfg.timezone = v.clone();
        }
        if self.windows.is_some() {
            cfg.windows = self.windows.clone();
        }
        if self.window_seconds.is_some() {
            cfg.window_seconds = self.window_seconds;
        }
        if self.group_by.is_some() {
            cfg.group_by = self.group_by.clone();
        }
        if let Some(v) = &self.slices {
            cfg.slices = v.clone();
        }
        if self.rolling.is_some() {
            cfg.rolling = self.rolling.clone();
        }
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(v) = self.$field {
                    cfg.$field = v;
                }
            )*};
        }
        copy_fields!(set);
    }

    /// The `CoreConfig` fields that flags set.
    pub fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        for (set, name) in [
            (self.counter.is_some(), "counter"),
            (self.windows.is_some(), "windows"),
            (self.window_seconds.is_some(), "window_seconds"),
            (self.timezone.is_some(), "timezone"),
            (self.group_by.is_some(), "group_by"),
            (self.slices.is_some(), "slices"),
            (self.rolling.is_some(), "rolling"),
        ] {
            if set {
                given.push(name);
            }
        }
        macro_rules! seen {
            ($($field:ident),*) => {$(
                if self.$field.is_some() {
                    given.push(stringify!($field));
                }
            )*};
        }
        copy_fields!(seen);
        given
    }
}

impl BenchArgs {
    /// The run these flags ask for.
    pub fn options(&self) -> Result<BenchOptions, BenchError> {
        let mut cardinalities = if !self.cardinalities.is_empty() {
            self.cardinalities.clone()
        } else if self.quick {
            vec![1_000, 10_000]
        } else {
            crate::bench::DEFAULT_CARDINALITIES.to_vec()
        };
        if self.with_1e8 && !cardinalities.contains(&100_000_000) {
            cardinalities.push(100_000_000);
        }
        let counters = if self.counters.is_empty() {
            crate::bench::default_counters()
        } else {
            self.counters
                .iter()
                .map(|c| {
                    c.parse::<CounterKind>()
                        .map_err(|e| BenchError::InvalidOption(format!("--counters: {e}")))
                })
                .collect::<Result<_, _>>()?
        };
        Ok(BenchOptions {
            cardinalities,
            windows: self.windows.or(self.quick.then_some(4)),
            skews: self.skews.clone(),
            counters,
            seed: self.seed,
            progress: !self.no_progress,
        })
    }
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// PRNG seed: the same options give byte-identical output.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Lines to write, all kinds included.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Size of the user population.
    #[arg(long, default_value_t = 10_000)]
    pub users: u64,
    /// Event time of the first event (Unix seconds).
    #[arg(long, default_value_t = 1_767_225_600)]
    pub start_ts: u64,
    /// Event time covered by the run.
    #[arg(long, default_value_t = 3600)]
    pub span_seconds: u64,
    /// Zipf exponent of visits per user (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    pub skew: f64,
    /// On-time events are up to this many seconds out of order.
    #[arg(long, default_value_t = 3)]
    pub disorder_seconds: u64,
    /// Share of valid events that arrive late.
    #[arg(long, default_value_t = 0.01)]
    pub late_share: f64,
    /// Late events are at most this many seconds late.
    #[arg(long, default_value_t = 300)]
    pub late_max_seconds: u64,
    /// Share of lines a correct decoder rejects.
    #[arg(long, default_value_t = 0.001)]
    pub invalid_share: f64,
    /// Share of lines with a bit-flipped timestamp.
    #[arg(long, default_value_t = 0.0001)]
    pub outlier_share: f64,
    /// Share of valid frames wrapped in a JSON string (Kafka Connect style).
    #[arg(long, default_value_t = 0.0)]
    pub wrapped_share: f64,
    /// Frame shape: minimal (~45 B) or realistic (~2 KB).
    #[arg(long, default_value = "realistic")]
    pub frame: FrameKind,
    /// Add fields to group by to every valid frame: country (about 30
    /// values, awkward ones among them), page (a thousand), ctx.device;
    /// sometimes null, missing, an object or an array.
    #[arg(long)]
    pub groups: bool,
    /// With --groups: distinct page values (Zipf).
    #[arg(long, default_value_t = 1000)]
    pub group_pages: u64,
    /// Window sizes of the truth file, as `count --windows`
    /// [env: DISTINCTLY_WINDOWS].
    #[arg(long)]
    pub windows: Option<String>,
    /// One window length of the truth file, in seconds
    /// [env: DISTINCTLY_WINDOW_SECONDS].
    #[arg(long)]
    pub window_seconds: Option<u64>,
    /// Time zone of the truth's calendar windows [env: DISTINCTLY_TIMEZONE].
    #[arg(long)]
    pub timezone: Option<String>,
    /// Also write the exact per-window truth as JSON lines to this file.
    #[arg(long)]
    pub truth: Option<String>,
    /// Output file (`-` = stdout); a name ending in `.gz` is gzipped.
    #[arg(long, short, default_value = "-")]
    pub output: String,
}

impl GenerateArgs {
    /// The window settings of the truth file, as flags over the variables.
    pub fn window_args(&self) -> CoreArgs {
        CoreArgs {
            windows: self.windows.clone(),
            window_seconds: self.window_seconds,
            timezone: self.timezone.clone(),
            ..CoreArgs::default()
        }
    }

    pub fn options(&self) -> GenerateOptions {
        GenerateOptions {
            seed: self.seed,
            events: self.events,
            users: self.users,
            start_ts: self.start_ts,
            span_seconds: self.span_seconds,
            skew: self.skew,
            disorder_seconds: self.disorder_seconds,
            late_share: self.late_share,
            late_max_seconds: self.late_max_seconds,
            invalid_share: self.invalid_share,
            outlier_share: self.outlier_share,
            wrapped_share: self.wrapped_share,
            frame: self.frame,
            groups: self.groups,
            group_pages: self.group_pages,
        }
    }
}
