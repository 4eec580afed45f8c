//! Figures for the load tool: latency histograms in microseconds and process CPU.

use std::time::Duration;

use hdrhistogram::Histogram;

/// A latency histogram from 1 µs to 60 s with 3 significant figures.
pub fn latency_histogram() -> Histogram<u64> {
    // Cannot fail: constant bounds within hdrhistogram's range.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Records a duration in microseconds (clamped to the histogram's range).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_micros().clamp(1, 60_000_000) as u64);
}

/// Milliseconds at quantile `q` of a microsecond histogram (0 when empty).
pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// CPU time (user + system) this process has used so far.
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer is always accepted.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time (user + system) of another process, from `/proc/{pid}/stat` (Linux).
pub fn other_process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th
    // and 15th fields overall, i.e. the 12th and 13th after the name.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks as f64,
    ))
}

/// Resident set size of a process in bytes, from `/proc/{pid}/status` (Linux).
pub fn process_rss_bytes(pid: u32) -> Option<u64> {
    status_kb_field(pid, "VmRSS:")
}

/// Peak resident set size of a process over its whole life so far (`VmHWM`), in
/// bytes, from `/proc/{pid}/status` (Linux).
pub fn process_peak_rss_bytes(pid: u32) -> Option<u64> {
    status_kb_field(pid, "VmHWM:")
}

/// A `kB` field of `/proc/{pid}/status`, in bytes.
fn status_kb_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
