//! What council_search's snippets are made of, for documents parsed with
//! `council_english`, without parsing their text again.
//!
//! `ts_headline` parses a text as `to_tsvector` does, running every word
//! through the dictionaries to find the ones the query names: on a search's
//! twenty results that was most of its time. The stored document already
//! says where the query's lexemes are: each lexeme's positions count the
//! words that gave a lexeme or were stop words, in the parser's order. So
//! the text is split here with the parser's own tokens (`search::tokens`),
//! words are counted as `hlparsetext` counts them, and a word is marked with
//! the query's operands whose lexemes the document holds at its position.
//! PostgreSQL's own headline (`prsd_headline`, `generateHeadline`) then
//! chooses and marks the fragments exactly as `ts_headline` does. A
//! headline of fragments (MaxFragments above 0, as council_search's are)
//! reaches at most MaxWords words past the last word it marks, so the text
//! past them is not split at all: on a long text with its matches early,
//! most of the work.
//!
//! What the document cannot say: PostgreSQL keeps the first 256 positions of
//! a lexeme and counts every word past the 16,383rd as the 16,383rd, so a
//! match beyond either is not marked (and a fragment is not chosen for it).
//! `ts_headline` also skips a word of 2,047 bytes or more, as `to_tsvector`
//! does; so does this.

use crate::error::Error;
use crate::search::score::TsVector;
use crate::search::tokens::{self, Kind, Token};
use crate::search::tsquery::Query;

/// The longest word PostgreSQL's text search takes (`MAXSTRLEN` + 1 bytes
/// and longer are skipped, with a NOTICE from `to_tsvector`).
const MAX_WORD: usize = 2047;
/// The last position a tsvector tells apart (`MAXENTRYPOS` − 1).
const LAST_POSITION: u16 = (1 << 14) - 1;
pub use crate::search::tsquery::Operand;

/// The operands of a tsquery, from its stored bytes (`search::tsquery`).
pub fn operands(query: &[u8]) -> Result<Vec<Operand<'_>>, Error> {
    Ok(Query::parse(query)?.operands().collect())
}

/// A token of the text as the headline sees it: its place and kind, and
/// the position `to_tsvector` gave the lexeme it made (0: none, for a
/// separator or a stop word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Word {
    pub token: Token,
    pub position: u16,
}

/// The text's words, and which operands each matches: (word, item) pairs,
/// ordered by word, then by item, as `hlfinditem` lists them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Marked {
    pub words: Vec<Word>,
    pub matches: Vec<(usize, usize)>,
}

/// Splits `text` into the headline's words and marks the ones whose
/// lexeme, as `document` (the text's stored tsvector) holds it at their
/// position, matches one of `operands`. With `words_after_last_match`, the
/// words past that many after the last marked one are left out: a headline
/// that cannot reach them (`headline::Options`) need not split them.
pub fn mark(
    text: &[u8],
    document: &TsVector<'_>,
    operands: &[Operand<'_>],
    words_after_last_match: Option<u32>,
) -> Result<Marked, Error> {
    // which positions hold a lexeme: the others were stop words
    let mut held = vec![0u64; usize::from(LAST_POSITION) / 64 + 1];
    for index in 0..document.lexemes() {
        for p in document.positions_of(index)? {
            held[usize::from(p) / 64] |= 1 << (p % 64);
        }
    }
    let is_held = |p: u16| held[usize::from(p) / 64] & (1 << (p % 64)) != 0;

    let mut at_position = Vec::new();
    for operand in operands {
        for index in document.matching(operand.lexeme, operand.prefix)? {
            for p in document.positions_of(index)? {
                // past the last position, which word it was is lost
                if p < LAST_POSITION {
                    at_position.push((p, operand.item));
                }
            }
        }
    }
    at_position.sort_unstable();
    at_position.dedup();
    // the last word to split: one more than the headline can reach
    let last_word = words_after_last_match.map(|after| {
        let last_match = at_position.last().map_or(0, |&(p, _)| u32::from(p));
        last_match.saturating_add(after).saturating_add(1)
    });

    // a word and the blank after it, for every three bytes or so of
    // prose: a guess that spares growing the list as the text is read
    let mut marked = Marked {
        words: Vec::with_capacity(text.len() / 3 + 1),
        matches: Vec::new(),
    };
    let mut next_match = at_position.iter().peekable();
    let mut counted: u32 = 0;
    let mut at = 0;
    while let Some(token) = tokens::token_at(text, at) {
        at = token.start + token.len;
        if token.kind == Kind::Blank {
            marked.words.push(Word { token, position: 0 });
            continue;
        }
        if token.len >= MAX_WORD {
            continue;
        }
        if last_word.is_some_and(|last| counted >= last) {
            break;
        }
        counted += 1;
        let position = u16::try_from(counted).map_or(LAST_POSITION, |p| p.min(LAST_POSITION));
        let word = marked.words.len();
        marked.words.push(Word {
            token,
            position: if is_held(position) { position } else { 0 },
        });
        while let Some(&&(p, item)) = next_match.peek() {
            if u32::from(p) > counted {
                break;
            }
            if u32::from(p) == counted {
                marked.matches.push((word, item));
            }
            next_match.next();
        }
    }
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::score::tests::stored;

    /// A tsquery as PostgreSQL stores it, of operands alone (the operators
    /// between them do not matter here): (lexeme, prefix), and a `!`
    /// operator item first.
    fn query(operands: &[(&str, bool)]) -> Vec<u8> {
        let count = operands.len() + 1;
        let mut bytes = (count as u32).to_ne_bytes().to_vec();
        let mut strings = Vec::new();
        bytes.extend_from_slice(&[2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for (lexeme, prefix) in operands {
            let packed = (lexeme.len() as u32) | ((strings.len() as u32) << 12);
            bytes.extend_from_slice(&[1, 0, u8::from(*prefix), 0, 0, 0, 0, 0]);
            bytes.extend_from_slice(&packed.to_ne_bytes());
            strings.extend_from_slice(lexeme.as_bytes());
            strings.push(0);
        }
        bytes.extend_from_slice(&strings);
        bytes
    }

    #[test]
    fn a_querys_operands_are_read_with_their_items() {
        let bytes = query(&[("cat", false), ("do", true)]);
        let found = operands(&bytes).expect("operands");
        assert_eq!(
            found,
            vec![
                Operand {
                    item: 1,
                    lexeme: b"cat",
                    prefix: false,
                    weight: 0,
                },
                Operand {
                    item: 2,
                    lexeme: b"do",
                    prefix: true,
                    weight: 0,
                },
            ]
        );
        assert!(operands(&bytes[..10]).is_err());
        let mut past = bytes.clone();
        past.truncate(past.len() - 4);
        assert!(operands(&past).is_err(), "an operand's text past the end");
    }

    #[test]
    fn words_are_counted_as_to_tsvector_counts_them_and_matches_marked() {
        // "The cats, and 2 dogs! Cats." : the(1, stop) cats(2) and(3, stop)
        // 2(4) dogs(5) cats(6)
        let text = b"The cats, and 2 dogs! Cats.";
        let document = stored(&[("2", &[4]), ("cat", &[2, 6]), ("dog", &[5])]);
        let document = TsVector::parse(&document).expect("tsvector");
        let query = query(&[("cat", false), ("do", true), ("cat", false)]);
        let marked =
            mark(text, &document, &operands(&query).expect("operands"), None).expect("mark");
        let words: Vec<(&str, u16)> = marked
            .words
            .iter()
            .map(|w| {
                let t = w.token;
                (
                    std::str::from_utf8(&text[t.start..t.start + t.len]).expect("utf8"),
                    w.position,
                )
            })
            .collect();
        assert_eq!(
            words,
            vec![
                ("The", 0),
                (" ", 0),
                ("cats", 2),
                (", ", 0),
                ("and", 0),
                (" ", 0),
                ("2", 4),
                (" ", 0),
                ("dogs", 5),
                ("! ", 0),
                ("Cats", 6),
                (".", 0),
            ]
        );
        // "cats" matches items 1 and 3; "dogs" the prefix "do" (item 2)
        assert_eq!(
            marked.matches,
            vec![(2, 1), (2, 3), (8, 2), (10, 1), (10, 3)]
        );
    }

    #[test]
    fn words_past_the_headlines_reach_are_not_split() {
        // a(1) cat(2) b(3) c(4) d(5) e(6) f(7)
        let text = b"a cat b c d e f";
        let document = stored(&[("cat", &[2])]);
        let document = TsVector::parse(&document).expect("tsvector");
        let query = query(&[("cat", false)]);
        let operands = operands(&query).expect("operands");
        let last_word = |reach| {
            let marked = mark(text, &document, &operands, reach).expect("mark");
            let token = marked
                .words
                .iter()
                .rev()
                .find(|word| word.token.kind != Kind::Blank)
                .expect("a word")
                .token;
            assert_eq!(marked.matches, vec![(2, 1)]);
            std::str::from_utf8(&text[token.start..token.start + token.len])
                .expect("utf8")
                .to_string()
        };
        // two words past the match, and one more
        assert_eq!(last_word(Some(2)), "d");
        assert_eq!(last_word(Some(0)), "b");
        assert_eq!(last_word(Some(9)), "f");
        assert_eq!(last_word(None), "f");
        // no match: the first words, as many
        let nothing = stored(&[("dog", &[3])]);
        let nothing = TsVector::parse(&nothing).expect("tsvector");
        let marked = mark(text, &nothing, &operands, Some(1)).expect("mark");
        let words = marked.words.iter().filter(|w| w.token.kind != Kind::Blank);
        assert_eq!(words.count(), 2, "a and cat");
    }

    #[test]
    fn a_word_too_long_to_index_is_skipped_and_not_counted() {
        let long = "x".repeat(MAX_WORD);
        let text = format!("{long} cat");
        let document = stored(&[("cat", &[1])]);
        let document = TsVector::parse(&document).expect("tsvector");
        let query = query(&[("cat", false)]);
        let marked = mark(
            text.as_bytes(),
            &document,
            &operands(&query).expect("operands"),
            None,
        )
        .expect("mark");
        assert_eq!(marked.words.len(), 2, "the blank and cat");
        assert_eq!(marked.words[1].position, 1);
        assert_eq!(marked.matches, vec![(1, 1)]);
    }
}
