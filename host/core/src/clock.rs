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

/// `secs` (since the Unix epoch) in RFC 3339, UTC, to the second:
/// `2026-12-05T13:37:00Z`.
pub fn format_seconds(secs: i64) -> String {
    format_millis(secs.saturating_mul(1000)).replacen(".000Z", "Z", 1)
}

/// `ms` (since the Unix epoch) in RFC 3339, UTC, to the millisecond:
/// `2026-12-05T13:37:00.123Z`.
pub fn format_millis(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Times in JSON answers and CLI output, as RFC 3339 (UTC): for
/// `#[serde(serialize_with = …)]` on fields holding Unix seconds or
/// milliseconds.
pub mod rfc3339 {
    use serde::Serializer;

    /// Unix seconds.
    pub fn seconds<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_seconds(*v))
    }

    /// Unix seconds, or `null`.
    pub fn seconds_opt<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => seconds(v, s),
            None => s.serialize_none(),
        }
    }

    /// Unix seconds (unsigned), or `null`.
    pub fn useconds_opt<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        seconds_opt(&v.map(|v| v.min(i64::MAX as u64) as i64), s)
    }

    /// Unix seconds (unsigned).
    pub fn useconds<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        seconds(&((*v).min(i64::MAX as u64) as i64), s)
    }

    /// Unix milliseconds.
    pub fn millis<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_millis(*v))
    }

    /// Unix milliseconds from a number or an RFC 3339 string.
    pub fn millis_from<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(i64),
            Text(String),
        }
        match <Either as serde::Deserialize>::deserialize(d)? {
            Either::Number(ms) => Ok(ms),
            Either::Text(t) => super::parse_instant_ms(&t).map_err(serde::de::Error::custom),
        }
    }
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
    fn times_are_written_in_rfc_3339_utc_and_read_back() {
        assert_eq!(format_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_seconds(1_796_475_570), "2026-12-05T12:59:30Z");
        assert_eq!(format_millis(1_796_475_570_042), "2026-12-05T12:59:30.042Z");
        assert_eq!(parse_instant_ms(&format_millis(1_796_475_570_042)), Ok(1_796_475_570_042));
        assert_eq!(parse_instant_ms(&format_seconds(1_796_475_570)), Ok(1_796_475_570_000));
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
