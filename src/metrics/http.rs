//! The HTTP endpoints on `DISTINCTLY_METRICS_ADDR`: `/metrics` (rendered
//! from the Prometheus recorder), `/healthz` and `/readyz` (see
//! [`crate::health`]). Served by `axum` on a single-threaded tokio runtime
//! of its own thread, so the service loop never waits for a scrape.

use crate::health::health;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use std::time::Duration;

/// How often histograms and the registry are maintained (the exporter's
/// own listener does this every 5 s too).
const UPKEEP: Duration = Duration::from_secs(5);

/// Serves the endpoints on `listener` from a new thread.
pub fn spawn(listener: std::net::TcpListener, handle: PrometheusHandle) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("distinctly-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let upkeep = handle.clone();
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(UPKEEP);
                    loop {
                        every.tick().await;
                        upkeep.run_upkeep();
                    }
                });
                let app = Router::new()
                    .route("/metrics", get(metrics))
                    .route("/healthz", get(healthz))
                    .route("/readyz", get(readyz))
                    .with_state(handle);
                // Serving ends only with the process.
                let _ = axum::serve(listener, app).await;
            });
        })?;
    Ok(())
}

async fn metrics(
    axum::extract::State(handle): axum::extract::State<PrometheusHandle>,
) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
}

async fn healthz() -> impl IntoResponse {
    status(health().live(), "ok")
}

async fn readyz() -> impl IntoResponse {
    status(health().ready(), "ready")
}

/// 200 with `ok_text`, or 503 with the reason, each as one line.
fn status(state: Result<(), String>, ok_text: &str) -> (StatusCode, String) {
    match state {
        Ok(()) => (StatusCode::OK, format!("{ok_text}\n")),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}
