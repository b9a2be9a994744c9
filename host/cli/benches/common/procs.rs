//! The systems a benchmark measures: which ones were asked for, where they
//! listen, and the CPU their processes used.

use std::net::SocketAddr;

/// Whether `FHIRGATE_BENCH_SYSTEMS` (e.g. `B,C`) selects system `key`; all
/// are selected when it is unset.
pub fn system_selected(key: &str) -> bool {
    std::env::var("FHIRGATE_BENCH_SYSTEMS").map_or(true, |only| only.split(',').any(|k| k.trim() == key))
}

/// The loopback address of a base URL (`http://127.0.0.1:port[/path]`).
pub fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").split('/').next().unwrap().parse().expect("a loopback address")
}

/// The kernel's clock ticks per second, the unit of `/proc/<pid>/stat`.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The fields of `/proc/<pid>/stat` after the command name (the state is
/// the first); empty when the process is gone.
pub fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().map(str::to_owned).collect()).unwrap_or_default()
}

/// CPU seconds `pid` used so far (user + system, all its threads).
pub fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let fields = stat_fields(pid);
    // utime and stime are fields 14 and 15; 12 and 13 after the name.
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (field(11) + field(12)) / ticks
}
