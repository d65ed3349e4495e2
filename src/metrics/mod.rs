//! Prometheus metrics: `/metrics` served by `metrics-exporter-prometheus`
//! on `DISTINCTLY_METRICS_ADDR`.
//!
//! ```text
//! names.rs    every metric name, unit, help text and bucket layout
//! events.rs   counted where they happen: Kafka errors, deliveries
//! publish.rs  hot-path counts, copied from locals once per tick or batch
//! ```
//!
//! The hot loops never touch the metrics registry: they count in plain
//! fields (as they always did for the summary), and a [`Publisher`] copies
//! those totals into the exported counters and gauges every tick (`run`)
//! or input batch (`count`). So a disabled exporter costs nothing, and an
//! enabled one costs a few dozen relaxed stores per tick.

pub mod events;
pub mod names;
mod publish;

pub use publish::{Publisher, Totals, BATCH_MAX_MESSAGES};

use crate::config::{defaults, from_prefixed, ConfigError};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where to serve `/metrics`. Field `foo` is read from `DISTINCTLY_FOO`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MetricsConfig {
    /// `DISTINCTLY_METRICS_ADDR`: `host:port` to serve Prometheus metrics on
    /// (`/metrics`). `run` defaults to `0.0.0.0:9464`; `count` serves only
    /// when the variable is set. Empty disables the exporter.
    pub metrics_addr: Option<String>,
    /// The address came from `--metrics-addr` (messages then name the flag).
    #[serde(skip)]
    pub from_flag: bool,
}

/// Which command asks: `run` serves by default, `count` only on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Count,
}

impl MetricsConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        from_prefixed("DISTINCTLY_", vars)
    }

    /// The address from `--metrics-addr` if given, else from the variable.
    pub fn load(
        vars: impl IntoIterator<Item = (String, String)>,
        flag: Option<String>,
    ) -> Result<Self, ConfigError> {
        match flag {
            Some(addr) => Ok(MetricsConfig {
                metrics_addr: Some(addr),
                from_flag: true,
            }),
            None => Self::from_vars(vars),
        }
    }

    /// What messages call this setting.
    fn name(&self) -> &'static str {
        if self.from_flag {
            "--metrics-addr"
        } else {
            "DISTINCTLY_METRICS_ADDR"
        }
    }

    /// The address to listen on, if any, validated.
    pub fn listen_addr(&self, mode: Mode) -> Result<Option<SocketAddr>, ConfigError> {
        let addr = match (&self.metrics_addr, mode) {
            (Some(a), _) => a.trim(),
            (None, Mode::Run) => defaults::METRICS_ADDR,
            (None, Mode::Count) => return Ok(None),
        };
        if addr.is_empty() {
            return Ok(None);
        }
        addr.parse().map(Some).map_err(|_| {
            crate::config::invalid(
                self.name(),
                format!(
                    "expected ip:port such as 0.0.0.0:9464 (or empty to disable), got {addr:?}"
                ),
            )
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{name}: cannot serve metrics on {addr}: {reason}")]
    Install {
        name: &'static str,
        addr: SocketAddr,
        reason: String,
    },
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether an exporter is installed (publishers are only built then).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Starts the exporter (a background thread serving HTTP) if configured.
/// Returns the address served.
pub fn install(cfg: &MetricsConfig, mode: Mode) -> Result<Option<SocketAddr>, MetricsError> {
    let Some(addr) = cfg.listen_addr(mode)? else {
        return Ok(None);
    };
    let install_err = |e: metrics_exporter_prometheus::BuildError| MetricsError::Install {
        name: cfg.name(),
        addr,
        reason: e.to_string(),
    };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full(names::BATCH_DURATION.into()),
            names::BATCH_DURATION_BUCKETS,
        )
        .map_err(install_err)?
        .set_buckets_for_metric(
            Matcher::Full(names::BATCH_MESSAGES.into()),
            names::BATCH_MESSAGES_BUCKETS,
        )
        .map_err(install_err)?
        .set_buckets_for_metric(
            Matcher::Full(names::DELIVERY_LATENCY.into()),
            names::DELIVERY_LATENCY_BUCKETS,
        )
        .map_err(install_err)?
        .install()
        .map_err(install_err)?;
    names::describe();
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(addr: Option<&str>) -> MetricsConfig {
        let vars: Vec<(String, String)> = addr
            .map(|a| ("DISTINCTLY_METRICS_ADDR".to_string(), a.to_string()))
            .into_iter()
            .collect();
        MetricsConfig::from_vars(vars).unwrap()
    }

    #[test]
    fn run_serves_by_default_count_only_when_asked() {
        let default: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        assert_eq!(cfg(None).listen_addr(Mode::Run), Ok(Some(default)));
        assert_eq!(cfg(None).listen_addr(Mode::Count), Ok(None));
        let set: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        assert_eq!(
            cfg(Some("127.0.0.1:9999")).listen_addr(Mode::Count),
            Ok(Some(set))
        );
        assert_eq!(cfg(Some("")).listen_addr(Mode::Run), Ok(None));
        assert_eq!(cfg(Some(" ")).listen_addr(Mode::Count), Ok(None));
    }

    #[test]
    fn a_bad_address_names_the_variable() {
        let err = cfg(Some("localhost")).listen_addr(Mode::Run).unwrap_err();
        assert!(
            err.to_string().starts_with("DISTINCTLY_METRICS_ADDR: "),
            "{err}"
        );
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        let mut seen = std::collections::HashSet::new();
        for name in names::ALL {
            assert!(name.starts_with("distinctly_"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert!(seen.insert(name), "{name} twice");
        }
        for counter in [names::EVENTS, names::MESSAGES, names::BYTES, names::COMMITS] {
            assert!(counter.ends_with("_total"), "{counter}");
        }
    }
}
