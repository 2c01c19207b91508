//! Human-friendly sizes and durations for flags and the config file ("256MiB", "90s").

use std::time::Duration;

/// Splits "1.5 GiB" into (1.5, "GiB").
fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    Some((num.parse().ok()?, unit.trim()))
}

/// Parses a byte size: a plain number, or a number with a suffix (k, KB, KiB, M, MiB, G, GiB;
/// decimal suffixes are powers of 1000, binary ones powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (value, unit) = number_and_unit(text)
        .ok_or_else(|| format!("`{text}` is not a size (e.g. 512MiB, 64KiB, 1000000)"))?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit `{other}` in `{text}`")),
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("size `{text}` is out of range"));
    }
    Ok(bytes as u64)
}

/// [`parse_size`] for options held as `usize` (`--max-body-bytes`): the same units as every
/// other size option.
pub fn parse_size_usize(text: &str) -> Result<usize, String> {
    let bytes = parse_size(text)?;
    usize::try_from(bytes).map_err(|_| format!("size `{text}` is out of range"))
}

/// Parses a duration: a number with an optional unit (ms, s, m, h; seconds when omitted).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (value, unit) = number_and_unit(text)
        .ok_or_else(|| format!("`{text}` is not a duration (e.g. 120s, 5m, 1h)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit `{other}` in `{text}`")),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("duration `{text}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("64KiB").unwrap(), 64 << 10);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("1.5k").unwrap(), 1500);
        assert_eq!(parse_size("2 GiB").unwrap(), 2 << 30);
        assert!(parse_size("12parsecs").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn usize_sizes_take_the_same_units() {
        for text in [
            "4096", "4KiB", "4 kib", "1.5k", "1MiB", "2MB", "1GiB", "512b",
        ] {
            assert_eq!(
                parse_size_usize(text).unwrap() as u64,
                parse_size(text).unwrap(),
                "{text}"
            );
        }
        assert!(parse_size_usize("12parsecs").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("120s").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("3 fortnights").is_err());
    }
}
