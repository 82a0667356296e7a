//! Helpers both sandbox bench binaries use (included by path).

use std::path::PathBuf;

/// A first-party agent component by file name: Rust agents in cargo's
/// folder, Python and TypeScript ones in `guests/`.
pub fn agent_path(file: &str) -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../agents/target");
    let path = ["wasm32-wasip2/release", "guests"]
        .iter()
        .map(|dir| built.join(dir).join(file))
        .find(|p| p.is_file());
    path.unwrap_or_else(|| panic!("{file} missing: run scripts/build-agents"))
}

/// A `kB` line of `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Peak resident memory of this process since the last reset, in MiB.
pub fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// Current resident memory of this process, in MiB.
pub fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// Starts a new peak for [`peak_rss_mib`].
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
