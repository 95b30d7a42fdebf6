//! Checks that JSON text from council.db is something PostgreSQL's `jsonb`
//! input accepts, so a bad value is reported with its row instead of failing
//! the whole INSERT.

use std::fmt;

use crate::sqlstate::{self, SqlState};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Most arrays and objects one inside another that are accepted. serde_json's
/// recursion limit is 128, and reaching it fails, so 127 is the real bound.
/// Kept on purpose: PostgreSQL would accept deeper documents, but nothing
/// the app writes comes close.
#[cfg(test)]
pub const MAX_DEPTH: usize = 127;

/// Largest `dscale` (digits after the decimal point) a stored numeric holds.
const NUMERIC_DSCALE_MAX: i64 = 0x3FFF;
/// Largest decimal weight: a stored numeric's int16 weight counts base-10000 digits.
const NUMERIC_DECIMAL_WEIGHT_MAX: i64 = (i16::MAX as i64 + 1) * 4 - 1;
/// PostgreSQL's numeric input gives up on exponents past INT32_MAX / 2.
const NUMERIC_EXPONENT_MAX: i64 = (i32::MAX / 2) as i64;

/// Why a text is not acceptable `jsonb` input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("JSON text is empty")]
    Empty,

    /// `message` is serde_json's, which ends with "at line L column C".
    #[error("invalid JSON: {message}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },

    #[error(
        "JSON is nested 128 or more levels deep, reaching serde_json's recursion limit; \
         at most 127 levels are accepted (at line {line} column {column})"
    )]
    TooDeep { line: usize, column: usize },

    #[error(
        "JSON contains the escape \\u0000, which PostgreSQL jsonb cannot store \
         (at line {line} column {column})"
    )]
    NulEscape { line: usize, column: usize },

    #[error(
        "JSON number at line {line} column {column} is outside the range \
         of PostgreSQL numeric"
    )]
    NumberOutOfRange { line: usize, column: usize },
}

impl JsonError {
    /// The SQLSTATE PostgreSQL raises for the same fault in `jsonb` input.
    #[must_use]
    pub fn sqlstate(&self) -> SqlState {
        match self {
            // invalid_text_representation
            JsonError::Empty | JsonError::Syntax { .. } | JsonError::TooDeep { .. } => {
                sqlstate::INVALID_TEXT_REPRESENTATION
            }
            // untranslatable_character: "unsupported Unicode escape sequence"
            JsonError::NulEscape { .. } => sqlstate::UNTRANSLATABLE_CHARACTER,
            // numeric_value_out_of_range: "value overflows numeric format"
            JsonError::NumberOutOfRange { .. } => sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
        }
    }
}

/// Accepts any JSON document `jsonb` accepts, with any top-level value and
/// JSON whitespace around it. The empty string is rejected: the caller
/// decides whether '' means NULL.
///
/// Numbers are checked against the storage limits of current PostgreSQL
/// versions (which are also enforced by older ones). PostgreSQL 14 and older
/// additionally reject exponents beyond ±1000, which this does not check.
pub fn validate(text: &str) -> Result<(), JsonError> {
    if text
        .trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
        .is_empty()
    {
        return Err(JsonError::Empty);
    }
    // Deserializing through a visitor (rather than IgnoredAny, which skips
    // without looking) makes serde_json decode every string, so lone
    // surrogates are caught, and enforce its recursion limit.
    if let Err(error) = serde_json::from_str::<Checked>(text) {
        let (line, column) = (error.line(), error.column());
        let message = error.to_string();
        // serde_json has no public error code for this; the test
        // `depth_limit_is_127` notices if the wording ever changes.
        if message.starts_with("recursion limit exceeded") {
            return Err(JsonError::TooDeep { line, column });
        }
        return Err(JsonError::Syntax {
            message,
            line,
            column,
        });
    }
    scan_valid_json(text)
}

/// A JSON value that has been read and thrown away.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    // With serde_json's `arbitrary_precision` a number also arrives here, as
    // a one-entry map holding its text; reading it like any map is harmless.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// Looks for what serde_json accepts but `jsonb` does not. Runs only on text
/// serde_json has accepted, so strings and numbers are well formed here.
fn scan_valid_json(text: &str) -> Result<(), JsonError> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'"' => {
                i += 1;
                while let Some(&byte) = bytes.get(i) {
                    match byte {
                        b'"' => break,
                        b'\\' => {
                            if bytes.get(i + 1..i + 6) == Some(&b"u0000"[..]) {
                                let (line, column) = position(bytes, i);
                                return Err(JsonError::NulEscape { line, column });
                            }
                            // Skipping the escaped byte is enough: the rest
                            // of a \uXXXX escape is hex digits.
                            i += 2;
                        }
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while bytes
                    .get(i)
                    .is_some_and(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                {
                    i += 1;
                }
                let literal = bytes.get(start..i).unwrap_or_default();
                if !fits_postgres_numeric(literal) {
                    let (line, column) = position(bytes, start);
                    return Err(JsonError::NumberOutOfRange { line, column });
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Line and column (1-based, columns in bytes, as serde_json counts them).
fn position(bytes: &[u8], index: usize) -> (usize, usize) {
    let before = bytes.get(..index).unwrap_or_default();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    (line, index - line_start + 1)
}

/// Mirrors the limits of PostgreSQL's `numeric_in` (`set_var_from_str` and
/// `make_result`) for a well-formed JSON number literal.
fn fits_postgres_numeric(literal: &[u8]) -> bool {
    let unsigned = literal.strip_prefix(b"-").unwrap_or(literal);
    let (mantissa, exponent) = match unsigned.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => (
            unsigned.get(..at).unwrap_or_default(),
            unsigned.get(at + 1..).unwrap_or_default(),
        ),
        None => (unsigned, &[][..]),
    };
    let (whole, fraction) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (
            mantissa.get(..at).unwrap_or_default(),
            mantissa.get(at + 1..).unwrap_or_default(),
        ),
        None => (mantissa, &[][..]),
    };

    let (negative_exponent, exponent_digits) = match exponent.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, exponent),
    };
    let mut exponent: i64 = 0;
    for &digit in exponent_digits {
        exponent = exponent * 10 + i64::from(digit.wrapping_sub(b'0'));
        if exponent > NUMERIC_EXPONENT_MAX {
            return false;
        }
    }
    if negative_exponent {
        exponent = -exponent;
    }

    if len_i64(fraction.len()).saturating_sub(exponent) > NUMERIC_DSCALE_MAX {
        return false;
    }
    // Decimal weight of the first significant digit: 0 for units, -1 for tenths.
    let first_significant = whole
        .iter()
        .position(|&b| b != b'0')
        .map(|at| len_i64(whole.len() - 1 - at))
        .or_else(|| {
            fraction
                .iter()
                .position(|&b| b != b'0')
                .map(|at| -1 - len_i64(at))
        });
    match first_significant {
        Some(weight) => weight.saturating_add(exponent) <= NUMERIC_DECIMAL_WEIGHT_MAX,
        // Zero has weight 0 whatever its exponent.
        None => true,
    }
}

fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize, open: &str, close: &str, inner: &str) -> String {
        format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn accepts_any_top_level_value() {
        for text in [
            "{}",
            "[]",
            "null",
            "true",
            "false",
            "0",
            "-0",
            "-1.5e-3",
            "\"text\"",
            "\"\"",
            r#"{"a":{"b":[1,2,{"c":null}],"d":"e"},"f":[[],{}]}"#,
            r#"{"a":1,"a":2}"#,
            "  {\"a\": 1}\n",
            "\t[1,\r\n 2]\r\n",
            r#""\u00e9\u4e2d""#,
            r#""\ud83d\ude00""#,
            r#""\u0001\u001f""#,
            // An escaped backslash followed by the letters u0000 is no NUL.
            r#""\\u0000""#,
            r#"["\\", "\"", "\\\\u0000"]"#,
            "\"é 中 😀\"",
        ] {
            assert_eq!(validate(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn accepts_numbers_beyond_f64() {
        // PostgreSQL stores them as numeric, so they must not be rejected
        // the way f64 parsing would.
        for text in [
            "1e400",
            "-1e400",
            "1E+400",
            "1e-400",
            "[1e400, {\"x\": 2.5e-999}]",
            "123456789012345678901234567890123456789012345678901234567890",
            "0.000000000000000000000000000000000000000000000000000001",
            "1e131071",
            "9.99e131071",
            "0.1e131072",
            "1e-16383",
            "1.5e-16382",
            "0e999999999",
            "0e-16383",
        ] {
            assert_eq!(validate(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn rejects_numbers_postgres_numeric_cannot_hold() {
        for text in [
            "1e131072",
            "10e131071",
            "-1e131072",
            "1e-16384",
            "0e-16384",
            "0.5e-16383",
            // Within numeric_in's exponent limit, but the weight overflows.
            "1e1073741823",
            "1e1073741824",
            "1e99999999999999999999",
        ] {
            let e = validate(text).unwrap_err();
            assert_eq!(
                e,
                JsonError::NumberOutOfRange { line: 1, column: 1 },
                "{text}"
            );
            assert_eq!(e.sqlstate(), "22003");
        }
        assert_eq!(
            validate("[1, \n  {\"a\": 1e200000}]").unwrap_err(),
            JsonError::NumberOutOfRange { line: 2, column: 9 }
        );
        assert_eq!(
            validate("[1, 1e200000]").unwrap_err().to_string(),
            "JSON number at line 1 column 5 is outside the range of PostgreSQL numeric"
        );
    }

    #[test]
    fn rejects_nul_escape_anywhere() {
        let cases = [
            (r#"{"a":"\u0000"}"#, 1, 7),
            (r#"{"\u0000":1}"#, 1, 3),
            (r#""abc\u0000def""#, 1, 5),
            (r#"["ok", "\\", "x\u0000"]"#, 1, 16),
            ("[\n  \"x\\u0000\"\n]", 2, 5),
        ];
        for (text, line, column) in cases {
            let e = validate(text).unwrap_err();
            assert_eq!(e, JsonError::NulEscape { line, column }, "{text}");
            assert_eq!(e.sqlstate(), "22P05");
        }
        assert_eq!(
            validate(r#"{"a":"\u0000"}"#).unwrap_err().to_string(),
            "JSON contains the escape \\u0000, which PostgreSQL jsonb cannot store \
             (at line 1 column 7)"
        );
    }

    #[test]
    fn rejects_lone_surrogates() {
        for text in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800x""#,
            r#""\ud800\u0041""#,
            r#"{"\udfff":1}"#,
            r#"["\ud83d"]"#,
        ] {
            let e = validate(text).unwrap_err();
            assert!(matches!(e, JsonError::Syntax { .. }), "{text}: {e:?}");
            assert_eq!(e.sqlstate(), "22P02");
        }
    }

    #[test]
    fn rejects_invalid_json_with_position() {
        for text in [
            "{",
            "[1,]",
            "{\"a\":}",
            "{\"a\" 1}",
            "'a'",
            "NaN",
            "Infinity",
            "-",
            "01",
            "1.",
            ".5",
            "+1",
            "{} x",
            "1 2",
            "[1] [2]",
            "\"a\u{1}b\"",
            "\"a\0b\"",
            "\"unterminated",
            "\u{feff}{}",
            "\u{a0}1",
            "{a:1}",
            "\"\\x41\"",
        ] {
            let e = validate(text).unwrap_err();
            match &e {
                JsonError::Syntax { message, line, .. } => {
                    assert!(message.contains(" at line "), "{text}: {message}");
                    assert_eq!(*line, 1);
                }
                other => panic!("{text}: {other:?}"), // ok: test assertion
            }
            assert_eq!(e.sqlstate(), "22P02");
        }
        let e = validate("{\n  \"a\": 1,\n  \"b\" 2\n}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid JSON: expected `:` at line 3 column 7"
        );
        assert!(matches!(
            e,
            JsonError::Syntax {
                line: 3,
                column: 7,
                ..
            }
        ));
    }

    #[test]
    fn empty_is_not_json() {
        for text in ["", " ", "\n\t\r "] {
            let e = validate(text).unwrap_err();
            assert_eq!(e, JsonError::Empty);
            assert_eq!(e.sqlstate(), "22P02");
            assert_eq!(e.to_string(), "JSON text is empty");
        }
    }

    #[test]
    fn depth_limit_is_127() {
        assert_eq!(validate(&nested(MAX_DEPTH, "[", "]", "")), Ok(()));
        assert_eq!(validate(&nested(MAX_DEPTH, "{\"a\":", "}", "1")), Ok(()));
        assert_eq!(validate(&nested(MAX_DEPTH, "[", "]", "1e400")), Ok(()));
        let mixed = nested(MAX_DEPTH / 2, "{\"k\":[", "]}", "\"deep\"");
        assert_eq!(validate(&mixed), Ok(()));

        for text in [
            nested(MAX_DEPTH + 1, "[", "]", ""),
            nested(MAX_DEPTH + 1, "{\"a\":", "}", "1"),
            nested(10_000, "[", "]", ""),
            // Unclosed: the depth is what fails first.
            "[".repeat(MAX_DEPTH + 1),
        ] {
            let e = validate(&text).unwrap_err();
            assert!(matches!(e, JsonError::TooDeep { line: 1, .. }), "{e:?}");
            assert_eq!(e.sqlstate(), "22P02");
        }
        let e = validate(&nested(MAX_DEPTH + 1, "[", "]", "")).unwrap_err();
        assert_eq!(
            e,
            JsonError::TooDeep {
                line: 1,
                column: 128
            }
        );
        assert_eq!(
            e.to_string(),
            "JSON is nested 128 or more levels deep, reaching serde_json's recursion limit; \
             at most 127 levels are accepted (at line 1 column 128)"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use serde_json::Value;

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                any::<String>().prop_map(Value::String),
            ];
            leaf.prop_recursive(6, 64, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                    prop::collection::btree_map(any::<String>(), inner, 0..8)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn has_nul(value: &Value) -> bool {
            match value {
                Value::String(s) => s.contains('\0'),
                Value::Array(items) => items.iter().any(has_nul),
                Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
                _ => false,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn validate_never_panics(text in "\\PC*") {
                let _ = validate(&text);
            }

            #[test]
            fn validate_never_panics_on_near_misses(text in r#"[\[\]{}":,0-9eE.+\\u -]{0,60}"#) {
                if validate(&text).is_ok() {
                    prop_assert!(serde_json::from_str::<Value>(&text).is_ok(), "{}", text);
                }
            }

            #[test]
            fn serialized_values_are_accepted(value in json_value(), pretty in any::<bool>()) {
                let text = if pretty {
                    serde_json::to_string_pretty(&value).expect("test value")
                } else {
                    serde_json::to_string(&value).expect("test value")
                };
                let result = validate(&text);
                if has_nul(&value) {
                    prop_assert!(matches!(result, Err(JsonError::NulEscape { .. })), "{:?}", result);
                } else {
                    prop_assert_eq!(result, Ok(()));
                }
            }
        }
    }

    #[test]
    fn number_limits_follow_postgres() {
        let fits = |s: &str| fits_postgres_numeric(s.as_bytes());
        assert!(fits("0"));
        assert!(fits("-12.5"));
        assert!(fits("1e131071"));
        assert!(!fits("1e131072"));
        assert!(fits("0.0001e131075"));
        assert!(!fits("0.001e131075"));
        assert!(fits("0.000e131075"));
        assert!(fits("1e-16383"));
        assert!(!fits("1e-16384"));
        assert!(fits("1.0e-16382"));
        assert!(!fits("1.00e-16382"));
        assert!(!fits("100e-16385"));
        assert!(fits("0e1073741823"));
        assert!(!fits("0e1073741824"));
        assert!(!fits("0e-1073741824"));
    }
}
