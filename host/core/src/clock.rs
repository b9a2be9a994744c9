//! The one clock the gateway reads: wall-clock time since the Unix epoch, in
//! the units its records and tokens use.

/// Seconds since the Unix epoch.
pub fn now_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Nanoseconds since the Unix epoch, for ids that sort by creation time.
pub fn now_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// Today's date, `YYYY-MM-DD`, for capability statements.
pub fn now_rfc3339_date() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02}", now.year(), u8::from(now.month()), now.day())
}

/// Milliseconds since the Unix epoch of `text`: an RFC 3339 time
/// (`2026-12-04T17:00:00Z`, any offset, fractions kept to the millisecond),
/// a date (`2026-12-04`, midnight UTC), or a number of milliseconds.
pub fn parse_instant_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let parsed = time::OffsetDateTime::parse(text, rfc3339).ok().or_else(|| {
        let date = time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
        Some(date.midnight().assume_utc())
    });
    match parsed {
        Some(t) => Ok((t.unix_timestamp_nanos() / 1_000_000) as i64),
        None => Err(format!(
            "`{text}` is not a time: write it in RFC 3339 (2026-12-05T09:00:00Z, or with an offset \
             2026-12-05T10:00:00+01:00), as a date (2026-12-05) or in milliseconds since the epoch"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_read_in_rfc_3339_as_dates_or_milliseconds() {
        assert_eq!(parse_instant_ms("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_instant_ms("1970-01-01T00:00:01.250Z"), Ok(1250));
        assert_eq!(parse_instant_ms("1970-01-01T01:00:01+01:00"), Ok(1000));
        assert_eq!(parse_instant_ms("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_instant_ms("1733331600000"), Ok(1_733_331_600_000));
        assert!(parse_instant_ms("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_instant_ms("2026-13-01").is_err());
    }

    #[test]
    fn units_agree() {
        let (s, ms) = (now_seconds(), now_millis());
        assert!((ms / 1000 - s as i64).abs() <= 1);
        let date = now_rfc3339_date();
        assert_eq!(date.len(), 10);
        assert_eq!(&date[4..5], "-");
    }
}
