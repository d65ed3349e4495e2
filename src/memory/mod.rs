//! Process memory from `/proc` (Linux): resident set, its peak, and what
//! the system could still hand out. Shared by the metrics (resident memory
//! gauge) and the bench (peak RSS, whether `exact` fits at 10⁸). Elsewhere
//! every function returns `None`. Heap bytes as requested, per thread, come
//! from the counting allocator in [`alloc`].

pub mod alloc;

/// A field in kB from a `/proc` status file (`VmHWM`, `MemAvailable`, ...),
/// in bytes.
fn proc_kb(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..]
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The process's peak resident set (`VmHWM`), where `/proc` exists.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_kb("/proc/self/status", "VmHWM")
}

/// The process's current resident set (`VmRSS`).
pub fn rss_bytes() -> Option<u64> {
    proc_kb("/proc/self/status", "VmRSS")
}

/// Memory the kernel could hand out now without swapping (`MemAvailable`).
pub fn mem_available_bytes() -> Option<u64> {
    proc_kb("/proc/meminfo", "MemAvailable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_parse() {
        if std::path::Path::new("/proc/self/status").exists() {
            let rss = rss_bytes().unwrap();
            assert!(rss > 1 << 20 && rss < 1 << 40, "{rss}");
            assert!(peak_rss_bytes().unwrap() >= rss);
            assert!(mem_available_bytes().unwrap() > 0);
        }
    }
}
