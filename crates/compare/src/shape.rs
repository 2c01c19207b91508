//! Values whose differences are noise by their shape (source (b) of the issue): timestamps near
//! the capture time, UUIDs, request-id-like tokens. Two differing values are shape noise when
//! both have the same noisy shape: a timestamp that moved, a fresh UUID, a new request id.
//! A UUID that became a name, or a timestamp that became `null`, is not noise.

use serde_json::Value;

/// A noisy shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A date-time (RFC 3339 / ISO 8601 text, HTTP-date, or epoch seconds/ms/us/ns) within
    /// [`WINDOW_S`] of the capture time (of 2001..2100 when the time is unknown).
    Timestamp,
    /// 8-4-4-4-12 hex.
    Uuid,
    /// Hex of 16+ characters, or a 16+ character token mixing letters and digits.
    Token,
}

/// How far from the capture time a timestamp may be and still be noise: a week, which covers
/// caches, replica lag and the time between a capture and its offline comparison.
pub const WINDOW_S: i64 = 7 * 86_400;

/// The noisy shape of `v`, if any; `now_s` is the capture time (Unix seconds), 0 if unknown.
pub fn shape(v: &Value, now_s: i64) -> Option<Shape> {
    match v {
        Value::String(s) => shape_str(s, now_s),
        Value::Number(n) => {
            let x = n.as_f64()?;
            epoch_near(x, now_s).then_some(Shape::Timestamp)
        }
        _ => None,
    }
}

fn near(t: i64, now_s: i64) -> bool {
    if now_s > 0 {
        (t - now_s).abs() <= WINDOW_S
    } else {
        // 2001-09-09 .. 2100-01-01
        (1_000_000_000..4_102_444_800).contains(&t)
    }
}

/// Epoch seconds, milliseconds, microseconds or nanoseconds near the capture time.
fn epoch_near(x: f64, now_s: i64) -> bool {
    if !x.is_finite() || x <= 0.0 {
        return false;
    }
    [1.0, 1e3, 1e6, 1e9]
        .iter()
        .any(|d| near((x / d) as i64, now_s) && x / d >= 1e9)
}

fn shape_str(s: &str, now_s: i64) -> Option<Shape> {
    let b = s.as_bytes();
    if b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
    {
        return Some(Shape::Uuid);
    }
    if let Some(t) = iso_date_time(b).or_else(|| http_date(s)) {
        return near(t, now_s).then_some(Shape::Timestamp);
    }
    if b.len() >= 10 && b.len() <= 20 && b.iter().all(u8::is_ascii_digit) {
        let x: f64 = s.parse().ok()?;
        return epoch_near(x, now_s).then_some(Shape::Timestamp);
    }
    if b.len() >= 16 && b.len() <= 256 && looks_like_token(b) {
        return Some(Shape::Token);
    }
    None
}

/// Hex of 16+ with a digit, or base64/base64url-ish text with letters and 2+ digits
/// (request ids such as `req_8f3kD02mZq71`, trace ids, JWT-like tokens); words with a digit or
/// two (`oauth2-authorization-callback`) have too few class switches.
fn looks_like_token(b: &[u8]) -> bool {
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if digits > 0 && b.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    let ok = |c: &u8| c.is_ascii_alphanumeric() || b"+/=_-.:~".contains(c);
    if !b.iter().all(ok) || digits < 2 || !b.iter().any(u8::is_ascii_alphabetic) {
        return false;
    }
    let class = |c: u8| match c {
        b'0'..=b'9' => 0,
        b'a'..=b'z' => 1,
        b'A'..=b'Z' => 2,
        _ => 3,
    };
    let switches = b.windows(2).filter(|w| class(w[0]) != class(w[1])).count();
    switches * 4 >= b.len()
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// `YYYY-MM-DD[T ]HH:MM[:SS...]` (offset ignored: a day's window does not care), as Unix
/// seconds.
fn iso_date_time(b: &[u8]) -> Option<i64> {
    if b.len() < 16
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(&b[..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (h, mi) = (num(&b[11..13])?, num(&b[14..16])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110's IMF-fixdate), as Unix seconds.
fn http_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || !s.ends_with(" GMT") {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = num(&b[5..7])?;
    let mo = MONTHS.iter().position(|m| m.as_bytes() == &b[8..11])? as i64 + 1;
    let y = num(&b[12..16])?;
    let (h, mi) = (num(&b[17..19])?, num(&b[20..22])?);
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_764_800_000; // 2025-12-03

    #[test]
    fn shapes() {
        assert_eq!(
            shape(&json!("0b7f6c1e-3a5d-4e7b-9c2f-1d2e3f4a5b6c"), NOW),
            Some(Shape::Uuid)
        );
        assert_eq!(
            shape(&json!("2025-12-03T21:13:20.123Z"), NOW),
            Some(Shape::Timestamp)
        );
        assert_eq!(
            shape(&json!("Wed, 03 Dec 2025 21:13:20 GMT"), NOW),
            Some(Shape::Timestamp)
        );
        assert_eq!(shape(&json!(NOW), NOW), Some(Shape::Timestamp));
        assert_eq!(shape(&json!(NOW * 1000 + 17), NOW), Some(Shape::Timestamp));
        assert_eq!(
            shape(&json!(NOW as f64 + 0.25), NOW),
            Some(Shape::Timestamp)
        );
        assert_eq!(shape(&json!("req_8f3kD02mZq71xQ"), NOW), Some(Shape::Token));
        assert_eq!(
            shape(&json!("4bf92f3577b34da6a3ce929d0e0e4736"), NOW),
            Some(Shape::Token)
        );
        // Not noise: far from the capture, small numbers, words, prices.
        assert_eq!(shape(&json!("1999-01-01T00:00:00Z"), NOW), None);
        assert_eq!(shape(&json!(42), NOW), None);
        assert_eq!(shape(&json!(19.99), NOW), None);
        assert_eq!(shape(&json!("oauth2-authorization-callback"), NOW), None);
        assert_eq!(shape(&json!("hello world"), NOW), None);
        assert_eq!(shape(&json!(null), NOW), None);
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
