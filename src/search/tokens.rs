//! How `council_parser` splits text into tokens, as SQLite FTS5's
//! `unicode61` tokenizer does: a token is a run of letters, digits and
//! combining marks; anything else separates tokens. So `tls.createSecureContext`
//! is `tls` and `createSecureContext`, `0xdeadbeef` one token, `e-mail` two,
//! and a URL its host's and path's words, where PostgreSQL's default parser
//! keeps hosts, file paths and URLs whole and a search for a word inside
//! them finds nothing.
//!
//! The kinds are the default parser's token types, numbered as it numbers
//! them, so that PostgreSQL's own headline function (`prsd_headline`) makes
//! snippets from these tokens, and a configuration maps them by the names
//! DBAs know.
//!
//! Separators are tokens too (`Blank`): a headline is rebuilt from every
//! token, so none of the text may go missing between words.

/// A token's type: the default parser's number and name for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// ASCII letters only
    AsciiWord = 1,
    /// letters, some of them not ASCII
    Word = 2,
    /// letters and digits
    NumWord = 3,
    /// what lies between words
    Blank = 12,
    /// digits only
    UnsignedInt = 22,
}

impl Kind {
    /// Every kind, with the default parser's alias and description.
    pub const ALL: [(Kind, &'static str, &'static str); 5] = [
        (Kind::AsciiWord, "asciiword", "Word, all ASCII"),
        (Kind::Word, "word", "Word, all letters"),
        (Kind::NumWord, "numword", "Word, letters and digits"),
        (Kind::Blank, "blank", "Space symbols"),
        (Kind::UnsignedInt, "uint", "Unsigned integer"),
    ];
}

/// One token: its kind, and where it lies in the text, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub len: usize,
}

/// The token that starts at byte `start` of `text`; None at the end. The
/// text is the database's, which is UTF-8 here; a byte that does not
/// decode is a letter, so that whatever it is stays searchable and nothing
/// is lost. From 0 on, each token starts where the last ended, and they
/// cover every byte.
pub fn token_at(text: &[u8], start: usize) -> Option<Token> {
    let (first, len) = decode(text.get(start..)?)?;
    let in_word = first.in_word();
    let mut shape = Shape::default();
    let mut end = start + len;
    shape.add(first);
    while let Some(&byte) = text.get(end) {
        // Most text is ASCII: one table lookup per byte.
        let (class, len) = if byte.is_ascii() {
            (ASCII[usize::from(byte)], 1)
        } else {
            match text.get(end..).and_then(decode) {
                Some(next) => next,
                None => break,
            }
        };
        if class.in_word() != in_word {
            break;
        }
        shape.add(class);
        end += len;
    }
    let kind = if in_word { shape.kind() } else { Kind::Blank };
    Some(Token {
        kind,
        start,
        len: end - start,
    })
}

/// What one character is, for splitting: its bits are what it adds to a
/// word's [`Shape`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Class {
    Separator = 0,
    AsciiLetter = Shape::LETTERS,
    AsciiDigit = Shape::DIGITS,
    /// a letter, digit or mark beyond ASCII, or a byte that is not UTF-8
    Other = Shape::LETTERS | Shape::NOT_ASCII,
    /// a letter or digit beyond ASCII that is a digit
    OtherDigit = Shape::DIGITS | Shape::NOT_ASCII,
}

impl Class {
    fn in_word(self) -> bool {
        self != Class::Separator
    }
}

/// The class of each ASCII byte.
const ASCII: [Class; 128] = {
    let mut table = [Class::Separator; 128];
    let mut byte = 0;
    while byte < 128 {
        table[byte] = if (byte as u8).is_ascii_alphabetic() {
            Class::AsciiLetter
        } else if (byte as u8).is_ascii_digit() {
            Class::AsciiDigit
        } else {
            Class::Separator
        };
        byte += 1;
    }
    table
};

/// The class of each character of two bytes in UTF-8 (U+0080 to U+07FF:
/// the Latin, Greek, Cyrillic, Armenian, Hebrew and Arabic letters), as
/// [`class_of`] finds it, made on first use: Unicode's tables are searched
/// for each character otherwise, and most text beyond ASCII is made of
/// these.
fn two_byte_class(c: u32) -> Class {
    static TABLE: std::sync::OnceLock<[Class; 0x780]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [Class::Separator; 0x780];
        for (i, class) in table.iter_mut().enumerate() {
            if let Some(c) = u32::try_from(i).ok().and_then(|i| char::from_u32(0x80 + i)) {
                *class = class_of(c);
            }
        }
        table
    });
    usize::try_from(c)
        .ok()
        .and_then(|c| c.checked_sub(0x80))
        .and_then(|i| table.get(i))
        .copied()
        .unwrap_or(Class::Other)
}

/// The class of a character beyond ASCII.
fn class_of(c: char) -> Class {
    if c.is_numeric() {
        Class::OtherDigit
    } else if c.is_alphabetic() || is_mark(c) {
        Class::Other
    } else {
        Class::Separator
    }
}

/// The first character of `bytes` and its length; None when empty.
fn decode(bytes: &[u8]) -> Option<(Class, usize)> {
    let &first = bytes.first()?;
    if first.is_ascii() {
        return Some((ASCII[usize::from(first)], 1));
    }
    if let (0xc2..=0xdf, Some(&second)) = (first, bytes.get(1)) {
        // a lead byte of two, and a continuation byte (or not UTF-8)
        if second & 0xc0 != 0x80 {
            return Some((Class::Other, 1));
        }
        let c = (u32::from(first & 0x1f) << 6) | u32::from(second & 0x3f);
        return Some((two_byte_class(c), 2));
    }
    let width = match first {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return Some((Class::Other, 1)),
    };
    let c = bytes
        .get(..width)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.chars().next());
    let Some(c) = c else {
        return Some((Class::Other, 1));
    };
    Some((class_of(c), width))
}

/// Combining marks, which belong to the word they follow: the accents of
/// decomposed Latin text and the vowel signs and viramas of Indic scripts
/// (whose blocks hold letters and marks alone).
fn is_mark(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036f}'
            | '\u{0483}'..='\u{0489}'
            | '\u{0591}'..='\u{05bd}'
            | '\u{0610}'..='\u{061a}'
            | '\u{064b}'..='\u{065f}'
            | '\u{0900}'..='\u{0dff}'
            | '\u{0e31}'..='\u{0e3a}'
            | '\u{0e47}'..='\u{0e4e}'
            | '\u{1ab0}'..='\u{1aff}'
            | '\u{1dc0}'..='\u{1dff}'
            | '\u{20d0}'..='\u{20ff}'
            | '\u{302a}'..='\u{302f}'
            | '\u{3099}'..='\u{309a}'
            | '\u{fe20}'..='\u{fe2f}'
    )
}

/// What a word has held so far: letters, digits, anything beyond ASCII.
#[derive(Default)]
struct Shape(u8);

impl Shape {
    const LETTERS: u8 = 1;
    const DIGITS: u8 = 2;
    const NOT_ASCII: u8 = 4;

    fn add(&mut self, class: Class) {
        self.0 |= class as u8;
    }

    fn kind(&self) -> Kind {
        let letters = self.0 & Shape::LETTERS != 0;
        let digits = self.0 & Shape::DIGITS != 0;
        let not_ascii = self.0 & Shape::NOT_ASCII != 0;
        match (letters, digits) {
            (true, true) => Kind::NumWord,
            (false, true) if not_ascii => Kind::NumWord,
            (false, _) => Kind::UnsignedInt,
            (true, false) if not_ascii => Kind::Word,
            (true, false) => Kind::AsciiWord,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tokens of `text`, in order.
    struct Tokens<'a> {
        text: &'a [u8],
        at: usize,
    }

    impl<'a> Tokens<'a> {
        fn new(text: &'a [u8]) -> Tokens<'a> {
            Tokens { text, at: 0 }
        }
    }

    impl Iterator for Tokens<'_> {
        type Item = Token;

        fn next(&mut self) -> Option<Token> {
            let token = token_at(self.text, self.at)?;
            self.at = token.start + token.len;
            Some(token)
        }
    }

    fn words(text: &str) -> Vec<(Kind, &str)> {
        Tokens::new(text.as_bytes())
            .filter(|t| t.kind != Kind::Blank)
            .map(|t| (t.kind, &text[t.start..t.start + t.len]))
            .collect()
    }

    #[test]
    fn code_hosts_paths_and_urls_are_their_words() {
        assert_eq!(
            words("tls.createSecureContext(options)"),
            [
                (Kind::AsciiWord, "tls"),
                (Kind::AsciiWord, "createSecureContext"),
                (Kind::AsciiWord, "options"),
            ]
        );
        assert_eq!(
            words("see https://www.postgresql.org/docs/16/textsearch.html"),
            [
                (Kind::AsciiWord, "see"),
                (Kind::AsciiWord, "https"),
                (Kind::AsciiWord, "www"),
                (Kind::AsciiWord, "postgresql"),
                (Kind::AsciiWord, "org"),
                (Kind::AsciiWord, "docs"),
                (Kind::UnsignedInt, "16"),
                (Kind::AsciiWord, "textsearch"),
                (Kind::AsciiWord, "html"),
            ]
        );
        assert_eq!(
            words("/usr/share/doc/README.Debian"),
            [
                (Kind::AsciiWord, "usr"),
                (Kind::AsciiWord, "share"),
                (Kind::AsciiWord, "doc"),
                (Kind::AsciiWord, "README"),
                (Kind::AsciiWord, "Debian"),
            ]
        );
    }

    #[test]
    fn mail_addresses_hyphens_and_numbers_split_at_their_punctuation() {
        assert_eq!(
            words("mail debian-devel@lists.debian.org, 2.5e10 0xdeadbeef -42"),
            [
                (Kind::AsciiWord, "mail"),
                (Kind::AsciiWord, "debian"),
                (Kind::AsciiWord, "devel"),
                (Kind::AsciiWord, "lists"),
                (Kind::AsciiWord, "debian"),
                (Kind::AsciiWord, "org"),
                (Kind::UnsignedInt, "2"),
                (Kind::NumWord, "5e10"),
                (Kind::NumWord, "0xdeadbeef"),
                (Kind::UnsignedInt, "42"),
            ]
        );
    }

    #[test]
    fn other_scripts_are_words_and_marks_stay_in_them() {
        assert_eq!(
            words("Пример: α-βήτα, 日本語のテキスト हिन्दी café"),
            [
                (Kind::Word, "Пример"),
                (Kind::Word, "α"),
                (Kind::Word, "βήτα"),
                (Kind::Word, "日本語のテキスト"),
                (Kind::Word, "हिन्दी"),
                (Kind::Word, "café"),
            ]
        );
        assert_eq!(
            words("١٢٣ v٣"),
            [(Kind::NumWord, "١٢٣"), (Kind::NumWord, "v٣")]
        );
        // A decomposed accent belongs to its letter.
        assert_eq!(
            words("cafe\u{301} bar"),
            [(Kind::Word, "cafe\u{301}"), (Kind::AsciiWord, "bar")]
        );
    }

    #[test]
    fn the_tokens_cover_every_byte_in_order() {
        let text = "  a.b — «ça» 12\n\t\u{feff}end ";
        let mut at = 0;
        for token in Tokens::new(text.as_bytes()) {
            assert_eq!(token.start, at);
            assert!(token.len > 0);
            at += token.len;
        }
        assert_eq!(at, text.len());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_letters_and_nothing_panics() {
        let text = b"ab\xff\xfecd \xe2\x82 x\xc3";
        let tokens: Vec<Token> = Tokens::new(text).collect();
        let covered: usize = tokens.iter().map(|t| t.len).sum();
        assert_eq!(covered, text.len());
        assert_eq!(tokens[0].kind, Kind::Word);
        assert_eq!(tokens[0].len, 6);
        assert_eq!(Tokens::new(b"").count(), 0);
    }

    /// The tokens as `token_at` read them before its ASCII fast path: one
    /// character at a time, each through `decode`.
    fn read_by_character(text: &[u8]) -> Vec<Token> {
        let mut tokens = Vec::new();
        let mut start = 0;
        while let Some((first, len)) = text.get(start..).and_then(decode) {
            let mut shape = Shape::default();
            shape.add(first);
            let mut end = start + len;
            while let Some((class, len)) = text.get(end..).and_then(decode) {
                if class.in_word() != first.in_word() {
                    break;
                }
                shape.add(class);
                end += len;
            }
            let kind = if first.in_word() {
                shape.kind()
            } else {
                Kind::Blank
            };
            tokens.push(Token {
                kind,
                start,
                len: end - start,
            });
            start = end;
        }
        tokens
    }

    #[test]
    fn the_two_byte_table_classes_each_character_as_unicode_does() {
        for c in '\u{80}'..='\u{7ff}' {
            let mut bytes = [0; 4];
            let encoded = c.encode_utf8(&mut bytes).as_bytes();
            assert_eq!(decode(encoded), Some((class_of(c), 2)), "{c:?}");
        }
        // a lead byte of two whose next byte continues nothing, or none
        assert_eq!(decode(b"\xc3A"), Some((Class::Other, 1)));
        assert_eq!(decode(b"\xc3"), Some((Class::Other, 1)));
    }

    #[test]
    fn the_ascii_table_splits_as_reading_each_character_does() {
        let text = "Ça marche: tls.createSecureContext(0xdeadbeef) — «Привет, мир» \
                    Ελληνικά 日本語のテキスト e-mail user@example.org ٣٤٥ x²+y² \
                    cafe\u{301} 12ab ab12 \u{feff}\t\n~!@#$%^&*()_+[]{}|;:'\",.<>/?`";
        let mut bytes = text.as_bytes().to_vec();
        bytes.extend_from_slice(b"ab\xff\xfecd \xe2\x82 x\xc3");
        for start in 0..bytes.len() {
            let tail = &bytes[start..];
            let tokens: Vec<Token> = Tokens::new(tail).collect();
            assert_eq!(tokens, read_by_character(tail), "from byte {start}");
        }
    }
}
