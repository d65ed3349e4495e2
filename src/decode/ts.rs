//! Turning a JSON number token into whole Unix seconds, exactly.
//!
//! Floats would round `1767225600.9999999999` up to the next second, so the
//! token is read as a decimal (digits and a power of ten) and floored with
//! integer arithmetic. Any JSON number form is accepted: `1767225600`,
//! `1767225600.731`, `1.7672256e9`, `17672256000e-1`.

use crate::reject::Reject;

/// Largest accepted event time: 9999-12-31T23:59:59Z. Anything beyond cannot be
/// a real event time and would overflow calendar arithmetic downstream.
pub const MAX_TS: u64 = 253_402_300_799;

/// Parses a number token already validated by the scanner.
#[inline]
pub fn parse_ts(token: &[u8]) -> Result<u64, Reject> {
    // Fast path: a plain integer of up to 12 digits (every real timestamp).
    if token.len() <= 12 && token.iter().all(u8::is_ascii_digit) {
        let v = token
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        return if v > MAX_TS {
            Err(Reject::TsOutOfRange)
        } else {
            Ok(v)
        };
    }
    parse_general(token)
}

/// Any other number form: fraction, exponent, sign, many digits.
fn parse_general(token: &[u8]) -> Result<u64, Reject> {
    let (negative, body) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, token),
    };
    let mantissa_end = body
        .iter()
        .position(|&b| b == b'e' || b == b'E')
        .unwrap_or(body.len());
    let (mantissa, exp_part) = body.split_at(mantissa_end);
    let exp: i64 = if exp_part.is_empty() {
        0
    } else {
        parse_exp(&exp_part[1..])
    };
    let (int_digits, frac_digits) = match mantissa.iter().position(|&b| b == b'.') {
        Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
        None => (mantissa, &[][..]),
    };
    // value = digits(int ++ frac) * 10^(exp - frac_len), read without copying.
    let n = int_digits.len() + frac_digits.len();
    let digit = |i: usize| {
        if i < int_digits.len() {
            int_digits[i]
        } else {
            frac_digits[i - int_digits.len()]
        }
    };
    let scale = exp.saturating_sub(frac_digits.len() as i64);
    let Some(first) = (0..n).find(|&i| digit(i) != b'0') else {
        return Ok(0); // zero, including -0 and 0.000e5
    };
    // Keep only the digits left of the decimal point after scaling.
    let significant = (n - first) as u64;
    let kept = if scale >= 0 {
        significant
    } else {
        let drop = scale.unsigned_abs();
        if drop >= significant {
            // 0 < |value| < 1: floors to 0, or to -1 when negative.
            return if negative { Err(Reject::BadTs) } else { Ok(0) };
        }
        significant - drop
    };
    if negative {
        return Err(Reject::BadTs);
    }
    let zeros = scale.max(0) as u64;
    if kept + zeros > 12 {
        return Err(Reject::TsOutOfRange); // >= 10^12 seconds, beyond MAX_TS
    }
    let mut value: u64 = 0;
    for i in first..first + kept as usize {
        value = value * 10 + u64::from(digit(i) - b'0');
    }
    for _ in 0..zeros {
        value *= 10;
    }
    if value > MAX_TS {
        return Err(Reject::TsOutOfRange);
    }
    Ok(value)
}

/// Exponent digits with an optional sign, saturating far beyond any useful range.
fn parse_exp(s: &[u8]) -> i64 {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for &d in digits {
        v = (v * 10 + i64::from(d - b'0')).min(1 << 40);
    }
    if neg {
        -v
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_and_fraction_forms() {
        let cases: &[(&str, Result<u64, Reject>)] = &[
            ("0", Ok(0)),
            ("-0", Ok(0)),
            ("-0.0e7", Ok(0)),
            ("1767225600", Ok(1_767_225_600)),
            ("1767225600.999999999999999", Ok(1_767_225_600)),
            ("1767225600.0", Ok(1_767_225_600)),
            ("1.7672256e9", Ok(1_767_225_600)),
            ("1.76722560099e9", Ok(1_767_225_600)),
            ("17672256000e-1", Ok(1_767_225_600)),
            ("17672256009E-1", Ok(1_767_225_600)),
            ("0.5", Ok(0)),
            ("5e-1", Ok(0)),
            ("1e-999999999999999999999", Ok(0)),
            ("0001", Ok(1)), // not valid JSON, but the scanner never passes it
            ("-1", Err(Reject::BadTs)),
            ("-0.5", Err(Reject::BadTs)),
            ("-1e-30", Err(Reject::BadTs)),
            ("253402300799", Ok(MAX_TS)),
            ("253402300800", Err(Reject::TsOutOfRange)),
            ("1e12", Err(Reject::TsOutOfRange)),
            ("1e999999999999999999", Err(Reject::TsOutOfRange)),
            ("99999999999999999999999999", Err(Reject::TsOutOfRange)),
        ];
        for (token, want) in cases {
            assert_eq!(parse_ts(token.as_bytes()), *want, "{token}");
        }
    }
}
