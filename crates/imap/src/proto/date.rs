//! IMAP dates (RFC 3501 §9 `date`, `date-time`) to and from Unix seconds,
//! without a calendar crate: civil-from-days arithmetic on the proleptic
//! Gregorian calendar.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `d-Mon-yyyy` → days since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let d: i64 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let m = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(mon))? as i64 + 1;
    let y: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=31).contains(&d) || !(1..=9999).contains(&y) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// The date of an RFC 5322 Date header (`[Day, ]d Mon yyyy ...`) in days
/// since the epoch; time and zone are ignored as SENT* searches want
/// (RFC 3501 §6.4.4).
pub fn parse_header_date(s: &str) -> Option<i64> {
    let s = s.split_once(',').map_or(s, |(_, rest)| rest);
    let mut words = s.split_ascii_whitespace();
    let (d, m, y) = (words.next()?, words.next()?, words.next()?);
    parse_date(&format!("{d}-{m}-{y}"))
}

/// `dd-Mon-yyyy hh:mm:ss +zzzz` → Unix seconds.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let (date, rest) = s.trim_start().split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let days = parse_date(date)?;
    let mut t = time.split(':');
    let mut field = |max: i64| -> Option<i64> {
        let v: i64 = t.next()?.parse().ok()?;
        (0..=max).contains(&v).then_some(v)
    };
    let (h, mi, sec) = (field(23)?, field(59)?, field(60)?);
    let zone = zone.as_bytes();
    if zone.len() != 5 || !zone[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sign = match zone[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zh = i64::from(zone[1] - b'0') * 10 + i64::from(zone[2] - b'0');
    let zm = i64::from(zone[3] - b'0') * 10 + i64::from(zone[4] - b'0');
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - sign * (zh * 3600 + zm * 60))
}

/// Unix seconds → `dd-Mon-yyyy hh:mm:ss +0000` (INTERNALDATE, in UTC).
pub fn format_date_time(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{d:02}-{}-{y:04} {:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since the epoch of a Unix time, in UTC (SEARCH SINCE/BEFORE/ON).
pub fn day_of(secs: i64) -> i64 {
    secs.div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = parse_date_time("17-Jul-1996 02:44:25 -0700").unwrap();
        assert_eq!(t, 837_596_665);
        assert_eq!(format_date_time(t), "17-Jul-1996 09:44:25 +0000");
        assert_eq!(parse_date_time(" 1-Jan-1970 00:00:00 +0000"), Some(0));
        assert_eq!(parse_date("1-Feb-1994"), Some(8797));
        assert_eq!(format_date_time(951_782_400), "29-Feb-2000 00:00:00 +0000");
        assert_eq!(
            parse_header_date("Tue, 1 Feb 1994 21:52:25 -0800 (PST)"),
            Some(8797)
        );
        assert_eq!(parse_header_date("1 Feb 1994 00:00 +0000"), Some(8797));
        assert_eq!(parse_header_date("garbage"), None);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "32-Jan-2000", "1-Foo-2000", "1-Jan-2000-1", "x"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        for bad in [
            "1-Jan-2000 25:00:00 +0000",
            "1-Jan-2000 00:00:00 0000",
            "1-Jan-2000 00:00 +0000",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad}");
        }
    }
}
