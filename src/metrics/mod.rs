//! Prometheus metrics, recorded by `metrics-exporter-prometheus` and
//! served with `/healthz` and `/readyz` on `DISTINCTLY_METRICS_ADDR`.
//!
//! ```text
//! names.rs    every metric name, unit, help text and bucket layout
//! publish.rs  hot-path counts, copied from locals once per tick or batch
//! status.rs   /v1/status: the metrics a person looks at first, as JSON
//! http.rs     the endpoints: /metrics, /healthz, /readyz, /v1/*, the page
//! server.rs   connections: how many, how slow, how long
//! ```
//!
//! Rare operational events (errors, rebalances, deliveries) update their
//! metrics where they are logged: [`crate::internal_events`].
//!
//! The hot loops never touch the metrics registry: they count in plain
//! fields (as they always did for the summary), and a [`Publisher`] copies
//! those totals into the exported counters and gauges every tick (`run`)
//! or input batch (`count`). So a disabled exporter costs nothing, and an
//! enabled one costs a few dozen relaxed stores per tick.

mod http;
pub mod names;
mod publish;
mod server;
mod status;

pub use publish::{
    register_build_info, InputPublisher, OutputPublisher, Publisher, Totals, WindowPublisher,
    BATCH_MAX_MESSAGES,
};

use crate::config::{defaults, from_prefixed, ConfigError};
use crate::health::health;
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
    /// `DISTINCTLY_HTTP_TOKEN`: a bearer token that the data endpoints
    /// (`/v1/*`: queries and the live page's JSON) ask for; unset or empty,
    /// they are open. The page itself, `/healthz` and `/readyz` stay open.
    pub http_token: Option<String>,
    /// `DISTINCTLY_HTTP_TOKEN_METRICS`: `/metrics` asks for the token too.
    pub http_token_metrics: Option<bool>,
    /// The address came from `--metrics-addr` (messages then name the flag).
    #[serde(skip)]
    pub from_flag: bool,
    /// The address came from `count --serve`.
    #[serde(skip)]
    pub from_serve: bool,
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

    /// `count --serve`'s address, the other settings from `vars`.
    pub fn serve(
        vars: impl IntoIterator<Item = (String, String)>,
        addr: &str,
    ) -> Result<Self, ConfigError> {
        Ok(MetricsConfig {
            metrics_addr: Some(addr.to_string()),
            from_flag: true,
            from_serve: true,
            ..Self::from_vars(vars)?
        })
    }

    /// The address from `--metrics-addr` if given, else from the variable.
    pub fn load(
        vars: impl IntoIterator<Item = (String, String)>,
        flag: Option<String>,
    ) -> Result<Self, ConfigError> {
        let cfg = Self::from_vars(vars)?;
        Ok(match flag {
            Some(addr) => MetricsConfig {
                metrics_addr: Some(addr),
                from_flag: true,
                ..cfg
            },
            None => cfg,
        })
    }

    /// Where a local health check finds this process's endpoints: loopback
    /// and the configured port (`run`'s default when unset).
    pub fn probe_addr(&self) -> Result<String, ConfigError> {
        match self.listen_addr(Mode::Run)? {
            Some(addr) => Ok(format!("127.0.0.1:{}", addr.port())),
            None => Err(crate::config::invalid(
                self.name(),
                "is empty: the endpoints are off, there is nothing to ask",
            )),
        }
    }

    /// Who may read what: the token, checked (`None`: everything open).
    pub fn access(&self) -> Result<Access, ConfigError> {
        let token = match self.http_token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) => {
                let token68 = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
                if !(MIN_TOKEN..=MAX_TOKEN).contains(&t.len()) || !t.chars().all(token68) {
                    return Err(crate::config::invalid(
                        "DISTINCTLY_HTTP_TOKEN",
                        format!(
                            "expected {MIN_TOKEN} to {MAX_TOKEN} characters of A-Z a-z 0-9 - . _ ~ + / = (a bearer token), got {} characters",
                            t.len()
                        ),
                    ));
                }
                Some(t.to_string())
            }
        };
        let metrics = self.http_token_metrics.unwrap_or(false);
        if metrics && token.is_none() {
            return Err(crate::config::invalid(
                "DISTINCTLY_HTTP_TOKEN_METRICS",
                "is true, but DISTINCTLY_HTTP_TOKEN is not set",
            ));
        }
        Ok(Access { token, metrics })
    }

    /// What messages call this setting.
    fn name(&self) -> &'static str {
        if self.from_serve {
            "--serve"
        } else if self.from_flag {
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
        let off = if self.from_serve {
            ""
        } else {
            " (or empty to disable)"
        };
        addr.parse().map(Some).map_err(|_| {
            crate::config::invalid(
                self.name(),
                format!("expected ip:port such as 0.0.0.0:9464{off}, got {addr:?}"),
            )
        })
    }
}

/// Shortest and longest `DISTINCTLY_HTTP_TOKEN`.
const MIN_TOKEN: usize = 16;
const MAX_TOKEN: usize = 512;

/// Which endpoints ask for a bearer token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// The token of `/v1/*` (`None`: open).
    pub token: Option<String>,
    /// `/metrics` asks for it too.
    pub metrics: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("a metrics recorder is already installed")]
    AlreadyInstalled,
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

/// Installs the Prometheus recorder and serves `/metrics`, `/healthz` and
/// `/readyz` from a background thread, if configured. Returns the address
/// served (with the port the system chose, for port 0).
pub fn install(cfg: &MetricsConfig, mode: Mode) -> Result<Option<SocketAddr>, MetricsError> {
    let Some(addr) = cfg.listen_addr(mode)? else {
        return Ok(None);
    };
    let access = cfg.access()?;
    let install_err = |reason: String| MetricsError::Install {
        name: cfg.name(),
        addr,
        reason,
    };
    let listener = server::listen(addr).map_err(|e| install_err(e.to_string()))?;
    let local = listener
        .local_addr()
        .map_err(|e| install_err(e.to_string()))?;
    let buckets = |e: metrics_exporter_prometheus::BuildError| install_err(e.to_string());
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::BATCH_DURATION.into()),
            names::BATCH_DURATION_BUCKETS,
        )
        .map_err(buckets)?
        .set_buckets_for_metric(
            Matcher::Full(names::BATCH_MESSAGES.into()),
            names::BATCH_MESSAGES_BUCKETS,
        )
        .map_err(buckets)?
        .set_buckets_for_metric(
            Matcher::Full(names::DELIVERY_LATENCY.into()),
            names::DELIVERY_LATENCY_BUCKETS,
        )
        .map_err(buckets)?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| MetricsError::AlreadyInstalled)?;
    http::spawn(listener, handle, access).map_err(|e| install_err(e.to_string()))?;
    if mode == Mode::Count {
        // Nothing to wait for: counting starts at once.
        health().set_ready(Ok(()));
    }
    names::describe();
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(local))
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
    fn the_token_is_checked_and_named() {
        let access = |pairs: &[(&str, &str)]| {
            MetricsConfig::from_vars(crate::config::vars(pairs))
                .unwrap()
                .access()
        };
        assert_eq!(access(&[]), Ok(Access::default()));
        assert_eq!(
            access(&[("DISTINCTLY_HTTP_TOKEN", " ")]),
            Ok(Access::default())
        );
        let good = "abcdefghijklmnop-._~+/=";
        assert_eq!(
            access(&[
                ("DISTINCTLY_HTTP_TOKEN", good),
                ("DISTINCTLY_HTTP_TOKEN_METRICS", "true")
            ]),
            Ok(Access {
                token: Some(good.to_string()),
                metrics: true
            })
        );
        for bad in ["short", "has a space in it!!", &"x".repeat(513)] {
            let err = access(&[("DISTINCTLY_HTTP_TOKEN", bad)]).unwrap_err();
            assert!(
                err.to_string().starts_with("DISTINCTLY_HTTP_TOKEN: "),
                "{err}"
            );
        }
        let err = access(&[("DISTINCTLY_HTTP_TOKEN_METRICS", "true")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("DISTINCTLY_HTTP_TOKEN_METRICS: "),
            "{err}"
        );
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
