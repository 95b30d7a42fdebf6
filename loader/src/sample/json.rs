//! JSON text byte-for-byte as Python's `json.dumps` writes it with its
//! defaults: `", "` and `": "` separators, `ensure_ascii=True` (every
//! character outside printable ASCII as a lower-case `\uXXXX`, surrogate
//! pairs above U+FFFF), `repr()` floats. serde_json writes compact
//! separators and raw UTF-8, which the app never stores, so it is not used
//! here.

const HEX: &[u8; 16] = b"0123456789abcdef";

pub(super) fn string(out: &mut String, s: &str) {
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
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str("\\u");
                    for shift in [12u16, 8, 4, 0] {
                        out.push(char::from(HEX[usize::from((*unit >> shift) & 0xf)]));
                    }
                }
            }
        }
    }
    out.push('"');
}

/// `repr()` of the float `units / 10^places`: Python prints the shortest
/// text that reads back as the same double, which for a decimal with at most
/// a few significant digits is that decimal without trailing zeros, keeping
/// at least one fractional digit (`8.0`, `0.85`). Only for magnitudes where
/// repr() does not switch to exponent notation (1e-4 ..= 1e16).
pub(super) fn float(out: &mut String, units: i64, places: u32) {
    let scale = 10i64.pow(places);
    if units < 0 {
        out.push('-');
    }
    let abs = units.unsigned_abs();
    let scale = scale.unsigned_abs();
    out.push_str(&(abs / scale).to_string());
    out.push('.');
    let frac = abs % scale;
    if frac == 0 {
        out.push('0');
        return;
    }
    let mut digits = format!("{:0width$}", frac, width = places as usize);
    while digits.ends_with('0') {
        digits.pop();
    }
    out.push_str(&digits);
}

pub(super) fn int(out: &mut String, v: i64) {
    out.push_str(&v.to_string());
}

pub(super) fn bool(out: &mut String, v: bool) {
    out.push_str(if v { "true" } else { "false" });
}

/// `"key": ` with the separator before it unless it opens the object.
pub(super) fn key(out: &mut String, first: bool, k: &str) {
    if !first {
        out.push_str(", ");
    }
    string(out, k);
    out.push_str(": ");
}

pub(super) fn sep(out: &mut String, first: bool) {
    if !first {
        out.push_str(", ");
    }
}

pub(super) fn string_array<S: AsRef<str>>(out: &mut String, items: &[S]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        sep(out, i == 0);
        string(out, s.as_ref());
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_json_dumps() {
        // Expected texts computed with python3: json.dumps(...)
        let mut s = String::new();
        string(&mut s, "Zoë \"q\" \\ 東京 🚀\n\t\u{7f}");
        assert_eq!(
            s,
            r#""Zo\u00eb \"q\" \\ \u6771\u4eac \ud83d\ude80\n\t\u007f""#
        );
        let mut f = String::new();
        float(&mut f, 800, 2);
        f.push(' ');
        float(&mut f, 85, 2);
        f.push(' ');
        float(&mut f, 1005, 3);
        f.push(' ');
        float(&mut f, 0, 2);
        assert_eq!(f, "8.0 0.85 1.005 0.0");
    }
}
