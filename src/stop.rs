//! How `count` stops on SIGINT and SIGTERM: the first signal ends reading as
//! if the input had ended (open windows are emitted, the summary printed,
//! then the process exits with 128 + the signal number); a second signal
//! exits at once.
//!
//! A blocking read on a pipe would not notice the first signal (the handler
//! restarts the read), so stream inputs wait in `poll` on both their file
//! descriptor and a self-pipe that the handler writes to: a signal wakes the
//! reader, which then reports [`Stopped`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The signals that stop `count`.
pub const SIGNALS: [i32; 2] = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];

/// A stop request shared with the signal handlers; cloning shares it.
#[derive(Clone, Default)]
pub struct Stop {
    inner: Option<Arc<Inner>>,
    /// How long a stream read waits for data before it hands back what it
    /// has ([`Stop::with_pause`]); `None`: until data or a signal.
    pause: Option<Duration>,
}

struct Inner {
    /// The first signal's number, 0 until one arrives.
    signal: Arc<AtomicUsize>,
    /// Read end of the self-pipe; readable once a signal arrived.
    wake: UnixStream,
}

/// The error a stream read reports when a stop was requested.
#[derive(Debug, thiserror::Error)]
#[error("stopped by a signal")]
pub struct Stopped;

impl Stop {
    /// A stop that never comes (library callers, tests).
    pub fn never() -> Stop {
        Stop::default()
    }

    /// Installs the handlers for [`SIGNALS`]. Call once, early.
    pub fn on_signals() -> io::Result<Stop> {
        let signal = Arc::new(AtomicUsize::new(0));
        let (wake, notify) = UnixStream::pair()?;
        notify.set_nonblocking(true)?;
        let armed = Arc::new(AtomicBool::new(false));
        for sig in SIGNALS {
            // Registration order is call order: the exit checks the flag
            // that only the first signal sets.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, armed.clone())?;
            signal_hook::flag::register(sig, armed.clone())?;
            signal_hook::flag::register_usize(sig, signal.clone(), sig as usize)?;
            signal_hook::low_level::pipe::register(sig, notify.try_clone()?)?;
        }
        Ok(Stop {
            inner: Some(Arc::new(Inner { signal, wake })),
            pause: None,
        })
    }

    /// The same stop, with stream reads that give up waiting for data
    /// after `pause` (so that a reader of an idle pipe can do other work:
    /// `count --serve` answers queries).
    pub fn with_pause(&self, pause: Duration) -> Stop {
        Stop {
            inner: self.inner.clone(),
            pause: Some(pause),
        }
    }

    /// See [`Stop::with_pause`].
    pub fn pause(&self) -> Option<Duration> {
        self.pause
    }

    /// The signal that asked to stop, if one did.
    pub fn signal(&self) -> Option<i32> {
        let inner = self.inner.as_ref()?;
        match inner.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }

    /// Waits until `fd` has data (or its end): `Ok(true)`; `Ok(false)`
    /// when `timeout` passed first; `Err(Stopped)` once a stop was
    /// requested instead.
    pub fn wait_readable(&self, fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
        let Some(inner) = &self.inner else {
            return Ok(true);
        };
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        loop {
            if self.signal().is_some() {
                return Err(io::Error::other(Stopped));
            }
            let mut fds = [
                libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: inner.wake.as_fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of two initialized pollfd
            // structs that outlives the call; both descriptors are open
            // (borrowed for the call's duration).
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if fds[1].revents != 0 {
                continue; // the flag is set before the pipe is written
            }
            if fds[0].revents != 0 {
                return Ok(true);
            }
            if n == 0 {
                return Ok(false);
            }
        }
    }
}

/// True when `e` is the error of a read ended by a stop request.
pub fn is_stopped(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Stopped>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_read_is_recognized() {
        assert!(is_stopped(&io::Error::other(Stopped)));
        assert!(!is_stopped(&io::Error::other("something else")));
        assert!(!is_stopped(&io::Error::from(io::ErrorKind::BrokenPipe)));
        assert_eq!(Stop::never().signal(), None);
    }
}
