//! Durations in specs: integer seconds or strings such as `"90s"`, `"10m"`, `"2h"`, `"7d"`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole number of seconds. Serialized canonically as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

impl Duration {
    /// Parses `"90"`, `"90s"`, `"10m"`, `"2h"` or `"7d"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => text.split_at(i),
            None => (text, "s"),
        };
        let value: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a duration"))?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("`{text}` has an unknown unit `{unit}`")),
        };
        value
            .checked_mul(scale)
            .map(Duration)
            .ok_or_else(|| format!("`{text}` is too long"))
    }

    /// As a standard-library duration.
    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s > 0 && s.is_multiple_of(86_400) {
            write!(f, "{}d", s / 86_400)
        } else if s > 0 && s.is_multiple_of(3600) {
            write!(f, "{}h", s / 3600)
        } else if s > 0 && s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration: integer seconds or a string like \"10m\", \"2h\", \"7d\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration)
                    .map_err(|_| E::custom(format!("a duration cannot be negative, got {v}")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<u64, ()>) {
        assert_eq!(
            Duration::parse(text).map(|d| d.0).map_err(|_| ()),
            expected,
            "{text}"
        );
    }

    #[test]
    fn parses_units() {
        check("90", Ok(90));
        check("90s", Ok(90));
        check("10m", Ok(600));
        check("2h", Ok(7200));
        check("7d", Ok(604_800));
        check("2w", Err(()));
        check("h", Err(()));
    }
}
