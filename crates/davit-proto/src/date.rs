//! The two date forms WebDAV clients parse: RFC 1123 (`getlastmodified`, `Last-Modified`) and
//! RFC 3339 without fractional seconds (`creationdate`).

use std::time::{SystemTime, UNIX_EPOCH};

/// `Sun, 22 Nov 2026 10:00:00 GMT`.
pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// [`http_date`] appended to `out`.
pub fn write_http_date(t: SystemTime, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "{}", httpdate::HttpDate::from(t));
}

/// Parses an HTTP-date in any of the three RFC 9110 forms.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim()).ok()
}

/// `2026-11-22T10:00:00Z`; times before 1970 are clamped to the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    let mut out = String::with_capacity(20);
    write_rfc3339(t, &mut out);
    out
}

/// [`rfc3339`] appended to `out` (by hand: listings write one per entry).
pub fn write_rfc3339(t: SystemTime, out: &mut String) {
    fn push_digits(out: &mut String, n: u64, width: usize) {
        let mut digits = [b'0'; 20];
        let mut n = n;
        let mut i = digits.len();
        while n > 0 {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let start = i.min(digits.len() - width);
        for &d in &digits[start..] {
            out.push(char::from(d));
        }
    }
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    push_digits(out, y.max(0) as u64, 4);
    out.push('-');
    push_digits(out, u64::from(m), 2);
    out.push('-');
    push_digits(out, u64::from(d), 2);
    out.push('T');
    push_digits(out, rem / 3600, 2);
    out.push(':');
    push_digits(out, rem % 3600 / 60, 2);
    out.push(':');
    push_digits(out, rem % 60, 2);
    out.push('Z');
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
}
