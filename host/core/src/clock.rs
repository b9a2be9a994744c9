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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_agree() {
        let (s, ms) = (now_seconds(), now_millis());
        assert!((ms / 1000 - s as i64).abs() <= 1);
        let date = now_rfc3339_date();
        assert_eq!(date.len(), 10);
        assert_eq!(&date[4..5], "-");
    }
}
