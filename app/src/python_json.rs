//! JSON text byte for byte as Python's `json.dumps` writes it with its
//! defaults, which is what the app stores and hashes: `", "` and `": "`
//! separators, `ensure_ascii=True` (every character outside printable ASCII
//! as a lower-case `\uXXXX`, surrogate pairs above U+FFFF; DEL U+007F too),
//! floats as `repr(float)` (`1e+16`, `1e-05`, `1.0`, `-0.0`, `Infinity`).
//! serde_json writes compact separators and raw UTF-8, which the app never
//! stores.
//!
//! Two ways in: [`dumps`] writes a `serde_json::Value` (parsed with
//! `arbitrary_precision`, so every number keeps the text that decides its
//! Python type: no `.`, `e` or `E` is an `int`), with `sort_keys=True`; the
//! writers below build a document piece by piece, in the caller's key order.

use serde_json::Value;

/// Python's default `sys.get_int_max_str_digits()`.
pub const PY_INT_MAX_STR_DIGITS: usize = 4300;

/// Why a value has no `json.dumps` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid number {0}")]
    InvalidNumber(String),
    /// An integer Python 3.11 refuses to convert (more than 4300 digits).
    #[error(
        "integer has {digits} digits, over Python's limit of {limit} for integer string conversion"
    )]
    IntegerTooLong { digits: usize, limit: usize },
    /// Nested deeper than the caller allows.
    #[error("nested deeper than {0} levels")]
    NestingTooDeep(usize),
}

/// `json.dumps(value, sort_keys=True)`, refusing more than `max_depth`
/// levels of nesting (the writer recurses).
pub fn dumps(value: &Value, max_depth: usize) -> Result<String, Error> {
    let mut out = String::new();
    write_value(&mut out, value, 0, max_depth)?;
    Ok(out)
}

/// `"key": ` with the separator before it unless it opens the object.
pub fn key(out: &mut String, first: bool, k: &str) {
    separator(out, first);
    string(out, k);
    out.push_str(": ");
}

/// `, ` unless this is the first item.
pub fn separator(out: &mut String, first: bool) {
    if !first {
        out.push_str(", ");
    }
}

pub fn string_array<S: AsRef<str>>(out: &mut String, items: &[S]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        separator(out, i == 0);
        string(out, s.as_ref());
    }
    out.push(']');
}

pub fn int(out: &mut String, v: i64) {
    out.push_str(&v.to_string());
}

pub fn bool(out: &mut String, v: bool) {
    out.push_str(if v { "true" } else { "false" });
}

/// Whether `json.loads` reads this number text as a float rather than an
/// int.
pub fn is_float_text(text: &str) -> bool {
    text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

/// The float nearest `units / 10^places`, as `repr` prints it: for a
/// decimal of up to 15 significant digits, that decimal (`8.0`, `0.85`).
pub fn decimal(out: &mut String, units: i64, places: u32) {
    float(out, units as f64 / 10f64.powi(places as i32));
}

fn write_value(
    out: &mut String,
    value: &Value,
    depth: usize,
    max_depth: usize,
) -> Result<(), Error> {
    if depth >= max_depth {
        return Err(Error::NestingTooDeep(max_depth));
    }
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, &n.to_string())?,
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, depth + 1, max_depth)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sort explicitly: serde_json's map is only sorted without the
            // preserve_order feature.  Byte order = code point order.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                string(out, key);
                out.push_str(": ");
                write_value(out, item, depth + 1, max_depth)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// A JSON number as `json.dumps(json.loads(text))` prints it.
fn write_number(out: &mut String, text: &str) -> Result<(), Error> {
    if is_float_text(text) {
        let f: f64 = text
            .parse()
            .map_err(|_| Error::InvalidNumber(text.to_owned()))?;
        float(out, f);
        return Ok(());
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidNumber(text.to_owned()));
    }
    if digits.len() > PY_INT_MAX_STR_DIGITS {
        return Err(Error::IntegerTooLong {
            digits: digits.len(),
            limit: PY_INT_MAX_STR_DIGITS,
        });
    }
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        out.push('0');
    } else {
        if negative {
            out.push('-');
        }
        out.push_str(significant);
    }
    Ok(())
}

/// `float.__repr__` (what `json.dumps` uses for finite floats), plus
/// `Infinity` / `-Infinity` / `NaN` as `json.dumps` prints them.
pub fn float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f < 0.0 { "-Infinity" } else { "Infinity" });
        return;
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    let (digits, exponent) = shortest_digits(f.abs());
    // Python's decpt: value = 0.DIGITS * 10**decpt.
    let decpt = exponent + 1;
    let ndigits = i64::try_from(digits.len()).unwrap_or(i64::MAX);

    if !(-4 < decpt && decpt <= 16) {
        // 1e+16, 1.5e-07, 5e-324
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push('0');
        }
        out.push_str(&magnitude.to_string());
    } else if decpt <= 0 {
        // 0.0001
        out.push_str("0.");
        for _ in decpt..0 {
            out.push('0');
        }
        out.push_str(&digits);
    } else if decpt >= ndigits {
        // 100.0
        out.push_str(&digits);
        for _ in ndigits..decpt {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        // 123.456 (0 < decpt < ndigits <= 17, so the split is in range)
        let (int_part, frac_part) = digits.split_at(usize::try_from(decpt).unwrap_or(0));
        out.push_str(int_part);
        out.push('.');
        out.push_str(frac_part);
    }
}

/// The shortest decimal digits that read back as `x` (finite, >= 0), and
/// the exponent of the first one: 1.5e-7 gives ("15", -7), 0.0 ("0", 0).
///
/// This is what Python's repr takes from dtoa mode 0: the shortest digit
/// string that round-trips, the one nearest to the exact value among those,
/// and on an exact tie the one whose last digit is even.  Rust's `{:e}`
/// agrees except on that tie, where it rounds up: 111275153569243.125 is
/// printed 111275153569243.13 by Rust and 111275153569243.12 by Python.
fn shortest_digits(x: f64) -> (String, i64) {
    let (digits, exponent) = split_sci(&format!("{x:e}"));
    match tie_to_even(x, &digits, exponent) {
        Some(even) => even,
        None => (digits, exponent),
    }
}

/// "1.5e-7" -> ("15", -7).
fn split_sci(sci: &str) -> (String, i64) {
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exponent.parse().unwrap_or(0))
}

/// If the shortest `digits` (odd last digit) were chosen by rounding an exact
/// tie up, the even neighbour, when it also reads back as `x`.
fn tie_to_even(x: f64, digits: &str, exponent: i64) -> Option<(String, i64)> {
    let last = digits.bytes().last()?;
    if last % 2 == 0 {
        return None;
    }
    // The exact decimal value of x: an f64 has at most 767 significant
    // digits, so this precision only pads with zeros and never rounds.
    let (exact, exact_exp) = split_sci(&format!("{x:.800e}"));
    let exact = exact.trim_end_matches('0').as_bytes();
    // Index in `exact` of the digit at the place of the last of `digits`.
    let n = i64::try_from(digits.len()).ok()?;
    let k = usize::try_from(exact_exp - exponent + n - 1).ok()?;
    // A tie: the exact value stops with a single 5 right after that place.
    if exact.len() != k + 2 || exact.get(k + 1) != Some(&b'5') {
        return None;
    }
    let floor = exact.get(..=k)?;
    let floor_last = *floor.last()?;
    let (mut even, mut even_exp) = (floor.to_vec(), exact_exp);
    if floor_last % 2 == 1 {
        // The even neighbour is floor + 1 unit in the last place.
        let mut i = even.len();
        loop {
            if i == 0 {
                even.insert(0, b'1');
                even_exp += 1;
                break;
            }
            i -= 1;
            if even[i] == b'9' {
                even[i] = b'0';
            } else {
                even[i] += 1;
                break;
            }
        }
    }
    while even.len() > 1 && even.last() == Some(&b'0') {
        even.pop();
    }
    let even = String::from_utf8(even).ok()?;
    let scale = even_exp - i64::try_from(even.len()).ok()? + 1;
    let reads_back = format!("{even}e{scale}").parse::<f64>().ok()? == x;
    (reads_back && even != digits).then_some((even, even_exp))
}

/// A string as `json.dumps` prints it with `ensure_ascii=True`.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let cp = u32::from(c);
                if cp < 0x1_0000 {
                    push_u_escape(out, cp);
                } else {
                    let n = cp - 0x1_0000;
                    push_u_escape(out, 0xD800 | ((n >> 10) & 0x3FF));
                    push_u_escape(out, 0xDC00 | (n & 0x3FF));
                }
            }
        }
    }
    out.push('"');
}

/// Lower-case, as both `hexdigest()` and json's `\u{0:04x}` print.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn push_u_escape(out: &mut String, unit: u32) {
    out.push_str("\\u");
    for shift in [12u32, 8, 4, 0] {
        let nibble = ((unit >> shift) & 0xF) as usize;
        out.push(char::from(HEX_DIGITS[nibble]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_as_python_does() {
        // Expected text computed with python3: json.dumps(...)
        let mut s = String::new();
        string(&mut s, "Zoë \"q\" \\ 東京 🚀\n\t\u{7f}");
        assert_eq!(
            s,
            r#""Zo\u00eb \"q\" \\ \u6771\u4eac \ud83d\ude80\n\t\u007f""#
        );
    }

    #[test]
    fn decimals_print_as_their_floats_repr() {
        let mut f = String::new();
        for (units, places) in [(800, 2), (85, 2), (1005, 3), (0, 2), (-45, 1)] {
            decimal(&mut f, units, places);
            f.push(' ');
        }
        assert_eq!(f, "8.0 0.85 1.005 0.0 -4.5 ");
    }

    #[test]
    fn documents_sort_keys_and_keep_number_types() {
        let value: Value =
            serde_json::from_str(r#"{"b": [1e2, 100, -0, 1.50], "a": {"é": null, "c": true}}"#)
                .unwrap_or_default();
        assert_eq!(
            dumps(&value, 10).as_deref(),
            Ok(r#"{"a": {"c": true, "\u00e9": null}, "b": [100.0, 100, 0, 1.5]}"#)
        );
        assert_eq!(dumps(&value, 1), Err(Error::NestingTooDeep(1)));
    }

    fn float_repr(f: f64) -> String {
        let mut s = String::new();
        float(&mut s, f);
        s
    }

    #[test]
    fn float_repr_layout() {
        // Expected strings are Python 3.11's repr().
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (1e16, "1e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (1234567890123456.7, "1234567890123456.8"),
            // Exact ties between two shortest candidates go to the even one.
            // (written as sums: the exact values need more digits than
            // clippy accepts in a literal)
            (111_275_153_569_243.0 + 0.125, "111275153569243.12"),
            (147_117_772_004_750.0 + 0.625, "147117772004750.62"),
            (2_056_655_888_558_458.0 + 0.25, "2056655888558458.2"),
            (0.5, "0.5"),
            (2.5, "2.5"),
            (1e22, "1e+22"),
            (1.5e300, "1.5e+300"),
            (1e-4, "0.0001"),
            (0.000123, "0.000123"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123456789.123, "123456789.123"),
            (0.30000000000000004, "0.30000000000000004"),
            (5e-324, "5e-324"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ];
        for &(f, want) in cases {
            assert_eq!(float_repr(f), want, "{f:e}");
        }
    }
}
