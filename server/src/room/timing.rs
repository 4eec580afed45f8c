//! Tick timing: how long each tick took and how late it started against the
//! ideal schedule (`start + n * period`). Kept per room as histograms.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Longest duration the histograms resolve (longer values are clamped to it).
const MAX_TRACKED: Duration = Duration::from_secs(60);

/// Per-room tick timing figures.
#[derive(Debug, Clone)]
pub struct TickTiming {
    /// Tick durations, microseconds.
    duration_us: Histogram<u64>,
    /// Start lateness against the schedule, microseconds.
    lateness_us: Histogram<u64>,
    /// Ticks that started a whole period or more late.
    overruns: u64,
    /// The tick period, to judge overruns.
    period: Duration,
}

/// A summary of [`TickTiming`] for inspection.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TickTimingSummary {
    /// Ticks measured.
    pub ticks: u64,
    /// Median tick duration, microseconds.
    pub duration_p50_us: u64,
    /// 99th percentile tick duration, microseconds.
    pub duration_p99_us: u64,
    /// 99th percentile lateness, microseconds.
    pub lateness_p99_us: u64,
    /// Largest lateness, microseconds.
    pub lateness_max_us: u64,
    /// Ticks a whole period or more late.
    pub overruns: u64,
}

fn histogram() -> Histogram<u64> {
    // Cannot fail: the bounds are constants within hdrhistogram's accepted range.
    Histogram::new_with_bounds(1, MAX_TRACKED.as_micros() as u64, 3)
        .expect("valid histogram bounds")
}

impl TickTiming {
    /// Empty figures for a room ticking every `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            duration_us: histogram(),
            lateness_us: histogram(),
            overruns: 0,
            period,
        }
    }

    /// Records one tick.
    pub fn record(&mut self, duration: Duration, lateness: Duration) {
        self.duration_us
            .saturating_record(duration.as_micros().max(1) as u64);
        self.lateness_us
            .saturating_record(lateness.as_micros().max(1) as u64);
        if lateness >= self.period {
            self.overruns += 1;
        }
    }

    /// The figures so far.
    pub fn summary(&self) -> TickTimingSummary {
        TickTimingSummary {
            ticks: self.duration_us.len(),
            duration_p50_us: self.duration_us.value_at_quantile(0.5),
            duration_p99_us: self.duration_us.value_at_quantile(0.99),
            lateness_p99_us: self.lateness_us.value_at_quantile(0.99),
            lateness_max_us: self.lateness_us.max(),
            overruns: self.overruns,
        }
    }
}
