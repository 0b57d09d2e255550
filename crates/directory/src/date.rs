//! Calendar dates for autoresponder periods: `YYYY-MM-DD`, nothing more, so
//! no date/time crate is needed.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::DirectoryError;

/// A proleptic Gregorian calendar date. Field order makes the derived `Ord`
/// chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// A valid date, or `None` (month 13, February 30, year 0...).
    pub fn new(year: u16, month: u8, day: u8) -> Option<Date> {
        let valid = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month);
        valid.then_some(Date { year, month, day })
    }

    pub fn year(self) -> u16 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn day(self) -> u8 {
        self.day
    }

    /// Today in UTC.
    pub fn today_utc() -> Date {
        Date::from_days_since_epoch(now_unix().max(0) as u64 / 86_400)
    }

    /// The date at `unix` in the server's time zone (`TZ`, else
    /// /etc/localtime): autoresponder periods are whole days there.
    pub fn local(unix: i64) -> Date {
        let offset = local_offset(unix);
        Date::from_days_since_epoch(unix.saturating_add(offset).max(0) as u64 / 86_400)
    }

    /// Days since 1970-01-01 to a civil date (H. Hinnant's `civil_from_days`,
    /// restricted to dates on or after the epoch).
    fn from_days_since_epoch(days: u64) -> Date {
        let z = days + 719_468;
        let era = z / 146_097;
        let day_of_era = z % 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + u64::from(month <= 2);
        Date {
            year: u16::try_from(year).unwrap_or(9999).min(9999),
            // Both are small by construction: month in 1..=12, day in 1..=31.
            month: u8::try_from(month).unwrap_or(12),
            day: u8::try_from(day).unwrap_or(31),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The server's UTC offset in seconds at `unix`, from the C library's
/// time zone database.
pub fn local_offset(unix: i64) -> i64 {
    let t: libc::time_t = unix as libc::time_t;
    // SAFETY: localtime_r only writes the struct we pass; a zeroed tm is a
    // valid value of it.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff as i64
    }
}

/// An RFC 5322 `Date:` value in the server's time zone.
pub fn rfc5322_date(unix: i64) -> String {
    rfc5322_date_at(unix, local_offset(unix))
}

/// An RFC 5322 date-time at `offset` seconds from UTC.
pub fn rfc5322_date_at(unix: i64, offset: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let local = unix.saturating_add(offset).max(0);
    let days = local / 86_400;
    let secs = local % 86_400;
    let date = Date::from_days_since_epoch(days as u64);
    let sign = if offset < 0 { '-' } else { '+' };
    let off = offset.unsigned_abs() / 60;
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        DAYS[(days % 7) as usize],
        date.day,
        MONTHS[usize::from(date.month.clamp(1, 12) - 1)],
        date.year,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        off / 60,
        off % 60
    )
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

impl FromStr for Date {
    type Err = DirectoryError;

    /// Strictly `YYYY-MM-DD` (RFC 3339 full-date), zero-padded.
    fn from_str(text: &str) -> Result<Date, DirectoryError> {
        let invalid = || DirectoryError::InvalidDate(text.to_owned());
        let bytes = text.as_bytes();
        let shape_ok = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shape_ok {
            return Err(invalid());
        }
        let year = text[0..4].parse().map_err(|_| invalid())?;
        let month = text[5..7].parse().map_err(|_| invalid())?;
        let day = text[8..10].parse().map_err(|_| invalid())?;
        Date::new(year, month, day).ok_or_else(invalid)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let date: Date = "2026-02-28".parse().unwrap();
        assert_eq!((date.year(), date.month(), date.day()), (2026, 2, 28));
        assert_eq!(date.to_string(), "2026-02-28");
        assert!("2024-02-29".parse::<Date>().is_ok());
    }

    #[test]
    fn rejects_invalid_dates() {
        for bad in [
            "2026-02-29",
            "2100-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-04-31",
            "0000-01-01",
            "2026-1-01",
            "2026/01/01",
            "26-01-01",
            "2026-01-01x",
            "+026-01-01",
            "",
        ] {
            assert!(bad.parse::<Date>().is_err(), "{bad}");
        }
    }

    #[test]
    fn orders_chronologically() {
        let a: Date = "2025-12-31".parse().unwrap();
        let b: Date = "2026-01-01".parse().unwrap();
        assert!(a < b);
    }

    #[test]
    fn formats_rfc5322_dates() {
        assert_eq!(rfc5322_date_at(0, 0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date_at(951_782_400, 0),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
        assert_eq!(
            rfc5322_date_at(951_782_400, 3600),
            "Tue, 29 Feb 2000 01:00:00 +0100"
        );
        assert_eq!(
            rfc5322_date_at(951_782_400, -5400),
            "Mon, 28 Feb 2000 22:30:00 -0130"
        );
    }

    #[test]
    fn converts_days_since_epoch() {
        assert_eq!(Date::from_days_since_epoch(0).to_string(), "1970-01-01");
        assert_eq!(
            Date::from_days_since_epoch(19_723).to_string(),
            "2024-01-01"
        );
        assert_eq!(
            Date::from_days_since_epoch(19_782).to_string(),
            "2024-02-29"
        );
        assert_eq!(
            Date::from_days_since_epoch(11_016).to_string(),
            "2000-02-29"
        );
        assert!(Date::today_utc().year() >= 2024);
    }
}
