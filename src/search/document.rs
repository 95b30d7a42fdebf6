//! A document's tsvector, byte for byte as `to_tsvector` makes it, from the
//! lexemes its words gave, in the parser's order (`to_tsvector.c`'s
//! `uniqueWORD`, then `make_tsvector`): the lexemes sorted bytewise, each
//! with its positions ascending and unique, at most 255 of them, none past
//! 16,383, every lexeme with positions.
//!
//! `council_search_document` parses with `search::tokens` and looks each
//! distinct word up in the configuration's dictionaries once, where
//! `to_tsvector` runs the dictionaries over every word again; what it
//! builds here must equal what `to_tsvector` builds, so that the documents,
//! the queries (read by `to_tsvector` and `websearch_to_tsquery`) and the
//! snippets agree.

/// The last position a tsvector tells apart (`MAXENTRYPOS` − 1): every
/// word past it counts as it.
pub const LAST_POSITION: u16 = (1 << 14) - 1;
/// The positions a lexeme keeps (`MAXNUMPOS` − 1).
const MAX_POSITIONS: usize = 255;
/// The longest a tsvector's lexemes and positions may be (`MAXSTRPOS`).
const MAX_STRINGS: usize = (1 << 20) - 1;
/// The longest lexeme a tsvector's entry can say (11 bits).
pub const MAX_LEXEME: usize = (1 << 11) - 1;

/// The position of the `counted`th word (`LIMITPOS`).
pub fn position(counted: u32) -> u16 {
    u16::try_from(counted).map_or(LAST_POSITION, |p| p.min(LAST_POSITION))
}

/// The tsvector of `words`, each a lexeme (by a number that stands for it
/// alone, which `lexeme` spells) and its position, as the bytes after its
/// varlena header; None when PostgreSQL would refuse it (its lexemes and
/// positions past 1 MB, or a lexeme longer than an entry can say), which
/// `to_tsvector` then says.
pub fn tsvector<'a>(words: &mut [(u32, u16)], lexeme: impl Fn(u32) -> &'a [u8]) -> Option<Vec<u8>> {
    // Each lexeme's positions, ascending; numbers sort faster than bytes,
    // and the lexemes, fewer, are put in PostgreSQL's order afterwards.
    words.sort_unstable();
    let mut positions: Vec<u16> = Vec::with_capacity(words.len());
    let mut lexemes: Vec<(u64, &[u8], std::ops::Range<usize>)> = Vec::new();
    for run in words.chunk_by(|a, b| a.0 == b.0) {
        let start = positions.len();
        for &(_, at) in run {
            match positions.get(start..).and_then(<[u16]>::last) {
                Some(&previous) => {
                    if positions.len() - start < MAX_POSITIONS
                        && previous != LAST_POSITION
                        && previous != at
                    {
                        positions.push(at);
                    }
                }
                None => positions.push(at),
            }
        }
        let spelled = lexeme(run[0].0);
        if spelled.len() > MAX_LEXEME {
            return None;
        }
        lexemes.push((order_prefix(spelled), spelled, start..positions.len()));
    }
    // PostgreSQL's order is the bytes'; their first eight, as a number,
    // decide nearly every comparison without a call to memcmp.
    lexemes.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

    let lexemes: Vec<(&[u8], &[u16])> = lexemes
        .iter()
        .map(|(_, spelled, at)| (*spelled, &positions[at.clone()]))
        .collect();
    write(&lexemes)
}

/// The tsvector of each of `lexemes` with its stored positions (weight
/// bits included), as the bytes after its varlena header: a document the
/// postings hold, made a tsvector again. Its lexemes in any order, each
/// once; a lexeme's positions in any order, as the postings hold them
/// (ascending and unique). None where PostgreSQL would refuse it.
pub fn from_positions(lexemes: &mut [(&[u8], Vec<u16>)]) -> Option<Vec<u8>> {
    lexemes.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (_, positions) in lexemes.iter_mut() {
        positions.sort_unstable_by_key(|p| p & LAST_POSITION);
        positions.dedup_by_key(|p| *p & LAST_POSITION);
    }
    let mut kept: Vec<(&[u8], &[u16])> = Vec::with_capacity(lexemes.len());
    for (spelled, positions) in lexemes.iter() {
        if spelled.len() > MAX_LEXEME || kept.last().is_some_and(|last| last.0 == *spelled) {
            return None;
        }
        kept.push((spelled, positions));
    }
    write(&kept)
}

/// The stored tsvector of `lexemes`, sorted and unique, each with its
/// positions (`tsvector_in`'s layout: a lexeme without positions has no
/// count, and is not padded).
fn write(lexemes: &[(&[u8], &[u16])]) -> Option<Vec<u8>> {
    let mut strings_len = 0usize;
    for (spelled, at) in lexemes {
        strings_len += spelled.len();
        if !at.is_empty() {
            strings_len = strings_len.next_multiple_of(2) + 2 + 2 * at.len();
        }
    }
    if strings_len > MAX_STRINGS {
        return None;
    }
    let mut bytes: Vec<u8> = Vec::with_capacity(4 + 4 * lexemes.len() + strings_len);
    bytes.extend_from_slice(&u32::try_from(lexemes.len()).ok()?.to_ne_bytes());
    let mut offset = 0usize;
    for (spelled, at) in lexemes {
        // haspos:1, len:11, pos:20, from the low bit
        let entry = u32::from(!at.is_empty())
            | (u32::try_from(spelled.len()).ok()? << 1)
            | (u32::try_from(offset).ok()? << 12);
        bytes.extend_from_slice(&entry.to_ne_bytes());
        offset += spelled.len();
        if !at.is_empty() {
            offset = offset.next_multiple_of(2) + 2 + 2 * at.len();
        }
    }
    let strings = bytes.len();
    for (spelled, at) in lexemes {
        bytes.extend_from_slice(spelled);
        if at.is_empty() {
            continue;
        }
        if (bytes.len() - strings) % 2 == 1 {
            bytes.push(0);
        }
        bytes.extend_from_slice(&u16::try_from(at.len()).ok()?.to_ne_bytes());
        for p in *at {
            bytes.extend_from_slice(&p.to_ne_bytes());
        }
    }
    Some(bytes)
}

/// The first eight bytes of `lexeme` as a big-endian number, zeros after a
/// shorter one: numbers in the order of the bytes, as far as eight go (a
/// lexeme holds no zero byte, so a shorter one comes first, as in
/// PostgreSQL's order).
fn order_prefix(lexeme: &[u8]) -> u64 {
    let mut eight = [0u8; 8];
    let n = lexeme.len().min(8);
    eight[..n].copy_from_slice(&lexeme[..n]);
    u64::from_be_bytes(eight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::score::tests::stored;
    use crate::search::score::TsVector;

    /// The tsvector of (lexeme, position) pairs, numbering the lexemes.
    fn built(words: &[(&str, u16)]) -> Option<Vec<u8>> {
        let mut spelled: Vec<&str> = words.iter().map(|w| w.0).collect();
        spelled.sort_unstable();
        spelled.dedup();
        let mut numbered: Vec<(u32, u16)> = words
            .iter()
            .map(|(w, p)| (spelled.iter().position(|s| s == w).unwrap_or(0) as u32, *p))
            .collect();
        tsvector(&mut numbered, |n| spelled[n as usize].as_bytes())
    }

    #[test]
    fn positions_the_postings_hold_make_the_tsvector_again() {
        let mut lexemes: Vec<(&[u8], Vec<u16>)> = vec![
            (b"dog", vec![3, 2]),
            (b"ca", vec![0x4000 | 5]),
            (b"x", vec![]),
            (b"cat", vec![1, 0xC000 | 16_383, 4]),
        ];
        assert_eq!(
            from_positions(&mut lexemes),
            Some(stored(&[
                ("ca", &[0x4000 | 5]),
                ("cat", &[1, 4, 0xC000 | 16_383]),
                ("dog", &[2, 3]),
                ("x", &[]),
            ]))
        );
        // a lexeme without positions is neither padded nor counted: the
        // next one's positions are where PostgreSQL reads them
        let mut odd: Vec<(&[u8], Vec<u16>)> = vec![(b"abc", vec![]), (b"d", vec![7, 9])];
        let bytes = from_positions(&mut odd).expect("a tsvector");
        assert_eq!(bytes, stored(&[("abc", &[]), ("d", &[7, 9])]));
        let read = TsVector::parse(&bytes).expect("parse");
        assert_eq!(read.stored_positions_of(0).expect("none").count(), 0);
        assert_eq!(
            read.stored_positions_of(1).expect("d").collect::<Vec<_>>(),
            vec![7, 9]
        );
        let mut twice: Vec<(&[u8], Vec<u16>)> = vec![(b"a", vec![1]), (b"a", vec![2])];
        assert_eq!(from_positions(&mut twice), None, "a lexeme twice");
        let long = vec![b'a'; MAX_LEXEME + 1];
        let mut too_long: Vec<(&[u8], Vec<u16>)> = vec![(&long, vec![1])];
        assert_eq!(from_positions(&mut too_long), None, "a lexeme too long");
    }

    #[test]
    fn lexemes_sort_and_keep_their_positions_once_each() {
        let built = built(&[
            ("dog", 2),
            ("cat", 1),
            ("dog", 3),
            ("cat", 4),
            ("ca", 5),
            ("cat", 4),
        ]);
        assert_eq!(
            built,
            Some(stored(&[("ca", &[5]), ("cat", &[1, 4]), ("dog", &[2, 3])]))
        );
    }

    #[test]
    fn lexemes_are_in_postgresqls_order_whatever_their_numbers() {
        let mut words = vec![(0, 1), (1, 2), (2, 3)];
        let spelled = ["zeta", "alpha", "alp"];
        let built = tsvector(&mut words, |n| spelled[n as usize].as_bytes());
        assert_eq!(
            built,
            Some(stored(&[("alp", &[3]), ("alpha", &[2]), ("zeta", &[1])]))
        );
    }

    #[test]
    fn lexemes_that_share_eight_bytes_or_go_beyond_ascii_sort_by_their_bytes() {
        let spelled = [
            "internationalization",
            "ünicode",
            "internat",
            "internationalize",
            "internationa",
            "zeta",
            "yψ",
            "a",
        ];
        let mut words: Vec<(u32, u16)> = (0..spelled.len() as u32).map(|n| (n, 1)).collect();
        let built = tsvector(&mut words, |n| spelled[n as usize].as_bytes());
        let mut sorted = spelled.to_vec();
        sorted.sort_unstable_by_key(|s| s.as_bytes());
        let expected: Vec<(&str, &[u16])> = sorted.iter().map(|s| (*s, &[1u16][..])).collect();
        assert_eq!(built, Some(stored(&expected)));
    }

    #[test]
    fn an_empty_document_is_an_empty_tsvector() {
        assert_eq!(built(&[]), Some(0u32.to_ne_bytes().to_vec()));
    }

    #[test]
    fn a_lexeme_keeps_255_positions_and_none_past_the_last() {
        let words: Vec<(&str, u16)> = (1..=300).map(|p| ("a", p)).collect();
        let positions: Vec<u16> = (1..=255).collect();
        assert_eq!(built(&words), Some(stored(&[("a", &positions)])));
        assert_eq!(
            built(&[("b", 16_000), ("b", LAST_POSITION), ("b", LAST_POSITION)]),
            Some(stored(&[("b", &[16_000, LAST_POSITION])]))
        );
        assert_eq!(position(20_000), LAST_POSITION);
        assert_eq!(position(7), 7);
    }

    #[test]
    fn what_postgresql_refuses_is_none() {
        let long = "x".repeat(MAX_LEXEME + 1);
        assert_eq!(built(&[(&long, 1)]), None);
        let many: Vec<String> = (0..1200u32).map(|i| format!("{i:0>1000}")).collect();
        let words: Vec<(&str, u16)> = many.iter().map(|w| (w.as_str(), 1)).collect();
        assert_eq!(built(&words), None, "past 1 MB of lexemes");
    }
}
