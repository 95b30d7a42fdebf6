//! The text PostgreSQL's `jsonb_out` prints for a JSON document, worked out
//! without PostgreSQL, so that a stored `jsonb` is compared with the file's
//! JSON as text instead of parsing the file's JSON into a second `jsonb`.
//!
//! `jsonb` keeps a document's meaning, not its spelling: object keys sorted
//! by length, then bytewise, the last of duplicate keys kept, strings with
//! their escapes decoded, and whitespace dropped. It prints `{"k": v, …}`
//! and `[a, …]`, with `escape_json`'s escapes.

/// What `jsonb_out` prints for `json`, a document [`super::json::validate`]
/// accepted; None when that cannot be told here, and for text that is not
/// such a document.
///
/// Numbers are printed by `numeric_out`, which keeps a literal as it is
/// unless it has an exponent or is a negative zero; those give None, and
/// the caller asks PostgreSQL.
#[must_use]
pub fn printed(json: &str) -> Option<String> {
    let mut parser = Parser {
        bytes: json.as_bytes(),
        at: 0,
    };
    let mut out = String::with_capacity(json.len());
    parser.value(&mut out)?;
    parser.skip_whitespace();
    (parser.at == parser.bytes.len()).then_some(out)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Takes `byte`, after any whitespace.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str, out: &mut String) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word.as_bytes()).then_some(())?;
        self.at = end;
        out.push_str(word);
        Some(())
    }

    fn value(&mut self, out: &mut String) -> Option<()> {
        self.skip_whitespace();
        match self.peek()? {
            b'{' => self.object(out),
            b'[' => self.array(out),
            b'"' => {
                let text = self.string()?;
                escape(&text, out);
                Some(())
            }
            b't' => self.literal("true", out),
            b'f' => self.literal("false", out),
            b'n' => self.literal("null", out),
            b'-' | b'0'..=b'9' => self.number(out),
            _ => None,
        }
    }

    fn array(&mut self, out: &mut String) -> Option<()> {
        self.at += 1;
        out.push('[');
        if !self.eat(b']') {
            loop {
                self.value(out)?;
                if self.eat(b']') {
                    break;
                }
                self.eat(b',').then_some(())?;
                out.push_str(", ");
            }
        }
        out.push(']');
        Some(())
    }

    fn object(&mut self, out: &mut String) -> Option<()> {
        self.at += 1;
        let mut members: Vec<(String, String)> = Vec::new();
        if !self.eat(b'}') {
            loop {
                self.skip_whitespace();
                (self.peek() == Some(b'"')).then_some(())?;
                let key = self.string()?;
                self.eat(b':').then_some(())?;
                let mut value = String::new();
                self.value(&mut value)?;
                members.push((key, value));
                if self.eat(b'}') {
                    break;
                }
                self.eat(b',').then_some(())?;
            }
        }
        // jsonb's order; stable, so that among equal keys the last one
        // given ends a run, and is the one kept.
        members.sort_by(|(a, _), (b, _)| {
            a.len()
                .cmp(&b.len())
                .then_with(|| a.as_bytes().cmp(b.as_bytes()))
        });
        out.push('{');
        let mut first = true;
        for (i, (key, value)) in members.iter().enumerate() {
            if members.get(i + 1).is_some_and(|(next, _)| next == key) {
                continue;
            }
            if !first {
                out.push_str(", ");
            }
            first = false;
            escape(key, out);
            out.push_str(": ");
            out.push_str(value);
        }
        out.push('}');
        Some(())
    }

    /// A string's value, its escapes decoded.
    fn string(&mut self) -> Option<String> {
        self.at += 1;
        let mut text = String::new();
        loop {
            let start = self.at;
            while !matches!(self.peek()?, b'"' | b'\\') {
                self.at += 1;
            }
            text.push_str(std::str::from_utf8(self.bytes.get(start..self.at)?).ok()?);
            let byte = self.peek()?;
            self.at += 1;
            if byte == b'"' {
                return Some(text);
            }
            let escaped = self.peek()?;
            self.at += 1;
            match escaped {
                b'"' => text.push('"'),
                b'\\' => text.push('\\'),
                b'/' => text.push('/'),
                b'b' => text.push('\u{8}'),
                b'f' => text.push('\u{c}'),
                b'n' => text.push('\n'),
                b'r' => text.push('\r'),
                b't' => text.push('\t'),
                b'u' => {
                    let unit = self.hex4()?;
                    let code = if (0xD800..0xDC00).contains(&unit) {
                        (self.bytes.get(self.at..self.at + 2)? == b"\\u").then_some(())?;
                        self.at += 2;
                        let low = self.hex4()?;
                        (0xDC00..0xE000).contains(&low).then_some(())?;
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        unit
                    };
                    // \u0000 and lone surrogates: jsonb refuses them.
                    (code != 0).then_some(())?;
                    text.push(char::from_u32(code)?);
                }
                _ => return None,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = std::str::from_utf8(self.bytes.get(self.at..self.at + 4)?).ok()?;
        self.at += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    fn number(&mut self, out: &mut String) -> Option<()> {
        let start = self.at;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.at += 1;
        }
        let literal = std::str::from_utf8(self.bytes.get(start..self.at)?).ok()?;
        let exponent = literal.contains(['e', 'E']);
        let negative_zero =
            literal.starts_with('-') && literal.bytes().all(|b| matches!(b, b'-' | b'0' | b'.'));
        if exponent || negative_zero {
            return None;
        }
        out.push_str(literal);
        Some(())
    }
}

/// A string as `escape_json` prints it: quotes, backslashes and control
/// characters escaped (these with lowercase hex), everything else as it is.
fn escape(text: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::printed;

    #[test]
    fn objects_print_in_jsonb_key_order_with_its_separators() {
        assert_eq!(
            printed(r#"{"model":"x","average_rank":1.25,"rankings_count":4,"borda_score":15}"#)
                .as_deref(),
            Some(r#"{"model": "x", "borda_score": 15, "average_rank": 1.25, "rankings_count": 4}"#)
        );
        assert_eq!(
            printed(r#"{"b": 1, "a": 2, "aa": 3}"#).as_deref(),
            Some(r#"{"a": 2, "b": 1, "aa": 3}"#)
        );
        assert_eq!(printed(" { } ").as_deref(), Some("{}"));
        assert_eq!(printed("[ ]").as_deref(), Some("[]"));
        assert_eq!(
            printed("[1,[true,false,null],{}]").as_deref(),
            Some("[1, [true, false, null], {}]")
        );
    }

    #[test]
    fn the_last_of_duplicate_keys_is_kept() {
        assert_eq!(
            printed(r#"{"a": 1, "b": 2, "a": 3, "a": 4}"#).as_deref(),
            Some(r#"{"a": 4, "b": 2}"#)
        );
    }

    #[test]
    fn strings_print_decoded_then_escaped_as_escape_json_does() {
        assert_eq!(
            printed(r#""zo\u00eb \u7530\u4e2d \ud83d\ude00 \/""#).as_deref(),
            Some("\"zoë 田中 😀 /\"")
        );
        assert_eq!(
            printed("\"a\\u0001\\u001F\\b\\f\\n\\r\\t\\\"\\\\\"").as_deref(),
            Some("\"a\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\\"")
        );
        // Keys sort by their decoded bytes.
        assert_eq!(
            printed(r#"{"\u0062": 1, "a": 2}"#).as_deref(),
            Some(r#"{"a": 2, "b": 1}"#)
        );
    }

    #[test]
    fn numbers_print_as_written_unless_numeric_out_would_change_them() {
        assert_eq!(
            printed("[0, -1, 1.50, 0.0, 12345678901234567890.25]").as_deref(),
            Some("[0, -1, 1.50, 0.0, 12345678901234567890.25]")
        );
        for changed in ["1e2", "[1E-2]", "-0", "-0.00", r#"{"a": -0.0}"#] {
            assert_eq!(printed(changed), None, "{changed}");
        }
    }

    #[test]
    fn what_jsonb_refuses_or_is_not_json_prints_nothing() {
        for bad in [
            "",
            "[1,",
            r#"{"a" 1}"#,
            r#""\u0000""#,
            r#""\ud800""#,
            r#""\ud800\u0041""#,
            "[1] x",
            "tru",
        ] {
            assert_eq!(printed(bad), None, "{bad}");
        }
    }
}
