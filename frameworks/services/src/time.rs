//! Time as the services framework writes it: milliseconds since the Unix epoch inside, ISO
//! 8601 UTC text (`2026-12-03T10:40:00.000Z`, Marathon's version format) outside.
//!
//! Pure arithmetic; this module must never read a clock (the daemon's edge does, once per
//! input, and passes the time in).

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// `ms` as ISO 8601 UTC with milliseconds. Sortable as text for years 0000..9999.
pub fn iso8601(ms: Millis) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(1_796_256_000_123), "2026-12-03T00:00:00.123Z");
        assert_eq!(iso8601(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn text_order_is_time_order() {
        let mut last = iso8601(0);
        for ms in (0..4_000_000_000_000u64).step_by(97_654_321_987) {
            let now = iso8601(ms);
            assert!(now >= last, "{now} < {last}");
            last = now;
        }
    }
}
