//! Time as the engine sees it: millisecond Unix timestamps from an injectable clock,
//! formatted as RFC 3339 in UTC.

use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch, UTC.
pub type Timestamp = i64;

/// Where every timestamp in the engine comes from, so tests can fix time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that returns a set time and advances by a fixed step on every reading.
#[derive(Debug)]
pub struct FixedClock {
    now: AtomicI64,
    step: i64,
}

impl FixedClock {
    /// Starts at `start` and advances `step` milliseconds per reading.
    pub fn new(start: Timestamp, step: i64) -> Self {
        FixedClock {
            now: AtomicI64::new(start),
            step,
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.now.fetch_add(self.step, Ordering::Relaxed)
    }
}

/// Formats a timestamp as RFC 3339 in UTC with millisecond precision,
/// e.g. `2026-11-28T14:03:07.250Z`.
pub fn format_rfc3339(ts: Timestamp) -> String {
    let millis = ts.rem_euclid(1000);
    let secs = ts.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); the
/// well-known era-based conversion.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ts: Timestamp, expected: &str) {
        assert_eq!(format_rfc3339(ts), expected);
    }

    #[test]
    fn formats_known_instants() {
        check(0, "1970-01-01T00:00:00.000Z");
        check(951_782_400_000, "2000-02-29T00:00:00.000Z");
        check(1_795_874_587_250, "2026-11-28T14:03:07.250Z");
    }
}
