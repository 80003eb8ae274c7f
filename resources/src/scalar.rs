//! [`Scalar`]: a non-negative fixed-point amount in thousandths, with exact decimal
//! parsing and formatting.
//!
//! Owns: the representation (`u64` thousandths), [`Scalar::MAX`], the decimal text form
//! (parse with round half-up on the 4th decimal; print the shortest exact decimal) and
//! checked arithmetic.
//! Must never: go through `f64` when parsing or printing text, wrap or saturate silently
//! in `checked_*`, or panic on any input.

use std::fmt;
use std::str::FromStr;

use crate::error::ResourceError;

/// Fixed-point amount in thousandths (1.5 = 1500). Never negative.
///
/// Text form: `30`, `1.5`, `0.001`. Parsing is exact (no floating point) and rounds
/// half-up on the fourth decimal: `"1.5123"` is 1.512 and `"1.5125"` is 1.513.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scalar(u64);

/// Thousandths in one unit.
const SCALE: u64 = 1000;

impl Scalar {
    /// Nothing.
    pub const ZERO: Scalar = Scalar(0);
    /// The largest value accepted anywhere (parsing, conversions, sums):
    /// 10^12 units = 10^15 thousandths.
    pub const MAX: Scalar = Scalar(1_000_000_000_000_000);

    /// The scalar of `t` thousandths. Not checked against [`Scalar::MAX`]; validating
    /// entry points (`Resources::push`, `from_proto`, ...) refuse values above it.
    pub const fn from_thousandths(t: u64) -> Scalar {
        Scalar(t)
    }

    /// The amount in thousandths.
    pub const fn thousandths(self) -> u64 {
        self.0
    }

    /// `units` whole units; `None` above [`Scalar::MAX`].
    pub fn from_units(units: u64) -> Option<Scalar> {
        units
            .checked_mul(SCALE)
            .map(Scalar)
            .filter(|s| *s <= Scalar::MAX)
    }

    /// `v` rounded to the nearest thousandth; `None` if `v` is negative, NaN, infinite or
    /// above [`Scalar::MAX`].
    pub fn from_f64(v: f64) -> Option<Scalar> {
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        let t = (v * SCALE as f64).round();
        if t > Scalar::MAX.0 as f64 {
            return None;
        }
        // In range [0, 10^15] and integral: the conversion is exact.
        Some(Scalar(t as u64))
    }

    /// The amount as a float (for display and ratios only, never for arithmetic).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / SCALE as f64
    }

    /// `self + o`, or `None` when the sum exceeds [`Scalar::MAX`].
    pub fn checked_add(self, o: Scalar) -> Option<Scalar> {
        self.0
            .checked_add(o.0)
            .map(Scalar)
            .filter(|s| *s <= Scalar::MAX)
    }

    /// `self - o`, or `None` when `o > self`.
    pub fn checked_sub(self, o: Scalar) -> Option<Scalar> {
        self.0.checked_sub(o.0).map(Scalar)
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Whether this is a whole number of units.
    pub fn is_whole(self) -> bool {
        self.0.is_multiple_of(SCALE)
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = self.0 / SCALE;
        let frac = self.0 % SCALE;
        if frac == 0 {
            return write!(f, "{units}");
        }
        let digits = format!("{frac:03}");
        write!(f, "{units}.{}", digits.trim_end_matches('0'))
    }
}

impl FromStr for Scalar {
    type Err = ResourceError;

    /// Exact decimal parsing: `digits[.digits]`, rounded half-up on the 4th decimal.
    fn from_str(s: &str) -> Result<Scalar, ResourceError> {
        parse_decimal(s).map_err(|e| ResourceError::InvalidScalar {
            text: s.to_string(),
            reason: e.reason(s),
        })
    }
}

/// Why a decimal text was refused; turned into a message by [`DecimalError::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecimalError {
    Negative,
    NotANumber,
    Overflow,
}

impl DecimalError {
    /// A lowercase reason naming the offending text.
    pub(crate) fn reason(self, text: &str) -> String {
        match self {
            DecimalError::Negative => format!("value '{text}' is negative"),
            DecimalError::NotANumber => format!("value '{text}' is not a number"),
            DecimalError::Overflow => {
                format!("value '{text}' overflows the maximum {}", Scalar::MAX)
            }
        }
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` has the shape `digits[.digits]` (the only accepted decimal syntax).
pub(crate) fn is_decimal_syntax(s: &str) -> bool {
    match s.split_once('.') {
        Some((int, frac)) => all_digits(int) && all_digits(frac),
        None => all_digits(s),
    }
}

/// Parses `digits[.digits]` exactly into thousandths, rounding half-up on the 4th decimal.
pub(crate) fn parse_decimal(s: &str) -> Result<Scalar, DecimalError> {
    if let Some(rest) = s.strip_prefix('-') {
        return Err(if is_decimal_syntax(rest) {
            DecimalError::Negative
        } else {
            DecimalError::NotANumber
        });
    }
    if !is_decimal_syntax(s) {
        return Err(DecimalError::NotANumber);
    }
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let max_units = Scalar::MAX.0 / SCALE;
    let mut units: u64 = 0;
    for d in int.bytes() {
        units = units
            .checked_mul(10)
            .and_then(|u| u.checked_add(u64::from(d - b'0')))
            .filter(|u| *u <= max_units)
            .ok_or(DecimalError::Overflow)?;
    }
    let mut thousandths: u64 = 0;
    let mut fdigits = frac.bytes();
    for _ in 0..3 {
        let d = fdigits.next().map_or(0, |d| u64::from(d - b'0'));
        thousandths = thousandths * 10 + d;
    }
    let round_up = fdigits.next().is_some_and(|d| d >= b'5');
    units
        .checked_mul(SCALE)
        .and_then(|t| t.checked_add(thousandths + u64::from(round_up)))
        .map(Scalar)
        .filter(|v| *v <= Scalar::MAX)
        .ok_or(DecimalError::Overflow)
}

/// Like [`parse_decimal`] but also accepts an exponent (`1.5e3`, `2E-1`), as JSON numbers
/// may carry one. Still exact: the exponent only moves the decimal point.
pub(crate) fn parse_decimal_with_exponent(s: &str) -> Result<Scalar, DecimalError> {
    let Some((mantissa, exp)) = s.split_once(['e', 'E']) else {
        return parse_decimal(s);
    };
    if let Some(rest) = mantissa.strip_prefix('-') {
        return Err(if is_decimal_syntax(rest) {
            DecimalError::Negative
        } else {
            DecimalError::NotANumber
        });
    }
    if !is_decimal_syntax(mantissa) {
        return Err(DecimalError::NotANumber);
    }
    let (negative_exp, exp_digits) = match exp.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, exp.strip_prefix('+').unwrap_or(exp)),
    };
    if !all_digits(exp_digits) {
        return Err(DecimalError::NotANumber);
    }
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let is_zero = digits.bytes().all(|b| b == b'0');
    // Where the decimal point sits within `digits`, capped: beyond +-64 places the value
    // either overflows or rounds to zero, whatever the exact exponent.
    let shift: i64 = exp_digits
        .parse::<i64>()
        .unwrap_or(i64::MAX)
        .min(64)
        .saturating_mul(if negative_exp { -1 } else { 1 });
    let point = i64::try_from(int.len())
        .unwrap_or(i64::MAX)
        .saturating_add(shift);
    if is_zero {
        return Ok(Scalar::ZERO);
    }
    let len = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let plain = if point <= 0 {
        if point < -8 {
            return Ok(Scalar::ZERO);
        }
        format!(
            "0.{}{digits}",
            "0".repeat(usize::try_from(-point).unwrap_or(0))
        )
    } else if point >= len {
        if point > 64 {
            return Err(DecimalError::Overflow);
        }
        format!(
            "{digits}{}",
            "0".repeat(usize::try_from(point - len).unwrap_or(0))
        )
    } else {
        let at = usize::try_from(point).unwrap_or(0);
        match (digits.get(..at), digits.get(at..)) {
            (Some(a), Some(b)) => format!("{a}.{b}"),
            _ => return Err(DecimalError::NotANumber),
        }
    };
    parse_decimal(&plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Scalar, ResourceError> {
        s.parse()
    }

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(p("30").unwrap(), Scalar::from_thousandths(30_000));
        assert_eq!(p("1.5").unwrap(), Scalar::from_thousandths(1500));
        assert_eq!(p("0.001").unwrap(), Scalar::from_thousandths(1));
        assert_eq!(p("007.250").unwrap(), Scalar::from_thousandths(7250));
    }

    #[test]
    fn rounds_half_up_on_the_fourth_decimal() {
        assert_eq!(p("1.5123").unwrap(), Scalar::from_thousandths(1512));
        assert_eq!(p("1.5125").unwrap(), Scalar::from_thousandths(1513));
        assert_eq!(p("1.51249999").unwrap(), Scalar::from_thousandths(1512));
        assert_eq!(p("0.0005").unwrap(), Scalar::from_thousandths(1));
        assert_eq!(p("0.0004").unwrap(), Scalar::ZERO);
        assert_eq!(p("1.9999").unwrap(), Scalar::from_thousandths(2000));
    }

    #[test]
    fn displays_shortest_exact_decimal() {
        for (t, s) in [
            (30_000, "30"),
            (1500, "1.5"),
            (1, "0.001"),
            (1010, "1.01"),
            (0, "0"),
        ] {
            assert_eq!(Scalar::from_thousandths(t).to_string(), s);
        }
    }

    #[test]
    fn refuses_bad_text_naming_it() {
        let e = p("-1").unwrap_err().to_string();
        assert!(e.contains("'-1'") && e.contains("negative"), "{e}");
        let e = p("abc").unwrap_err().to_string();
        assert!(e.contains("'abc'") && e.contains("not a number"), "{e}");
        for bad in ["", ".5", "1.", "1.2.3", "+1", "1e3", " 1", "1,5", "١"] {
            assert!(p(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn refuses_overflow() {
        assert_eq!(p("1000000000000").unwrap(), Scalar::MAX);
        let e = p("1000000000000.001").unwrap_err().to_string();
        assert!(e.contains("overflows"), "{e}");
        assert_eq!(p("999999999999.9995").unwrap(), Scalar::MAX);
        let e = p("1000000000000.0005").unwrap_err().to_string();
        assert!(e.contains("overflows"), "{e}");
        let e = p("99999999999999999999999999999").unwrap_err().to_string();
        assert!(e.contains("overflows"), "{e}");
    }

    #[test]
    fn checked_arithmetic() {
        let a = Scalar::from_thousandths(1500);
        let b = Scalar::from_thousandths(500);
        assert_eq!(a.checked_add(b), Some(Scalar::from_thousandths(2000)));
        assert_eq!(a.checked_sub(b), Some(Scalar::from_thousandths(1000)));
        assert_eq!(b.checked_sub(a), None);
        assert_eq!(Scalar::MAX.checked_add(Scalar::from_thousandths(1)), None);
        assert_eq!(Scalar::from_thousandths(u64::MAX).checked_add(a), None);
        assert!(Scalar::ZERO.is_zero());
    }

    #[test]
    fn units_and_floats() {
        assert_eq!(Scalar::from_units(2), Some(Scalar::from_thousandths(2000)));
        assert_eq!(Scalar::from_units(1_000_000_000_001), None);
        assert_eq!(Scalar::from_units(u64::MAX), None);
        assert_eq!(Scalar::from_f64(1.5), Some(Scalar::from_thousandths(1500)));
        assert_eq!(Scalar::from_f64(0.0004), Some(Scalar::ZERO));
        assert_eq!(Scalar::from_f64(-0.5), None);
        assert_eq!(Scalar::from_f64(f64::NAN), None);
        assert_eq!(Scalar::from_f64(f64::INFINITY), None);
        assert_eq!(Scalar::from_f64(1e13), None);
        assert_eq!(Scalar::from_thousandths(2500).as_f64(), 2.5);
    }

    #[test]
    fn exponent_form_is_exact() {
        let e = parse_decimal_with_exponent;
        assert_eq!(e("1.5e3"), Ok(Scalar::from_thousandths(1_500_000)));
        assert_eq!(e("15E-1"), Ok(Scalar::from_thousandths(1500)));
        assert_eq!(e("1.0005e0"), Ok(Scalar::from_thousandths(1001)));
        assert_eq!(e("5e-4"), Ok(Scalar::from_thousandths(1)));
        assert_eq!(e("1e-300"), Ok(Scalar::ZERO));
        assert_eq!(e("0e999999999999999999999"), Ok(Scalar::ZERO));
        assert_eq!(e("1e16"), Err(DecimalError::Overflow));
        assert_eq!(e("1e99999999999999999999"), Err(DecimalError::Overflow));
        assert_eq!(e("-1e2"), Err(DecimalError::Negative));
        assert_eq!(e("1e"), Err(DecimalError::NotANumber));
        assert_eq!(e("2.5"), Ok(Scalar::from_thousandths(2500)));
    }
}
