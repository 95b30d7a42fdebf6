//! SQLite TEXT may hold any bytes; PostgreSQL `text` needs valid UTF-8
//! without NUL. Also the shortening used to quote values in messages.

use crate::sqlstate::{self, SqlState};
use std::fmt::Write as _;

/// Why bytes cannot become PostgreSQL `text`. Offsets count bytes from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("invalid UTF-8 at byte offset {offset}: {}{}", hex(.bytes), if *.truncated { " (cut off at the end)" } else { "" })]
    InvalidUtf8 {
        offset: usize,
        /// The offending bytes (at most 3).
        bytes: Vec<u8>,
        /// The bytes start a character that the text ends before completing.
        truncated: bool,
    },

    #[error("NUL byte at byte offset {offset}, which PostgreSQL text cannot store")]
    Nul { offset: usize },
}

impl TextError {
    /// The SQLSTATE PostgreSQL raises for the same fault.
    #[must_use]
    pub fn sqlstate(&self) -> SqlState {
        match self {
            // character_not_in_repertoire: PostgreSQL reports a NUL the same
            // way, as 'invalid byte sequence for encoding "UTF8": 0x00'.
            TextError::InvalidUtf8 { .. } | TextError::Nul { .. } => {
                sqlstate::CHARACTER_NOT_IN_REPERTOIRE
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "0x{byte:02x}");
    }
    out
}

/// The bytes as `&str` if PostgreSQL `text` can hold them. When a value has
/// both faults, the one nearer the start is reported.
pub fn check(bytes: &[u8]) -> Result<&str, TextError> {
    let nul_in = |valid: &[u8]| memchr::memchr(0, valid);
    // Model output is most of a file's bytes: the vectorised check first,
    // and std's, which says where the fault is, only for a faulty value.
    if let Ok(text) = simdutf8::basic::from_utf8(bytes) {
        return match nul_in(text.as_bytes()) {
            Some(offset) => Err(TextError::Nul { offset }),
            None => Ok(text),
        };
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => match nul_in(text.as_bytes()) {
            Some(offset) => Err(TextError::Nul { offset }),
            None => Ok(text),
        },
        Err(error) => {
            let offset = error.valid_up_to();
            if let Some(nul) = nul_in(bytes.get(..offset).unwrap_or_default()) {
                return Err(TextError::Nul { offset: nul });
            }
            let (bad, truncated) = match error.error_len() {
                Some(len) => (bytes.get(offset..offset + len), false),
                None => (bytes.get(offset..), true),
            };
            Err(TextError::InvalidUtf8 {
                offset,
                bytes: bad.unwrap_or_default().to_vec(),
                truncated,
            })
        }
    }
}

/// `value` for an error message: at most `max_chars` characters, then `…`
/// if anything was cut, with control characters escaped so the message
/// stays on one line and cannot reorder the text around it.
#[must_use]
pub fn cut(value: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max_chars.saturating_mul(4)) + 3);
    let mut chars = value.chars();
    for c in chars.by_ref().take(max_chars) {
        push_escaped(&mut out, c);
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// Like [`cut`] for bytes that may not be UTF-8; invalid sequences show as U+FFFD.
#[must_use]
pub fn cut_bytes(bytes: &[u8], max_chars: usize) -> String {
    // A character takes at most 4 bytes, so this prefix holds the first
    // max_chars characters whole; decoding the rest would be wasted work.
    let limit = max_chars.saturating_mul(4);
    let prefix = bytes.get(..limit).unwrap_or(bytes);
    let mut out = cut(&String::from_utf8_lossy(prefix), max_chars);
    if prefix.len() < bytes.len() && !out.ends_with('…') {
        out.push('…');
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        // Line and paragraph separators break lines too; the bidirectional
        // controls would reorder the message around the value.
        c if c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
        {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_accepts_utf8() {
        assert_eq!(check(b""), Ok(""));
        assert_eq!(check(b"plain"), Ok("plain"));
        assert_eq!(check("é 中 😀 \u{feff}".as_bytes()), Ok("é 中 😀 \u{feff}"));
        assert_eq!(
            check(b"tab\tnew\nline\x01\x7f"),
            Ok("tab\tnew\nline\x01\x7f")
        );
    }

    #[test]
    fn check_rejects_nul() {
        let e = check(b"ab\0cd").unwrap_err();
        assert_eq!(e, TextError::Nul { offset: 2 });
        assert_eq!(e.sqlstate(), "22021");
        assert_eq!(
            e.to_string(),
            "NUL byte at byte offset 2, which PostgreSQL text cannot store"
        );
        assert_eq!(check(b"\0").unwrap_err(), TextError::Nul { offset: 0 });
        assert_eq!(
            check("é\0".as_bytes()).unwrap_err(),
            TextError::Nul { offset: 2 }
        );
    }

    #[test]
    fn check_rejects_invalid_utf8_with_offset() {
        let invalid = |offset, bytes: &[u8], truncated| TextError::InvalidUtf8 {
            offset,
            bytes: bytes.to_vec(),
            truncated,
        };
        // (input, offset, the bytes named, cut off at the end). Overlong
        // encoding, UTF-16 surrogate, beyond U+10FFFF: PostgreSQL rejects
        // those three as well.
        let cases: [(&[u8], usize, &[u8], bool); 7] = [
            (b"abc\xffdef", 3, b"\xff", false),
            (b"\xc3\x28", 0, b"\xc3", false),
            (b"a\xc0\xafb", 1, b"\xc0", false),
            (b"\xed\xa0\x80", 0, b"\xed", false),
            (b"\xf4\x90\x80\x80", 0, b"\xf4", false),
            (b"ok\xe2\x82", 2, b"\xe2\x82", true),
            (b"\xc3", 0, b"\xc3", true),
        ];
        for (input, offset, bytes, truncated) in cases {
            assert_eq!(
                check(input).unwrap_err(),
                invalid(offset, bytes, truncated),
                "{input:?}"
            );
        }

        let e = check(b"abc\xe2\x82").unwrap_err();
        assert_eq!(e.sqlstate(), "22021");
        assert_eq!(
            e.to_string(),
            "invalid UTF-8 at byte offset 3: 0xe2 0x82 (cut off at the end)"
        );
        assert_eq!(
            check(b"ab\xff").unwrap_err().to_string(),
            "invalid UTF-8 at byte offset 2: 0xff"
        );
    }

    #[test]
    fn check_reports_the_first_fault() {
        assert_eq!(check(b"a\0\xff").unwrap_err(), TextError::Nul { offset: 1 });
        assert!(matches!(
            check(b"a\xff\0").unwrap_err(),
            TextError::InvalidUtf8 { offset: 1, .. }
        ));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn check_agrees_with_std(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
                let expected_ok = std::str::from_utf8(&bytes).is_ok() && !bytes.contains(&0);
                prop_assert_eq!(check(&bytes).is_ok(), expected_ok);
            }

            #[test]
            fn cut_stays_on_one_line(
                value in "\\PC*|[\\x00-\\x1f\\u{2028}\\u{202e}a-z…]{0,50}",
                max in 0usize..60,
            ) {
                let shown = cut(&value, max);
                let unsafe_char = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{202e}');
                prop_assert!(!shown.chars().any(unsafe_char), "{:?}", shown);
                let whole = cut(&value, usize::MAX);
                if value.chars().count() > max {
                    prop_assert!(shown.ends_with('…'), "{:?}", shown);
                    prop_assert!(whole.starts_with(shown.trim_end_matches('…')));
                } else {
                    prop_assert_eq!(shown, whole);
                }
            }

            #[test]
            fn cut_bytes_matches_cut_of_lossy(bytes in prop::collection::vec(any::<u8>(), 0..80), max in 0usize..40) {
                prop_assert_eq!(cut_bytes(&bytes, max), cut(&String::from_utf8_lossy(&bytes), max));
            }
        }
    }

    #[test]
    fn cut_keeps_short_values() {
        assert_eq!(cut("", 5), "");
        assert_eq!(cut("hello", 5), "hello");
        assert_eq!(cut("héllo", 10), "héllo");
    }

    #[test]
    fn cut_counts_characters_not_bytes() {
        assert_eq!(cut("hello world", 5), "hello…");
        assert_eq!(cut("中文中文中文", 2), "中文…");
        assert_eq!(cut("😀😀😀", 1), "😀…");
        assert_eq!(cut("abc", 0), "…");
        assert_eq!(cut("", 0), "");
    }

    #[test]
    fn cut_escapes_controls_to_stay_on_one_line() {
        assert_eq!(cut("a\nb\r\nc\td", 20), "a\\nb\\r\\nc\\td");
        assert_eq!(cut("\0\x1b[31m\x7f", 20), "\\u{0}\\u{1b}[31m\\u{7f}");
        assert_eq!(
            cut("a\u{85}b\u{2028}c\u{2029}", 20),
            "a\\u{85}b\\u{2028}c\\u{2029}"
        );
        assert_eq!(cut("x\u{202e}y\u{2066}", 20), "x\\u{202e}y\\u{2066}");
        // The limit counts characters of the value, not of the escapes.
        assert_eq!(cut("\n\n\n", 2), "\\n\\n…");
        assert!(!cut("line1\nline2\u{2028}", 100).contains(['\n', '\u{2028}']));
    }

    #[test]
    fn cut_bytes_shows_invalid_utf8_lossily() {
        assert_eq!(cut_bytes(b"abc", 10), "abc");
        assert_eq!(cut_bytes(b"ab\xffcd", 10), "ab\u{fffd}cd");
        assert_eq!(cut_bytes(b"ab\xffcd", 3), "ab\u{fffd}…");
        assert_eq!(cut_bytes(b"a\0b", 10), "a\\u{0}b");
        assert_eq!(cut_bytes(b"", 0), "");
        assert_eq!(cut_bytes(b"x", 0), "…");
    }

    #[test]
    fn cut_bytes_agrees_with_cut_over_long_input() {
        let long = "😀é中a\n".repeat(1000);
        for max in [0, 1, 2, 3, 4, 5, 7, 100, 4999, 5000, 5001, 10_000] {
            assert_eq!(cut_bytes(long.as_bytes(), max), cut(&long, max), "{max}");
        }
        // Truncated multi-byte sequence exactly at the prefix boundary.
        let mut bytes = b"abcd".to_vec();
        bytes.extend_from_slice("😀".as_bytes());
        assert_eq!(cut_bytes(&bytes, 1), "a…");
        assert_eq!(cut_bytes(&bytes, 5), "abcd😀");
        assert_eq!(cut_bytes(&bytes, 4), "abcd…");
        assert_eq!(cut_bytes(&[0xff; 100], 3), "\u{fffd}\u{fffd}\u{fffd}…");
    }
}
