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

/// Parses what [`format_rfc3339`] writes (`YYYY-MM-DDTHH:MM:SS.mmmZ`, the
/// fraction optional). Returns `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let bytes = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let millis = match &text[19..] {
        "Z" => 0,
        rest if rest.len() == 5 && rest.starts_with('.') && rest.ends_with('Z') => num(20..23)?,
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + millis)
}

/// A proleptic Gregorian date to days since 1970-01-01 (inverse of
/// [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

    #[test]
    fn parses_what_it_formats() {
        for ts in [0, 951_782_400_000, 1_795_874_587_250, -86_400_001] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ts)), Some(ts));
        }
        assert_eq!(
            parse_rfc3339("2026-11-28T14:03:07Z"),
            Some(1_795_874_587_000)
        );
        assert_eq!(parse_rfc3339("2026-11-28 14:03:07Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
