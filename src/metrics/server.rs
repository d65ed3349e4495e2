//! The HTTP server's connections, bounded: at most [`MAX_CONNECTIONS`] at
//! once (more wait in the listen backlog, not in memory), request heads of
//! at most [`MAX_HEAD_BYTES`], a head that does not arrive within
//! [`HEAD_TIMEOUT`] closes its connection (slow or idle clients; sooner,
//! [`BUSY_HEAD_TIMEOUT`], once half the connections are taken), and no
//! connection lives longer than [`MAX_CONNECTION_AGE`] (a client that never
//! reads its answer). So a port open to curious or hostile clients costs a
//! bounded amount of memory and never the counting thread's time.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

/// Connections served at once; as many more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// The longest request line and headers read (a range query needs a few
/// dozen bytes; the query string itself is refused beyond 8 KB).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Time for a request's head to arrive, and for the next one on a kept-alive
/// connection.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The same once half the connections are taken: under a flood of idle
/// or slow connections, the ones that keep others waiting go sooner.
pub const BUSY_HEAD_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a connection is served (then closed; clients reconnect).
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(120);
/// Pause after a failed accept (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Requests answered per second, beyond the probes (a dashboard asks a
/// few per poll, Prometheus one per scrape); beyond, `429`.
pub const REQUESTS_PER_SECOND: f64 = 200.0;
/// Requests that may come at once after a quiet spell.
const BURST: f64 = 400.0;

/// A token bucket of [`REQUESTS_PER_SECOND`]: the time the HTTP thread
/// takes from the counting thread's cores stays bounded however many
/// clients ask.
pub struct Rate {
    tokens: f64,
    at: std::time::Instant,
}

impl Rate {
    pub fn new() -> Rate {
        Rate {
            tokens: BURST,
            at: std::time::Instant::now(),
        }
    }

    /// Whether one more request may be answered now.
    pub fn allow(&mut self) -> bool {
        let now = std::time::Instant::now();
        let earned = now.duration_since(self.at).as_secs_f64() * REQUESTS_PER_SECOND;
        self.tokens = (self.tokens + earned).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Default for Rate {
    fn default() -> Self {
        Self::new()
    }
}

/// A listener on `addr` whose backlog holds [`MAX_CONNECTIONS`] more
/// (std's holds 128: beyond, clients would retry their handshake for
/// seconds), after raising this process's file limit for them.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    raise_file_limit();
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(MAX_CONNECTIONS as i32)?;
    Ok(socket.into())
}

/// Raises the soft limit of open files to the hard one: each connection
/// is a descriptor, and the common soft limit (1024) is below
/// [`MAX_CONNECTIONS`] plus the Kafka clients' sockets.
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit; raising the soft limit up to
        // the hard one needs no privilege, and a failure changes nothing.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
}

/// Serves `app` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, app: Router) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let head_timeout = if slots.available_permits() < MAX_CONNECTIONS / 2 {
            BUSY_HEAD_TIMEOUT
        } else {
            HEAD_TIMEOUT
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                app.clone().call(request)
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(head_timeout)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(socket), service);
            // Over age, the connection is dropped, and its socket closed.
            let _ = tokio::time::timeout(MAX_CONNECTION_AGE, connection).await;
            drop(permit);
        });
    }
}
