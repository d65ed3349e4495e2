//! Diagnostics on stderr: one line each, never a panic.
//!
//! `eprintln!` panics when stderr cannot be written (`2>/dev/full`); a
//! diagnostic must never take the process down, so [`diag!`] ignores write
//! errors. [`one_line`] prints an error with each cause once: libraries
//! differ on whether a message repeats its source, so a cause whose text the
//! line already holds is skipped.

/// Writes `distinctly: <message>` to stderr, ignoring write errors.
#[macro_export]
macro_rules! diag {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "distinctly: {}", format_args!($($arg)*));
    }};
}

/// Writes text to stderr as is, ignoring write errors.
pub fn to_stderr(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// `error: cause: cause's cause`, each text once.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("reading {path}: {cause}")]
        Read { path: String, cause: std::io::Error },
        #[error("kafka client: {0}")]
        Repeats(#[source] std::io::Error),
        #[error("wrapped")]
        Chained(#[source] std::io::Error),
    }

    #[test]
    fn each_cause_is_printed_once() {
        let missing = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = Outer::Read {
            path: "/nonexistent".into(),
            cause: missing(),
        };
        assert_eq!(one_line(&e), "reading /nonexistent: entity not found");
        assert_eq!(
            one_line(&Outer::Repeats(missing())),
            "kafka client: entity not found"
        );
        assert_eq!(
            one_line(&Outer::Chained(missing())),
            "wrapped: entity not found"
        );
    }
}
