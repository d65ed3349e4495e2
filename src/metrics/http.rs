//! The HTTP endpoints on `DISTINCTLY_METRICS_ADDR`: `/metrics` (rendered
//! from the Prometheus recorder), `/healthz` and `/readyz` (see
//! [`crate::health`]), `/v1/uniques` (range queries, [`crate::slices`]),
//! `/v1/status` (its [`status`](super::status)), and the live page with its
//! JSON (`/`, `/v1/info`, `/v1/windows`, `/v1/groups`: [`crate::live`]).
//! Served by `axum` on a single-threaded tokio runtime of its own thread,
//! so the service loop never waits for a scrape.

use crate::health::health;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;

/// How often histograms and the registry are maintained (the exporter's
/// own listener does this every 5 s too).
const UPKEEP: Duration = Duration::from_secs(5);

/// Serves the endpoints on `listener` from a new thread.
pub fn spawn(
    listener: std::net::TcpListener,
    handle: PrometheusHandle,
    access: super::Access,
) -> std::io::Result<()> {
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
                // Serving ends only with the process.
                super::server::serve(listener, router(handle, access)).await;
            });
        })?;
    Ok(())
}

/// Every endpoint; the data ones (and `/metrics` if told) behind the token.
fn router(handle: PrometheusHandle, access: super::Access) -> Router {
    let open = Router::new()
        .route(
            "/",
            get(|| asset("text/html; charset=utf-8", crate::live::INDEX_HTML)),
        )
        .route(
            "/page.js",
            get(|| asset("text/javascript; charset=utf-8", crate::live::PAGE_JS)),
        )
        .route(
            "/page.css",
            get(|| asset("text/css; charset=utf-8", crate::live::PAGE_CSS)),
        );
    let data = Router::new()
        .route("/v1/uniques", get(uniques))
        .route("/v1/status", get(current_status))
        .route("/v1/info", get(|| json(crate::live::info_json())))
        .route(
            "/v1/windows",
            get(|q| with_params(q, crate::live::windows_json)),
        )
        .route(
            "/v1/groups",
            get(|q| with_params(q, crate::live::groups_json)),
        );
    let metrics = Router::new().route("/metrics", get(metrics));
    // Everything but the probes shares one request rate: a flood is
    // answered 429 cheaply instead of rendered, and the probes still pass.
    let limit = Arc::new(std::sync::Mutex::new(super::server::Rate::new()));
    let limited = || axum::middleware::from_fn_with_state(limit.clone(), rate_limit);
    let (open, data, metrics) = (
        open.route_layer(limited()),
        data.route_layer(limited()),
        metrics.route_layer(limited()),
    );
    let open = open
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    let (data, metrics) = match access.token {
        None => (data, metrics),
        Some(token) => {
            let token: Arc<str> = token.into();
            let guard = || axum::middleware::from_fn_with_state(token.clone(), authorize);
            let metrics = if access.metrics {
                metrics.route_layer(guard())
            } else {
                metrics
            };
            (data.route_layer(guard()), metrics)
        }
    };
    open.merge(data).merge(metrics).with_state(handle)
}

/// Answers `429` beyond the request rate ([`super::server::Rate`]).
async fn rate_limit(
    axum::extract::State(rate): axum::extract::State<Arc<std::sync::Mutex<super::server::Rate>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let allowed = rate.lock().map(|mut r| r.allow()).unwrap_or(true);
    if allowed {
        return next.run(request).await;
    }
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::RETRY_AFTER, "1"),
        ],
        "{\"error\":\"too many requests: try again in a second\"}\n",
    )
        .into_response()
}

/// Lets a request with `Authorization: Bearer <token>` through; any other
/// gets 401 (compared in constant time, so the answer's timing says
/// nothing about how much of a guess was right).
async fn authorize(
    axum::extract::State(token): axum::extract::State<Arc<str>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::WWW_AUTHENTICATE, "Bearer"),
        ],
        "{\"error\":\"this endpoint needs Authorization: Bearer <DISTINCTLY_HTTP_TOKEN>\"}\n",
    )
        .into_response()
}

/// Equal bytes, in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
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

/// A range query, answered by the thread that holds the slices.
async fn uniques(axum::extract::RawQuery(query): axum::extract::RawQuery) -> impl IntoResponse {
    let (status, body) = match parse_query(query.as_deref().unwrap_or("")) {
        Ok(params) => crate::slices::serve::ask(params).await,
        Err(e) => (400, serde_json::json!({ "error": e }).to_string()),
    };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body + "\n",
    )
}

/// The page's own assets only: nothing is loaded from elsewhere.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'";

async fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

/// A JSON answer of the page's endpoints.
async fn json((status, body): crate::live::Answer) -> impl IntoResponse {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body + "\n",
    )
}

/// Parses the query string, then answers with `answer`.
async fn with_params(
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    answer: fn(&[(String, String)]) -> crate::live::Answer,
) -> impl IntoResponse {
    json(match parse_query(query.as_deref().unwrap_or("")) {
        Ok(params) => answer(&params),
        Err(e) => (400, serde_json::json!({ "error": e }).to_string()),
    })
    .await
}

async fn current_status(
    axum::extract::State(handle): axum::extract::State<PrometheusHandle>,
) -> impl IntoResponse {
    json((200, super::status::status_json(&handle.render()))).await
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

/// Longest query string read (a range query needs a few dozen bytes).
const MAX_QUERY_BYTES: usize = 8192;

/// `a=1&b=x%20y` as pairs, `+` as a space; refuses what is not UTF-8
/// after decoding, and over-long strings.
fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(format!("the query string is over {MAX_QUERY_BYTES} bytes"));
    }
    let decode = |s: &str| {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{parse_query, same};

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn query_strings_decode_or_are_refused() {
        let p = parse_query("from=1&to=2026-01-01T00%3A00%3A00Z&group=S%C3%A3o+Paulo&x").unwrap();
        let want = [
            ("from", "1"),
            ("to", "2026-01-01T00:00:00Z"),
            ("group", "São Paulo"),
            ("x", ""),
        ];
        let got: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
        assert!(parse_query("group=%FF").unwrap_err().contains("not UTF-8"));
        assert!(parse_query(&"a".repeat(9000)).unwrap_err().contains("over"));
        assert_eq!(parse_query("").unwrap(), vec![]);
    }
}
