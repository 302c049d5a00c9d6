//! The two date forms WebDAV clients parse: RFC 1123 (`getlastmodified`, `Last-Modified`) and
//! RFC 3339 without fractional seconds (`creationdate`).

use std::time::{SystemTime, UNIX_EPOCH};

/// `Sun, 22 Nov 2026 10:00:00 GMT`. Times outside 1970-9999 are clamped to that range (a
/// file may carry any timestamp; HTTP-dates have four-digit years).
pub fn http_date(t: SystemTime) -> String {
    let mut out = String::with_capacity(29);
    write_http_date(t, &mut out);
    out
}

/// [`http_date`] appended to `out` (by hand: listings write one per entry).
pub fn write_http_date(t: SystemTime, out: &mut String) {
    // 1970-01-01 was a Thursday.
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = Civil::from(t);
    out.push_str(WEEKDAYS[(c.days % 7) as usize]);
    out.push_str(", ");
    push_2(out, c.day);
    out.push(' ');
    out.push_str(MONTHS[(c.month - 1) as usize]);
    out.push(' ');
    push_4(out, c.year);
    out.push(' ');
    push_time(out, &c);
    out.push_str(" GMT");
}

/// Parses an HTTP-date in any of the three RFC 9110 forms.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim()).ok()
}

/// `2026-11-22T10:00:00Z`; times outside 1970-9999 are clamped to that range.
pub fn rfc3339(t: SystemTime) -> String {
    let mut out = String::with_capacity(20);
    write_rfc3339(t, &mut out);
    out
}

/// [`rfc3339`] appended to `out` (by hand: listings write one per entry).
pub fn write_rfc3339(t: SystemTime, out: &mut String) {
    let c = Civil::from(t);
    push_4(out, c.year);
    out.push('-');
    push_2(out, c.month);
    out.push('-');
    push_2(out, c.day);
    out.push('T');
    push_time(out, &c);
    out.push('Z');
}

/// A UTC time to the second, between 1970-01-01 and 9999-12-31.
struct Civil {
    /// Days since 1970-01-01.
    days: u64,
    year: u32,
    month: u32,
    day: u32,
    /// Seconds since midnight.
    second_of_day: u32,
}

/// 9999-12-31T23:59:59Z, the last second a four-digit year can name.
const LAST_SECOND: u64 = 253_402_300_799;

impl From<SystemTime> for Civil {
    fn from(t: SystemTime) -> Self {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .min(LAST_SECOND);
        let days = secs / 86_400;
        // In range by the clamp above: days < 2,932,897 fits i64, the results fit u32.
        let (year, month, day) = civil_from_days(days as i64);
        Civil {
            days,
            year: year as u32,
            month,
            day,
            second_of_day: (secs % 86_400) as u32,
        }
    }
}

fn push_digit(out: &mut String, d: u32) {
    out.push(char::from(b'0' + (d % 10) as u8));
}

fn push_2(out: &mut String, n: u32) {
    push_digit(out, n / 10);
    push_digit(out, n);
}

fn push_4(out: &mut String, n: u32) {
    push_2(out, n / 100);
    push_2(out, n % 100);
}

/// `HH:MM:SS`.
fn push_time(out: &mut String, c: &Civil) {
    let s = c.second_of_day;
    push_2(out, s / 3600);
    out.push(':');
    push_2(out, s % 3600 / 60);
    out.push(':');
    push_2(out, s % 60);
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's
/// algorithm, exact for every day a filesystem can report.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_341_600);
        assert_eq!(rfc3339(t), "2026-11-22T10:00:00Z");
        assert_eq!(http_date(t), "Sun, 22 Nov 2026 10:00:00 GMT");
        assert_eq!(parse_http_date("Sun, 22 Nov 2026 10:00:00 GMT"), Some(t));
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn agrees_with_httpdate_across_the_range() {
        // Every 97,003 seconds (a prime step, so every weekday, hour and month end comes up)
        // from 1970 to past 2100, and the edges.
        let mut secs = 0u64;
        while secs < 4_200_000_000 {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(http_date(t), httpdate::fmt_http_date(t), "at {secs}");
            assert_eq!(parse_http_date(&http_date(t)), Some(t));
            secs += 97_003;
        }
        let last = UNIX_EPOCH + Duration::from_secs(LAST_SECOND);
        assert_eq!(http_date(last), httpdate::fmt_http_date(last));
        assert_eq!(rfc3339(last), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn out_of_range_times_are_clamped_not_fatal() {
        // Files can carry times before 1970 or after 9999 (`touch -d 1960-01-01`); the
        // `httpdate` formatter panics on both.
        let before = UNIX_EPOCH - Duration::from_secs(315_619_200);
        assert_eq!(http_date(before), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00Z");
        let after = UNIX_EPOCH + Duration::from_secs(LAST_SECOND + 86_400 * 400);
        assert_eq!(http_date(after), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(rfc3339(after), "9999-12-31T23:59:59Z");
    }
}
