//! A JSON document from council.db compared with a stored `jsonb` in its
//! binary form, without PostgreSQL: neither side is printed or parsed into
//! the other's form, which cost a fifth of a re-import when jsonb_out and
//! jsonb_in did it.
//!
//! `jsonb` keeps a document's meaning, not its spelling: object keys sorted
//! by length, then bytewise, the last of duplicate keys kept, strings with
//! their escapes decoded, numbers as `numeric`. The file's text is read into
//! that shape ([`Document::parse`]) and walked alongside the stored
//! container ([`Document::matches`]), whose layout is PostgreSQL's
//! `jsonb.h`: a header word (count and kind), one JEntry word per child
//! (for an object, every key, then every value), then the children's data,
//! numerics and containers aligned to 4 bytes.

use std::borrow::Cow;

/// A document as jsonb holds it.
#[derive(Debug, PartialEq)]
pub struct Document<'a>(Node<'a>);

#[derive(Debug, PartialEq)]
enum Node<'a> {
    Null,
    Bool(bool),
    /// the literal as written, which is what `numeric_out` prints for it
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    /// in jsonb's key order, without duplicate keys
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'a> Document<'a> {
    /// Reads `json`, text the mapping accepted. None for what cannot be
    /// compared here: a number whose `numeric` prints otherwise than its
    /// literal (an exponent, a negative zero), or text that is not JSON.
    #[must_use]
    pub fn parse(json: &'a str) -> Option<Document<'a>> {
        let mut parser = Parser { text: json, at: 0 };
        let node = parser.value()?;
        parser.skip_whitespace();
        (parser.at == json.len()).then_some(Document(node))
    }

    /// Whether `stored` (a jsonb datum's bytes after its varlena header) is
    /// this document. None when the bytes are not laid out as expected.
    /// Numbers compare as written: 1.5 and 1.50 are not the same here,
    /// though `numeric` finds them equal; the caller asks PostgreSQL when
    /// this says no.
    #[must_use]
    pub fn matches(&self, stored: &[u8]) -> Option<bool> {
        container_matches(&self.0, stored)
    }
}

// jsonb.h
const JB_CMASK: u32 = 0x0FFF_FFFF;
const JB_FSCALAR: u32 = 0x1000_0000;
const JB_FOBJECT: u32 = 0x2000_0000;
const JB_FARRAY: u32 = 0x4000_0000;
const JENTRY_OFFLENMASK: u32 = 0x0FFF_FFFF;
const JENTRY_TYPEMASK: u32 = 0x7000_0000;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;
const JENTRY_ISSTRING: u32 = 0x0000_0000;
const JENTRY_ISNUMERIC: u32 = 0x1000_0000;
const JENTRY_ISBOOL_FALSE: u32 = 0x2000_0000;
const JENTRY_ISBOOL_TRUE: u32 = 0x3000_0000;
const JENTRY_ISNULL: u32 = 0x4000_0000;
const JENTRY_ISCONTAINER: u32 = 0x5000_0000;

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    let word: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_ne_bytes(word))
}

fn int_align(offset: usize) -> usize {
    (offset + 3) & !3
}

/// A container's children: their JEntries, and where their data begins.
struct Children<'s> {
    bytes: &'s [u8],
    count: usize,
    /// entries: `count` for an array, twice that for an object
    entries: usize,
}

impl<'s> Children<'s> {
    fn entry(&self, index: usize) -> Option<u32> {
        (index < self.entries).then(|| word(self.bytes, 4 + 4 * index))?
    }

    /// getJsonbOffset: the lengths back to the last entry that holds an
    /// offset, summed.
    fn offset(&self, index: usize) -> Option<usize> {
        let mut offset = 0usize;
        for i in (0..index).rev() {
            let entry = self.entry(i)?;
            offset = offset.checked_add((entry & JENTRY_OFFLENMASK) as usize)?;
            if entry & JENTRY_HAS_OFF != 0 {
                break;
            }
        }
        Some(offset)
    }

    /// The child's kind and its bytes (numerics and containers past their
    /// alignment padding).
    fn child(&self, index: usize) -> Option<(u32, &'s [u8])> {
        let entry = self.entry(index)?;
        let start = self.offset(index)?;
        let field = (entry & JENTRY_OFFLENMASK) as usize;
        let end = if entry & JENTRY_HAS_OFF != 0 {
            field
        } else {
            start.checked_add(field)?
        };
        let kind = entry & JENTRY_TYPEMASK;
        let start = match kind {
            JENTRY_ISNUMERIC | JENTRY_ISCONTAINER => int_align(start),
            _ => start,
        };
        let base = 4 + 4 * self.entries;
        let data = self.bytes.get(base + start..base + end)?;
        Some((kind, data))
    }
}

fn container_matches(node: &Node<'_>, bytes: &[u8]) -> Option<bool> {
    let header = word(bytes, 0)?;
    let count = (header & JB_CMASK) as usize;
    let object = header & JB_FOBJECT != 0;
    let children = Children {
        bytes,
        count,
        entries: if object { count.checked_mul(2)? } else { count },
    };
    if header & JB_FSCALAR != 0 {
        if count != 1 || matches!(node, Node::Array(_) | Node::Object(_)) {
            return Some(false);
        }
        return child_matches(node, &children, 0);
    }
    match node {
        Node::Array(items) if header & JB_FARRAY != 0 => {
            if items.len() != children.count {
                return Some(false);
            }
            for (i, item) in items.iter().enumerate() {
                if !child_matches(item, &children, i)? {
                    return Some(false);
                }
            }
            Some(true)
        }
        Node::Object(members) if object => {
            if members.len() != children.count {
                return Some(false);
            }
            for (i, (key, value)) in members.iter().enumerate() {
                let (kind, stored_key) = children.child(i)?;
                if kind != JENTRY_ISSTRING || stored_key != key.as_bytes() {
                    return Some(false);
                }
                if !child_matches(value, &children, children.count + i)? {
                    return Some(false);
                }
            }
            Some(true)
        }
        _ => Some(false),
    }
}

fn child_matches(node: &Node<'_>, children: &Children<'_>, index: usize) -> Option<bool> {
    let (kind, data) = children.child(index)?;
    Some(match (kind, node) {
        (JENTRY_ISNULL, Node::Null) => true,
        (JENTRY_ISBOOL_TRUE, Node::Bool(true)) | (JENTRY_ISBOOL_FALSE, Node::Bool(false)) => true,
        (JENTRY_ISSTRING, Node::String(text)) => data == text.as_bytes(),
        (JENTRY_ISNUMERIC, Node::Number(literal)) => numeric_text(data)? == *literal,
        (JENTRY_ISCONTAINER, Node::Array(_) | Node::Object(_)) => container_matches(node, data)?,
        _ => false,
    })
}

/// What `numeric_out` prints for a stored numeric (a varlena: numeric.c's
/// NumericShort or NumericLong, digits in base 10,000). None for the special
/// values, which jsonb never holds, and for bytes that are not a numeric.
fn numeric_text(varlena: &[u8]) -> Option<String> {
    numeric_var(varlena).map(|var| var.text())
}

/// A numeric as numeric.c's NumericVar holds it: sign, display scale,
/// weight of the first base-10000 digit, and the digits.
struct NumericVar {
    negative: bool,
    dscale: u16,
    weight: i32,
    digits: Vec<i32>,
}

/// The numeric stored in `varlena` (short or long header); None for NaN
/// and the infinities, and on machines other than little-endian ones.
fn numeric_var(varlena: &[u8]) -> Option<NumericVar> {
    const NUMERIC_SIGN_MASK: u16 = 0xC000;
    const NUMERIC_NEG: u16 = 0x4000;
    const NUMERIC_SHORT: u16 = 0x8000;
    const NUMERIC_SPECIAL: u16 = 0xC000;
    const NUMERIC_SHORT_SIGN_MASK: u16 = 0x2000;
    const NUMERIC_SHORT_DSCALE_MASK: u16 = 0x1F80;
    const NUMERIC_SHORT_DSCALE_SHIFT: u16 = 7;
    const NUMERIC_SHORT_WEIGHT_SIGN_MASK: u16 = 0x0040;
    const NUMERIC_SHORT_WEIGHT_MASK: u16 = 0x003F;
    const NUMERIC_DSCALE_MASK: u16 = 0x3FFF;

    // The varlena header: a 1-byte one has its low bit set (little-endian
    // layout; on other machines the caller falls back to PostgreSQL).
    if !cfg!(target_endian = "little") {
        return None;
    }
    let first = *varlena.first()?;
    let (size, header) = if first & 0x01 == 0x01 {
        ((first >> 1) as usize, 1)
    } else {
        ((word(varlena, 0)? >> 2) as usize, 4)
    };
    let body = varlena.get(header..size)?;
    let half = |at: usize| -> Option<u16> {
        Some(u16::from_ne_bytes(body.get(at..at + 2)?.try_into().ok()?))
    };
    let n_header = half(0)?;
    let (negative, dscale, weight, digits_at) = match n_header & NUMERIC_SIGN_MASK {
        NUMERIC_SPECIAL => return None,
        NUMERIC_SHORT => {
            let weight_bits = i32::from(n_header & NUMERIC_SHORT_WEIGHT_MASK);
            let weight = if n_header & NUMERIC_SHORT_WEIGHT_SIGN_MASK != 0 {
                weight_bits | !i32::from(NUMERIC_SHORT_WEIGHT_MASK)
            } else {
                weight_bits
            };
            (
                n_header & NUMERIC_SHORT_SIGN_MASK != 0,
                (n_header & NUMERIC_SHORT_DSCALE_MASK) >> NUMERIC_SHORT_DSCALE_SHIFT,
                weight,
                2,
            )
        }
        sign => (
            sign == NUMERIC_NEG,
            n_header & NUMERIC_DSCALE_MASK,
            i32::from(half(2)? as i16),
            4,
        ),
    };
    let digits = body
        .get(digits_at..)?
        .chunks_exact(2)
        .filter_map(|pair| <[u8; 2]>::try_from(pair).ok())
        .map(|pair| i32::from(i16::from_ne_bytes(pair)))
        .collect();
    Some(NumericVar {
        negative,
        dscale,
        weight,
        digits,
    })
}

impl NumericVar {
    fn digit(&self, d: i32) -> i32 {
        usize::try_from(d)
            .ok()
            .and_then(|d| self.digits.get(d).copied())
            .unwrap_or(0)
    }

    /// numeric.c's get_str_from_var.
    fn text(&self) -> String {
        let mut text = String::new();
        if self.negative {
            text.push('-');
        }
        let mut d;
        if self.weight < 0 {
            d = self.weight + 1;
            text.push('0');
        } else {
            d = 0;
            while d <= self.weight {
                let group = self.digit(d);
                if d == 0 {
                    text.push_str(&group.to_string());
                } else {
                    text.push_str(&format!("{group:04}"));
                }
                d += 1;
            }
        }
        if self.dscale > 0 {
            text.push('.');
            let mut fraction = String::new();
            while fraction.len() < usize::from(self.dscale) {
                fraction.push_str(&format!("{:04}", self.digit(d)));
                d += 1;
            }
            fraction.truncate(usize::from(self.dscale));
            text.push_str(&fraction);
        }
        text
    }
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
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

    fn literal(&mut self, word: &str, node: Node<'a>) -> Option<Node<'a>> {
        self.text.get(self.at..)?.starts_with(word).then_some(())?;
        self.at += word.len();
        Some(node)
    }

    fn value(&mut self) -> Option<Node<'a>> {
        self.skip_whitespace();
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(Node::String),
            b't' => self.literal("true", Node::Bool(true)),
            b'f' => self.literal("false", Node::Bool(false)),
            b'n' => self.literal("null", Node::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn array(&mut self) -> Option<Node<'a>> {
        self.at += 1;
        let mut items = Vec::new();
        if !self.eat(b']') {
            loop {
                items.push(self.value()?);
                if self.eat(b']') {
                    break;
                }
                self.eat(b',').then_some(())?;
            }
        }
        Some(Node::Array(items))
    }

    fn object(&mut self) -> Option<Node<'a>> {
        self.at += 1;
        let mut members: Vec<(Cow<'a, str>, Node<'a>)> = Vec::new();
        if !self.eat(b'}') {
            loop {
                self.skip_whitespace();
                (self.peek() == Some(b'"')).then_some(())?;
                let key = self.string()?;
                self.eat(b':').then_some(())?;
                members.push((key, self.value()?));
                if self.eat(b'}') {
                    break;
                }
                self.eat(b',').then_some(())?;
            }
        }
        // jsonb's order; stable, so that among equal keys the last one given
        // ends a run, and is the one kept.
        members.sort_by(|(a, _), (b, _)| {
            a.len()
                .cmp(&b.len())
                .then_with(|| a.as_bytes().cmp(b.as_bytes()))
        });
        let mut kept: Vec<(Cow<'a, str>, Node<'a>)> = Vec::with_capacity(members.len());
        for member in members {
            match kept.last_mut() {
                Some(last) if last.0 == member.0 => *last = member,
                _ => kept.push(member),
            }
        }
        Some(Node::Object(kept))
    }

    /// A string's value, its escapes decoded; borrowed when it has none.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.at += 1;
        let start = self.at;
        while !matches!(self.peek()?, b'"' | b'\\') {
            self.at += 1;
        }
        if self.peek()? == b'"' {
            let text = self.text.get(start..self.at)?;
            self.at += 1;
            return Some(Cow::Borrowed(text));
        }
        let mut text = String::from(self.text.get(start..self.at)?);
        loop {
            let run = self.at;
            while !matches!(self.peek()?, b'"' | b'\\') {
                self.at += 1;
            }
            text.push_str(self.text.get(run..self.at)?);
            let byte = self.peek()?;
            self.at += 1;
            if byte == b'"' {
                return Some(Cow::Owned(text));
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
                        self.text.get(self.at..)?.starts_with("\\u").then_some(())?;
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
        let digits = self.text.get(self.at..self.at + 4)?;
        self.at += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    fn number(&mut self) -> Option<Node<'a>> {
        let start = self.at;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.at += 1;
        }
        let literal = self.text.get(start..self.at)?;
        let exponent = literal.contains(['e', 'E']);
        let negative_zero =
            literal.starts_with('-') && literal.bytes().all(|b| matches!(b, b'-' | b'0' | b'.'));
        if exponent || negative_zero {
            return None;
        }
        Some(Node::Number(literal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_take_jsonb_key_order_and_the_last_of_duplicate_keys() {
        let Some(Document(Node::Object(members))) =
            Document::parse(r#"{"b": 1, "a": 2, "aa": 3, "a": 4}"#)
        else {
            unreachable!("an object");
        };
        let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["a", "b", "aa"]);
        assert_eq!(members[0].1, Node::Number("4"));
    }

    #[test]
    fn strings_are_decoded_and_borrowed_when_they_can_be() {
        let Some(Document(Node::Array(items))) =
            Document::parse(r#"["plain", "zo\u00eb \ud83d\ude00 \/ \n"]"#)
        else {
            unreachable!("an array");
        };
        assert!(matches!(&items[0], Node::String(Cow::Borrowed("plain"))));
        assert_eq!(items[1], Node::String(Cow::Owned("zoë 😀 / \n".into())));
    }

    #[test]
    fn what_cannot_be_compared_here_or_is_not_json_gives_none() {
        for text in [
            "1e2",
            "[1E-2]",
            "-0",
            "-0.00",
            "",
            "[1,",
            r#"{"a" 1}"#,
            r#""\u0000""#,
            r#""\ud800""#,
            "[1] x",
            "tru",
        ] {
            assert_eq!(Document::parse(text), None, "{text}");
        }
    }

    /// A jsonb container by hand: `{"a": 1.5, "bb": [true, null]}` as
    /// PostgreSQL lays it out (checked against PostgreSQL in
    /// `import::compare`'s in-database test).
    fn stored_example() -> Vec<u8> {
        let mut bytes = Vec::new();
        let push = |bytes: &mut Vec<u8>, word: u32| bytes.extend_from_slice(&word.to_ne_bytes());
        // the inner array [true, null]: header, two entries, no data
        let mut inner = Vec::new();
        push(&mut inner, JB_FARRAY | 2);
        push(&mut inner, JENTRY_ISBOOL_TRUE);
        push(&mut inner, JENTRY_ISNULL);
        // the numeric 1.5: short form, weight 0, dscale 1, digits [1, 5000]
        let numeric: Vec<u8> = {
            let mut n = vec![(7u8 << 1) | 1];
            n.extend_from_slice(&(0x8000u16 | (1 << 7)).to_ne_bytes());
            n.extend_from_slice(&1i16.to_ne_bytes());
            n.extend_from_slice(&5000i16.to_ne_bytes());
            n
        };
        push(&mut bytes, JB_FOBJECT | 2);
        push(&mut bytes, JENTRY_ISSTRING | 1); // "a"
        push(&mut bytes, JENTRY_ISSTRING | 2); // "bb"
        let numeric_len = 1 + numeric.len(); // 1 byte of padding first
        push(&mut bytes, JENTRY_ISNUMERIC | numeric_len as u32);
        let inner_len = 1 + inner.len(); // padding to 4 again
        push(&mut bytes, JENTRY_ISCONTAINER | inner_len as u32);
        bytes.extend_from_slice(b"abb");
        bytes.push(0);
        bytes.extend_from_slice(&numeric);
        bytes.push(0);
        bytes.extend_from_slice(&inner);
        bytes
    }

    #[test]
    fn a_document_matches_its_stored_container_and_nothing_else() {
        let stored = stored_example();
        let same = |text: &str| Document::parse(text).and_then(|d| d.matches(&stored));
        assert_eq!(same(r#"{"bb": [true, null], "a": 1.5}"#), Some(true));
        assert_eq!(same(r#"{"a":1.5,"bb":[true,null],"a":1.5}"#), Some(true));
        assert_eq!(same(r#"{"a": 1.50, "bb": [true, null]}"#), Some(false));
        assert_eq!(same(r#"{"a": 1.5, "bb": [true]}"#), Some(false));
        assert_eq!(same(r#"{"a": 1.5, "bb": [false, null]}"#), Some(false));
        assert_eq!(same(r#"{"a": "1.5", "bb": [true, null]}"#), Some(false));
        assert_eq!(same(r#"[1.5]"#), Some(false));
    }

    #[test]
    fn numerics_print_as_numeric_out_does() {
        let numeric = |weight: i16, dscale: u16, negative: bool, digits: &[i16]| {
            let mut n = Vec::new();
            let size = 4 + 4 + 2 * digits.len();
            n.extend_from_slice(&((size as u32) << 2).to_ne_bytes());
            n.extend_from_slice(&((if negative { 0x4000 } else { 0 }) | dscale).to_ne_bytes());
            n.extend_from_slice(&weight.to_ne_bytes());
            for d in digits {
                n.extend_from_slice(&d.to_ne_bytes());
            }
            numeric_text(&n)
        };
        assert_eq!(numeric(0, 0, false, &[]).as_deref(), Some("0"));
        assert_eq!(numeric(0, 2, false, &[]).as_deref(), Some("0.00"));
        assert_eq!(numeric(1, 0, false, &[12, 3456]).as_deref(), Some("123456"));
        assert_eq!(numeric(0, 3, true, &[7, 1250]).as_deref(), Some("-7.125"));
        assert_eq!(numeric(-1, 5, false, &[42]).as_deref(), Some("0.00420"));
        assert_eq!(numeric(2, 0, false, &[1]).as_deref(), Some("100000000"));
    }
}
