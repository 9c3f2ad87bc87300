//! Times as the person at the desk reads them: in the desktop's own time zone (`TZ`, else
//! `/etc/localtime`, as the C library finds it), with the zone's abbreviation, and with the
//! date when it is not today. Results keep the instant (Unix milliseconds), so a result
//! remembered from an earlier start shows in the zone and on the day it is read.
//!
//! The pure core, [`when`], takes the zone and "now" as arguments for the tests.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// `at_ms` as shown beside a result, read at `now_ms` in the desktop's zone.
pub fn local(at_ms: i64, now_ms: i64) -> String {
    when(at_ms, now_ms, &TimeZone::system())
}

/// `at_ms` in `tz`: `HH:MM:SS ZONE` on the day of `now_ms`, `YYYY-MM-DD HH:MM:SS ZONE`
/// on any other day. An instant out of range shows as its milliseconds.
pub fn when(at_ms: i64, now_ms: i64, tz: &TimeZone) -> String {
    let (Ok(at), Ok(now)) = (
        Timestamp::from_millisecond(at_ms),
        Timestamp::from_millisecond(now_ms),
    ) else {
        return format!("{at_ms} ms after 1970");
    };
    let at = at.to_zoned_datetime(tz.clone());
    let now = now.to_zoned_datetime(tz.clone());
    if at.date() == now.date() {
        at.strftime("%H:%M:%S %Z").to_string()
    } else {
        at.strftime("%Y-%m-%d %H:%M:%S %Z").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-04T18:30:05Z.
    const AT: i64 = 1_796_409_005_000;

    #[test]
    fn the_same_day_shows_the_time_in_the_zone_given() {
        let utc = TimeZone::UTC;
        assert_eq!(when(AT, AT + 1_000, &utc), "18:30:05 UTC");
        let india = TimeZone::posix("IST-5:30").unwrap();
        // 18:30:05 UTC is 00:00:05 the next day in India: "now" an hour later is that day.
        assert_eq!(when(AT, AT + 3_600_000, &india), "00:00:05 IST");
        let new_york = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        assert_eq!(when(AT, AT, &new_york), "13:30:05 EST");
    }

    #[test]
    fn another_day_shows_the_date_too() {
        let utc = TimeZone::UTC;
        assert_eq!(when(AT, AT + 86_400_000, &utc), "2026-12-04 18:30:05 UTC");
        let india = TimeZone::posix("IST-5:30").unwrap();
        // The knock was at 00:00:05 on the 5th in India; a minute before it was still the 4th.
        assert_eq!(when(AT, AT - 60_000, &india), "2026-12-05 00:00:05 IST");
    }

    #[test]
    fn an_instant_out_of_range_does_not_panic() {
        assert_eq!(
            when(i64::MAX, 0, &TimeZone::UTC),
            format!("{} ms after 1970", i64::MAX)
        );
    }
}
