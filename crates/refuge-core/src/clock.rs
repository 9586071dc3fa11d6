//! Time, injected. Logic never reads the wall clock itself: it asks a [`Clock`].

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use time::{Date, OffsetDateTime};

/// An instant, in microseconds since the Unix epoch (UTC). In JSON it is RFC 3339 text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
            .map(Self::from_datetime)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "expected an RFC 3339 time such as 2026-11-22T16:45:00Z; found \"{s}\""
                ))
            })
    }
}

impl Timestamp {
    /// From microseconds since the Unix epoch.
    pub const fn from_micros(us: i64) -> Self {
        Self(us)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Milliseconds since the Unix epoch (used for UUIDv7).
    pub const fn as_millis(self) -> u64 {
        if self.0 < 0 {
            0
        } else {
            (self.0 / 1000) as u64
        }
    }

    /// From a `time` date-time.
    pub fn from_datetime(t: OffsetDateTime) -> Self {
        let us = t.unix_timestamp_nanos() / 1000;
        Self(i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX }))
    }

    /// As a UTC date-time; `None` only for instants outside the years -9999..=9999.
    pub fn to_datetime(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000).ok()
    }

    /// The UTC calendar date of this instant.
    pub fn date(self) -> Option<Date> {
        self.to_datetime().map(OffsetDateTime::date)
    }

    /// RFC 3339 text, e.g. `2026-11-22T16:45:00.123456Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| format!("@{}us", self.0))
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;

    /// Today's date in UTC.
    fn today(&self) -> Date {
        self.now().date().unwrap_or(Date::MIN)
    }
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(OffsetDateTime::now_utc())
    }
}

/// A clock that stands still until told to move; for tests and reproducible runs.
#[derive(Debug)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    /// A clock showing `at`.
    pub fn new(at: Timestamp) -> Self {
        Self(AtomicI64::new(at.as_micros()))
    }

    /// A clock showing midnight UTC at the start of `date`.
    pub fn at_date(date: Date) -> Self {
        Self::new(Timestamp::from_datetime(date.midnight().assume_utc()))
    }

    /// Move the clock forward by `us` microseconds.
    pub fn advance_micros(&self, us: i64) {
        self.0.fetch_add(us, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn fixed_clock_is_fixed_and_advances() {
        let c = FixedClock::at_date(date!(2026 - 11 - 22));
        assert_eq!(c.today(), date!(2026 - 11 - 22));
        assert_eq!(c.now(), c.now());
        c.advance_micros(86_400_000_000);
        assert_eq!(c.today(), date!(2026 - 11 - 23));
        assert_eq!(c.now().to_rfc3339(), "2026-11-23T00:00:00Z");
        let j = serde_json::to_string(&c.now()).unwrap();
        assert_eq!(j, "\"2026-11-23T00:00:00Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&j).unwrap(), c.now());
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }
}
