//! A strict RFC 3339 timestamp parser for configuration values:
//! `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, without a date-time crate in
//! the module.

/// What every accepted timestamp looks like, for error messages.
const SHAPE: &str = "expected YYYY-MM-DDTHH:MM:SS, an optional fraction, then Z or an offset such as +01:00";

/// Milliseconds since the Unix epoch for the RFC 3339 timestamp `s`, or what
/// is wrong with it.
///
/// Digits of the fraction beyond milliseconds are dropped, since the host
/// clock counts milliseconds. A leap second (`:60`) is refused: configuration
/// has no use for one and accepting it would need a leap-second table.
pub fn parse_ms(s: &str) -> Result<i64, &'static str> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return Err(SHAPE);
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) {
        return Err("the month must be 01-12");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("the day does not exist in that month");
    }
    if hour > 23 || minute > 59 {
        return Err("the time of day must be 00:00-23:59");
    }
    if second > 59 {
        return Err("the seconds must be 00-59");
    }

    let mut rest = &b[19..];
    let mut millis = 0;
    if let [b'.', fraction @ ..] = rest {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return Err("a decimal point must be followed by digits");
        }
        for place in 0..3 {
            millis = millis * 10 + fraction.get(place).filter(|_| place < len).map_or(0, |d| i64::from(d - b'0'));
        }
        rest = &fraction[len..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (hours, minutes) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if hours > 23 || minutes > 59 {
                return Err("the offset must be between -23:59 and +23:59");
            }
            let offset = hours * 60 + minutes;
            if *sign == b'-' { -offset } else { offset }
        }
        [] => return Err("the time zone is missing: end with Z or an offset such as +01:00"),
        _ => return Err(SHAPE),
    };

    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1_000 + millis)
}

/// The value of a run of ASCII digits.
fn digits(b: &[u8]) -> Result<i64, &'static str> {
    b.iter().try_fold(0, |n, c| if c.is_ascii_digit() { Ok(n * 10 + i64::from(c - b'0')) } else { Err(SHAPE) })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date `year-month-day`
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps() {
        assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_ms("2026-12-01T00:00:00Z"), Ok(1_796_083_200_000));
        assert_eq!(parse_ms("2027-01-15T08:00:00Z"), Ok(1_800_000_000_000));
        assert_eq!(parse_ms("2000-02-29T23:59:59Z"), Ok(951_868_799_000));
        assert_eq!(parse_ms("1969-12-31T23:59:59Z"), Ok(-1_000));
        assert_eq!(parse_ms("2026-12-01t00:00:00z"), Ok(1_796_083_200_000), "RFC 3339 allows lower case");
    }

    #[test]
    fn fractions_count_to_the_millisecond() {
        assert_eq!(parse_ms("1970-01-01T00:00:01.5Z"), Ok(1_500));
        assert_eq!(parse_ms("1970-01-01T00:00:01.25Z"), Ok(1_250));
        assert_eq!(parse_ms("1970-01-01T00:00:01.123Z"), Ok(1_123));
        assert_eq!(parse_ms("1970-01-01T00:00:01.123999999Z"), Ok(1_123));
    }

    #[test]
    fn offsets_convert_to_utc() {
        let utc = parse_ms("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(parse_ms("2026-12-01T01:00:00+01:00"), Ok(utc));
        assert_eq!(parse_ms("2026-11-30T19:30:00-04:30"), Ok(utc));
        assert_eq!(parse_ms("2026-12-01T00:00:00-00:00"), Ok(utc));
        assert_eq!(parse_ms("2026-12-01T00:00:00.250+00:00"), Ok(utc + 250));
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for bad in [
            "",
            "2026-12-01",
            "2026-12-01 00:00:00Z",
            "2026-12-01T00:00:00",
            "2026-12-01T00:00Z",
            "2026-12-01T00:00:00.Z",
            "2026-12-01T00:00:00+0100",
            "2026-12-01T00:00:00+01",
            "2026-12-01T00:00:00Z ",
            "2026-12-01T00:00:00UTC",
            "26-12-01T00:00:00Z",
            "2026-1-01T00:00:00Z",
            "+2026-12-01T00:00:00Z",
            "2026-12-01T00:00:0xZ",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-12-00T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T00:60:00Z",
            "2026-12-31T23:59:60Z",
            "2026-12-01T00:00:00+24:00",
            "2026-12-01T00:00:00+01:60",
        ] {
            assert!(parse_ms(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            parse_ms("2026-12-01T00:00:00"),
            Err("the time zone is missing: end with Z or an offset such as +01:00")
        );
        assert_eq!(parse_ms("2026-13-01T00:00:00Z"), Err("the month must be 01-12"));
        assert_eq!(parse_ms("2026-12-01"), Err(SHAPE));
    }
}
