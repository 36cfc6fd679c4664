//! The one timestamp format: RFC 3339 in UTC with milliseconds (`2026-12-02T13:42:16.123Z`).
//! Fixed width, so timestamps also sort correctly as strings in SQLite and in the UI.

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ts_rs::TS)]
#[ts(type = "string")]
pub struct Timestamp(OffsetDateTime);

const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::millis(OffsetDateTime::now_utc())
    }

    pub fn from_system(t: SystemTime) -> Timestamp {
        Timestamp::millis(OffsetDateTime::from(t))
    }

    /// Parses any RFC 3339 timestamp (older files carry nanoseconds or an offset).
    pub fn parse(text: &str) -> Result<Timestamp, time::error::Parse> {
        OffsetDateTime::parse(text, &Rfc3339)
            .map(|t| Timestamp::millis(t.to_offset(UtcOffset::UTC)))
    }

    /// Whole milliseconds, so a value survives a round trip through its text unchanged.
    fn millis(t: OffsetDateTime) -> Timestamp {
        Timestamp(
            t.replace_nanosecond(u32::from(t.millisecond()) * 1_000_000)
                .unwrap_or(t),
        )
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Seconds from `self` to `later`, never negative.
    pub fn seconds_until(self, later: Timestamp) -> u64 {
        u64::try_from((later.0 - self.0).whole_seconds()).unwrap_or(0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(FORMAT) {
            Ok(s) => f.write_str(&s),
            // Only years outside 0..=9999 fail to format, which no clock produces.
            Err(_) => write!(f, "{}", self.0.unix_timestamp()),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(d)?;
        Timestamp::parse(&text).map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not an RFC 3339 timestamp: {e}"))
        })
    }
}

impl JsonSchema for Timestamp {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "date-time"})
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn formats_fixed_width_utc_millis_and_round_trips() {
        let t = Timestamp::parse("2026-12-02T14:42:16.123456789+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-12-02T13:42:16.123Z");
        let whole = Timestamp::parse("2026-12-02T13:42:16Z").unwrap();
        assert_eq!(whole.to_string(), "2026-12-02T13:42:16.000Z");
        let back: Timestamp = serde_json::from_value(serde_json::to_value(whole).unwrap()).unwrap();
        assert_eq!(back, whole);
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn system_times_keep_whole_milliseconds() {
        let t = Timestamp::from_system(SystemTime::now());
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }
}
