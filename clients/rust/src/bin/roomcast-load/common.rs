//! Pieces both modes share: the timeline, seeded RNGs, the CPU sampler, error
//! samples and number formatting.

use std::time::Duration;

use hdrhistogram::Histogram;
use rand::{rngs::StdRng, SeedableRng};
use roomcast_client::stats;
use tokio::time::Instant;

/// How many distinct error messages the summary shows.
const MAX_ERROR_SAMPLES: usize = 5;

/// When things happen, shared by all tasks.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// Start of the run (first connection).
    pub start: Instant,
    /// Time between two connection starts.
    pub connect_gap: Duration,
    /// Measuring starts.
    pub measure_start: Instant,
    /// Measuring ends; tasks stop sending.
    pub deadline: Instant,
}

impl Timeline {
    /// Connections open `1 / connect_rate` apart from now on; the warmup starts
    /// when the last one is due, then `duration` seconds are measured.
    pub fn new(connections: u64, connect_rate: f64, warmup: f64, duration: f64) -> Self {
        let connect_gap = Duration::from_secs_f64(1.0 / connect_rate);
        let start = Instant::now() + Duration::from_millis(10);
        let measure_start = start
            + connect_gap.mul_f64(connections.saturating_sub(1) as f64)
            + Duration::from_secs_f64(warmup);
        Self {
            start,
            connect_gap,
            measure_start,
            deadline: measure_start + Duration::from_secs_f64(duration),
        }
    }

    /// How long opening all connections takes.
    pub fn ramp(&self, connections: u64) -> Duration {
        self.connect_gap
            .mul_f64(connections.saturating_sub(1) as f64)
    }

    /// When connection number `slot` (0-based) opens.
    pub fn connect_at(&self, slot: u64) -> Instant {
        self.start + self.connect_gap.mul_f64(slot as f64)
    }

    /// True inside the measured window.
    pub fn in_window(&self, t: Instant) -> bool {
        t >= self.measure_start && t < self.deadline
    }
}

/// SplitMix64 finaliser: spreads (seed, a, b) into independent seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG of simulated client `b` of room/doc `a` under `seed`.
pub fn seeded_rng(seed: u64, a: u32, b: u32) -> StdRng {
    StdRng::seed_from_u64(mix(mix(mix(seed) ^ u64::from(a)) ^ u64::from(b)))
}

/// Raises the open-file soft limit so that `needed` sockets fit (best effort).
pub fn raise_fd_limit(needed: u64) {
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let want = (needed as libc::rlim_t).min(lim.rlim_max);
        if lim.rlim_cur < want {
            lim.rlim_cur = want;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// CPU figures of the measured window.
pub struct CpuFigures {
    pub load_percent: f64,
    pub server_percent: Option<f64>,
    /// Server resident memory at the end of the window.
    pub server_rss: Option<u64>,
}

/// Samples CPU at the start and end of the measured window.
pub async fn sample_cpu(tl: Timeline, server_pid: Option<u32>) -> CpuFigures {
    tokio::time::sleep_until(tl.measure_start).await;
    let wall0 = Instant::now();
    let self0 = stats::process_cpu_time();
    let server0 = server_pid.and_then(stats::other_process_cpu_time);
    tokio::time::sleep_until(tl.deadline).await;
    let wall = wall0.elapsed().as_secs_f64().max(1e-9);
    let self1 = stats::process_cpu_time();
    let server1 = server_pid.and_then(stats::other_process_cpu_time);
    let percent = |a: Duration, b: Duration| b.saturating_sub(a).as_secs_f64() / wall * 100.0;
    CpuFigures {
        load_percent: percent(self0, self1),
        server_percent: match (server0, server1) {
            (Some(a), Some(b)) => Some(percent(a, b)),
            _ => None,
        },
        server_rss: server_pid.and_then(stats::process_rss_bytes),
    }
}

/// The first few distinct error messages, with how often each occurred.
#[derive(Default)]
pub struct ErrorSamples(Vec<(String, u64)>);

impl ErrorSamples {
    /// Counts `what: message` (kept only if among the first distinct ones).
    pub fn note(&mut self, what: &str, message: String) {
        let text = format!("{what}: {message}");
        if let Some(entry) = self.0.iter_mut().find(|(m, _)| *m == text) {
            entry.1 += 1;
        } else if self.0.len() < MAX_ERROR_SAMPLES {
            self.0.push((text, 1));
        }
    }

    /// Prints `  N x message` lines to stdout (`to_stderr`: to stderr).
    pub fn print(&self, to_stderr: bool) {
        for (message, count) in &self.0 {
            if to_stderr {
                eprintln!("  {count} x {message}");
            } else {
                println!("  {count} x {message}");
            }
        }
    }
}

pub fn round_to(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// A flag value as a JSON number: an integer when whole.
pub fn number_json(s: f64) -> serde_json::Value {
    if s.fract() == 0.0 && s < 1e15 {
        serde_json::json!(s as u64)
    } else {
        serde_json::json!(s)
    }
}

/// Largest value of a microsecond histogram in ms (0 when empty).
pub fn max_ms(h: &Histogram<u64>) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.max() as f64 / 1000.0
    }
}
