//! A tsquery's tree, read from its stored bytes in safe Rust: its operands
//! for the snippets to mark, and for the postings to say which documents
//! may match (the candidates PostgreSQL's own TS_execute then decides on,
//! as it decides for a tsvector).
//!
//! The stored form (`tsquery.h`), after the varlena header: an int32 count
//! of items, the 12-byte items in prefix order (an operator first, its
//! right operand next, its left `left` items on), then the operands' text.
//! An operand's item: type, weight, prefix (a byte each), a byte of
//! padding, a CRC (int32), then length:12 and distance:20 packed from the
//! low bit of a uint32. An operator's: type, operator (a byte each), the
//! phrase distance (int16), then `left` (uint32).

use std::borrow::Cow;

use crate::error::Error;

/// A tsquery's stored item: `QueryItem`, a union of 12 bytes.
pub const ITEM_SIZE: usize = 12;
/// `QI_VAL`, `QI_OPR`: an operand, an operator.
const OPERAND: u8 = 1;
const OPERATOR: u8 = 2;
/// `OP_NOT`, `OP_AND`, `OP_OR`, `OP_PHRASE`.
const NOT: u8 = 1;
const AND: u8 = 2;
const OR: u8 = 3;
const PHRASE: u8 = 4;

/// One of the query's operands: the lexeme to match, and its item's index
/// among the query's items (which the headline's marks point at).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operand<'a> {
    pub item: usize,
    pub lexeme: &'a [u8],
    pub prefix: bool,
    /// the weights it is restricted to, a bit each (0: any)
    pub weight: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item<'a> {
    Operand(Operand<'a>),
    Not,
    And { left: usize },
    Or { left: usize },
    Phrase { left: usize, distance: u16 },
}

/// A tsquery's items.
#[derive(Debug)]
pub struct Query<'a> {
    items: Vec<Item<'a>>,
}

impl<'a> Query<'a> {
    /// Reads the stored bytes of a tsquery (after its varlena header).
    pub fn parse(query: &'a [u8]) -> Result<Query<'a>, Error> {
        let malformed = || Error::MalformedTsQuery;
        let count = query
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
            .ok_or_else(malformed)?;
        let count = usize::try_from(count).map_err(|_| malformed())?;
        let strings_at = count
            .checked_mul(ITEM_SIZE)
            .and_then(|n| n.checked_add(4))
            .filter(|&end| end <= query.len())
            .ok_or_else(malformed)?;
        let strings = &query[strings_at..];
        let mut items = Vec::with_capacity(count);
        for item in 0..count {
            let bytes = &query[4 + item * ITEM_SIZE..4 + (item + 1) * ITEM_SIZE];
            let parsed = match (bytes[0], bytes[1]) {
                (OPERAND, _) => {
                    let packed = u32::from_ne_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
                    let len = (packed & 0xFFF) as usize;
                    let distance = (packed >> 12) as usize;
                    Item::Operand(Operand {
                        item,
                        lexeme: strings
                            .get(distance..distance + len)
                            .ok_or_else(malformed)?,
                        prefix: bytes[2] != 0,
                        weight: bytes[1],
                    })
                }
                (OPERATOR, operator) => {
                    let left = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
                    let left = usize::try_from(left).map_err(|_| malformed())?;
                    match operator {
                        NOT => Item::Not,
                        AND => Item::And { left },
                        OR => Item::Or { left },
                        PHRASE => Item::Phrase {
                            left,
                            distance: u16::from_ne_bytes([bytes[2], bytes[3]]),
                        },
                        _ => return Err(malformed()),
                    }
                }
                _ => return Err(malformed()),
            };
            items.push(parsed);
        }
        // every operator's operands lie after it, within the query
        for (at, item) in items.iter().enumerate() {
            let (right, left) = match *item {
                Item::Operand(_) => continue,
                Item::Not => (at + 1, at + 1),
                Item::And { left } | Item::Or { left } | Item::Phrase { left, .. } => {
                    (at + 1, at.checked_add(left).ok_or_else(malformed)?)
                }
            };
            if right >= items.len() || left >= items.len() || left < right {
                return Err(malformed());
            }
        }
        Ok(Query { items })
    }

    /// How many items it has (operands and operators).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Its operands, in the items' order.
    pub fn operands(&self) -> impl Iterator<Item = Operand<'a>> + '_ {
        self.items.iter().filter_map(|item| match item {
            Item::Operand(operand) => Some(*operand),
            _ => None,
        })
    }

    /// Whether the documents [`Query::candidates`] gives are exactly those
    /// that match: no NOT, no phrase, no weight, no prefix to check.
    pub fn candidates_are_matches(&self) -> bool {
        self.items.iter().all(|item| match item {
            Item::Operand(operand) => operand.weight == 0 && !operand.prefix,
            Item::And { .. } | Item::Or { .. } => true,
            Item::Not | Item::Phrase { .. } => false,
        })
    }

    /// The phrases of two plain words a match needs, each as (the left
    /// word's item, the right word's item, the distance between them): those
    /// reached from the top through AND and phrase operators alone. A
    /// document in which no position of the right word is the distance
    /// after one of the left's cannot match, whatever the rest says.
    pub fn needed_pairs(&self) -> Vec<(usize, usize, u16)> {
        let plain = |item: usize| matches!(self.items.get(item), Some(Item::Operand(o)) if o.weight == 0 && !o.prefix);
        let mut pairs = Vec::new();
        let mut pending = vec![0];
        while let Some(at) = pending.pop() {
            match self.items.get(at) {
                Some(Item::And { left }) => pending.extend([at + 1, at + left]),
                Some(Item::Phrase { left, distance }) => {
                    if plain(at + left) && plain(at + 1) {
                        pairs.push((at + left, at + 1, *distance));
                    } else {
                        pending.extend([at + 1, at + left]);
                    }
                }
                _ => {}
            }
        }
        pairs
    }

    /// Whether a document that holds none of the query's lexemes may match
    /// it (as `!word` does): then every document is a candidate.
    pub fn matches_without_its_words(&self) -> bool {
        self.all_candidates(0)
    }

    fn all_candidates(&self, at: usize) -> bool {
        match self.items.get(at) {
            None => true,
            Some(Item::Operand(_)) => false,
            Some(Item::Not) => true,
            Some(Item::And { left }) | Some(Item::Phrase { left, .. }) => {
                self.all_candidates(at + 1) && self.all_candidates(at + left)
            }
            Some(Item::Or { left }) => {
                self.all_candidates(at + 1) || self.all_candidates(at + left)
            }
        }
    }

    /// The documents that may match, ascending: those of the lexemes the
    /// query needs, where `documents(operand)` gives an operand's (sorted);
    /// `every` where the query may match without its words.
    pub fn candidates<'d>(
        &self,
        documents: &dyn Fn(&Operand<'a>) -> &'d [i64],
        every: &'d [i64],
    ) -> Vec<i64> {
        match self.narrowed(0, documents) {
            Some(found) => found.into_owned(),
            None => every.to_vec(),
        }
    }

    /// None: no narrowing (every document). An operand's documents are
    /// its list's own, not copied: a word of thousands of documents is
    /// read where it lies, to be intersected with a rarer one.
    fn narrowed<'d>(
        &self,
        at: usize,
        documents: &dyn Fn(&Operand<'a>) -> &'d [i64],
    ) -> Option<Cow<'d, [i64]>> {
        match self.items.get(at)? {
            Item::Operand(operand) => Some(Cow::Borrowed(documents(operand))),
            Item::Not => None,
            Item::And { left } | Item::Phrase { left, .. } => {
                match (
                    self.narrowed(at + 1, documents),
                    self.narrowed(at + left, documents),
                ) {
                    (Some(a), Some(b)) => Some(Cow::Owned(intersection(&a, &b))),
                    (Some(a), None) | (None, Some(a)) => Some(a),
                    (None, None) => None,
                }
            }
            Item::Or { left } => Some(Cow::Owned(union(
                &self.narrowed(at + 1, documents)?,
                &self.narrowed(at + left, documents)?,
            ))),
        }
    }
}

/// The documents both ascending lists hold. Where one is far shorter, each
/// of its documents is looked for in the other by binary search past the
/// last one found, rather than walking every document of the longer.
fn intersection(a: &[i64], b: &[i64]) -> Vec<i64> {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(short.len());
    if short.len().saturating_mul(16) < long.len() {
        let mut rest = long;
        for &document in short {
            rest = &rest[rest.partition_point(|&d| d < document)..];
            match rest.split_first() {
                Some((&found, after)) if found == document => {
                    out.push(document);
                    rest = after;
                }
                Some(_) => {}
                None => break,
            }
        }
        return out;
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn union(a: &[i64], b: &[i64]) -> Vec<i64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len() + b.len());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A node of a query to store: an operand, or an operator over nodes.
    pub(crate) enum Node {
        Word(&'static str),
        Not(Box<Node>),
        And(Box<Node>, Box<Node>),
        Or(Box<Node>, Box<Node>),
        Phrase(Box<Node>, Box<Node>),
    }

    /// A tsquery's stored bytes, as PostgreSQL lays them out.
    pub(crate) fn stored(root: &Node) -> Vec<u8> {
        fn walk(node: &Node, items: &mut Vec<[u8; 12]>, strings: &mut Vec<u8>) {
            let operator = |kind: u8| {
                let mut item = [0u8; 12];
                item[0] = OPERATOR;
                item[1] = kind;
                item
            };
            match node {
                Node::Word(word) => {
                    let mut item = [0u8; 12];
                    item[0] = OPERAND;
                    let packed = (word.len() as u32) | ((strings.len() as u32) << 12);
                    item[8..12].copy_from_slice(&packed.to_ne_bytes());
                    strings.extend_from_slice(word.as_bytes());
                    strings.push(0);
                    items.push(item);
                }
                Node::Not(inner) => {
                    items.push(operator(NOT));
                    walk(inner, items, strings);
                }
                Node::And(l, r) | Node::Or(l, r) | Node::Phrase(l, r) => {
                    let kind = match node {
                        Node::And(..) => AND,
                        Node::Or(..) => OR,
                        _ => PHRASE,
                    };
                    let at = items.len();
                    items.push(operator(kind));
                    if kind == PHRASE {
                        items[at][2..4].copy_from_slice(&1u16.to_ne_bytes());
                    }
                    walk(r, items, strings);
                    let left = (items.len() - at) as u32;
                    items[at][4..8].copy_from_slice(&left.to_ne_bytes());
                    walk(l, items, strings);
                }
            }
        }
        let (mut items, mut strings) = (Vec::new(), Vec::new());
        walk(root, &mut items, &mut strings);
        let mut bytes = (items.len() as u32).to_ne_bytes().to_vec();
        for item in items {
            bytes.extend_from_slice(&item);
        }
        bytes.extend_from_slice(&strings);
        bytes
    }

    fn word(w: &'static str) -> Box<Node> {
        Box::new(Node::Word(w))
    }

    const CAT: &[i64] = &[1, 2, 5, 9];
    const DOG: &[i64] = &[2, 3, 9];
    const EEL: &[i64] = &[4];
    const EVERY: &[i64] = &[1, 2, 3, 4, 5, 9];

    fn candidates(root: Node) -> (Vec<i64>, bool) {
        let bytes = stored(&root);
        let query = Query::parse(&bytes).expect("parse");
        let documents = |operand: &Operand<'_>| match operand.lexeme {
            b"cat" => CAT,
            b"dog" => DOG,
            b"eel" => EEL,
            _ => &[][..],
        };
        (
            query.candidates(&documents, EVERY),
            query.candidates_are_matches(),
        )
    }

    #[test]
    fn candidates_are_the_documents_the_query_needs() {
        use Node::*;
        assert_eq!(candidates(Word("cat")), (CAT.to_vec(), true));
        assert_eq!(
            candidates(And(word("cat"), word("dog"))),
            (vec![2, 9], true)
        );
        assert_eq!(
            candidates(Or(word("cat"), word("eel"))),
            (vec![1, 2, 4, 5, 9], true)
        );
        assert_eq!(
            candidates(Phrase(word("cat"), word("dog"))),
            (vec![2, 9], false)
        );
        assert_eq!(
            candidates(And(word("cat"), Box::new(Not(word("dog"))))),
            (CAT.to_vec(), false)
        );
        assert_eq!(candidates(Not(word("dog"))), (EVERY.to_vec(), false));
        assert_eq!(
            candidates(Or(word("eel"), Box::new(Not(word("dog"))))),
            (EVERY.to_vec(), false)
        );
        assert_eq!(candidates(Word("yak")), (vec![], true));
    }

    #[test]
    fn an_intersection_is_the_documents_both_hold_whatever_their_lengths() {
        let naive = |a: &[i64], b: &[i64]| -> Vec<i64> {
            a.iter().copied().filter(|d| b.contains(d)).collect()
        };
        let every: Vec<i64> = (0..2_000).collect();
        let threes: Vec<i64> = (0..2_000).filter(|d| d % 3 == 0).collect();
        let cases: [(&[i64], &[i64]); 7] = [
            (&[], &every),
            (&[5, 1_999, 2_000], &every),
            (&[-1, 0, 3, 4, 1_998, 5_000], &threes),
            (&[2], &[1, 2, 3]),
            (&threes, &every),
            (&every, &[0, 1_999]),
            (&[7, 8], &[]),
        ];
        for (a, b) in cases {
            assert_eq!(intersection(a, b), naive(a, b), "{a:?}");
            assert_eq!(intersection(b, a), naive(a, b), "{a:?} swapped");
        }
    }

    #[test]
    fn the_pairs_a_match_needs_are_its_phrases_of_two_words_under_and() {
        use Node::*;
        let pairs = |root: Node| {
            let bytes = stored(&root);
            let query = Query::parse(&bytes).expect("parse");
            let mut pairs: Vec<(Vec<u8>, Vec<u8>, u16)> = query
                .needed_pairs()
                .into_iter()
                .map(|(l, r, d)| {
                    let word = |i| match query.items[i] {
                        Item::Operand(o) => o.lexeme.to_vec(),
                        _ => Vec::new(),
                    };
                    (word(l), word(r), d)
                })
                .collect();
            pairs.sort();
            pairs
        };
        let p = |a: &str, b: &str| (a.as_bytes().to_vec(), b.as_bytes().to_vec(), 1);
        assert_eq!(
            pairs(Phrase(word("cat"), word("dog"))),
            vec![p("cat", "dog")]
        );
        assert_eq!(
            pairs(And(
                Box::new(Phrase(word("cat"), word("dog"))),
                Box::new(Not(word("eel")))
            )),
            vec![p("cat", "dog")]
        );
        assert_eq!(
            pairs(Phrase(Box::new(Phrase(word("a"), word("b"))), word("c"))),
            vec![p("a", "b")]
        );
        assert!(pairs(Or(Box::new(Phrase(word("cat"), word("dog"))), word("eel"))).is_empty());
        assert!(pairs(Phrase(Box::new(Not(word("cat"))), word("dog"))).is_empty());
        assert!(pairs(And(word("cat"), word("dog"))).is_empty());
    }

    #[test]
    fn operands_are_read_with_their_items() {
        use Node::*;
        let bytes = stored(&And(word("cat"), Box::new(Not(word("dog")))));
        let query = Query::parse(&bytes).expect("parse");
        let operands: Vec<_> = query.operands().map(|o| (o.item, o.lexeme)).collect();
        assert_eq!(operands, vec![(2, &b"dog"[..]), (3, &b"cat"[..])]);
        assert!(!query.matches_without_its_words());
        let bytes = stored(&Not(word("dog")));
        assert!(Query::parse(&bytes)
            .expect("parse")
            .matches_without_its_words());
    }

    #[test]
    fn malformed_queries_are_an_error_never_a_panic() {
        use Node::*;
        let bytes = stored(&And(word("cat"), word("dog")));
        for cut in 0..bytes.len() - 8 {
            assert!(Query::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[4 + 4..4 + 8].copy_from_slice(&7u32.to_ne_bytes());
        assert!(Query::parse(&bad).is_err(), "left past the end");
        let mut bad = bytes;
        bad[4 + 1] = 9;
        assert!(Query::parse(&bad).is_err(), "no such operator");
    }
}
