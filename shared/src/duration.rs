//! Durations as people write them in settings and the catalog ("500ms", "10s", "5m"),
//! parsed by humantime and bounded to what a setting can sensibly mean.

use std::time::Duration;

/// The longest duration a setting accepts.
pub const LONGEST: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a positive duration of at most 7 days: "500ms", "10s", "5m", "1h".
pub fn parse(text: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. \"500ms\", \"10s\", \"5m\""))?;
    if parsed.is_zero() {
        return Err("must be longer than zero".into());
    }
    if parsed > LONGEST {
        return Err(format!("{text:?} is longer than 7 days"));
    }
    Ok(parsed)
}

/// Like [`parse`], but `0s` (or `0ms`, …) is accepted: for settings where zero turns
/// something off.
pub fn parse_or_zero(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Ok(d),
        _ => parse(text),
    }
}

/// `N/period` as written in settings and the catalog ("100/1s", "300/1m", "2/s"): a
/// count per period. The one parser of the API key budget and the actions' `rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerPeriod {
    pub count: u32,
    pub period: Duration,
}

/// Why a `N/period` was refused; each caller words it for its setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerPeriodError {
    /// Not `N/period` with N a whole number and period a duration.
    Malformed,
    /// N is 0.
    Zero,
}

impl PerPeriod {
    pub fn parse(text: &str) -> Result<Self, PerPeriodError> {
        let (count, period) = text.split_once('/').ok_or(PerPeriodError::Malformed)?;
        let count: u32 = count.trim().parse().map_err(|_| PerPeriodError::Malformed)?;
        let period = period.trim();
        // "2/s" reads as "2/1s".
        let period =
            if period.starts_with(|c: char| c.is_ascii_digit()) { period.to_owned() } else { format!("1{period}") };
        let period = parse(&period).map_err(|_| PerPeriodError::Malformed)?;
        if count == 0 {
            return Err(PerPeriodError::Zero);
        }
        Ok(Self { count, period })
    }

    pub fn per_second(&self) -> f64 {
        f64::from(self.count) / self.period.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_and_at_most_a_week() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert!(parse("0s").unwrap_err().contains("longer than zero"));
        assert!(parse("8d").unwrap_err().contains("longer than 7 days"));
        assert!(parse("soon").unwrap_err().contains("is not a duration"));
    }

    #[test]
    fn zero_where_it_turns_something_off() {
        assert_eq!(parse_or_zero("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_or_zero("10s"), Ok(Duration::from_secs(10)));
        assert!(parse_or_zero("8d").unwrap_err().contains("longer than 7 days"));
        assert!(parse_or_zero("never").unwrap_err().contains("is not a duration"));
    }
}
