//! The search's inverted index, in safe Rust: for each lexeme, the
//! documents that hold it, each with what BM25 and a phrase need (its
//! length, the lexeme's frequency and positions), so that a search ranks
//! its matches without reading them from the heap, and checks a phrase
//! without reading the documents that hold its words.
//!
//! The lists are the only copy of the documents they hold: a bulk fill
//! writes a document's row without its tsvector, and an analyze takes the
//! tsvector of each document written since out of its row. Both build the
//! lists again in one pass ([`Builder`]) into `council_search_postings`, a
//! row per lexeme: the lists read back ([`Builder::carry`]), less the
//! documents no longer listed as `indexed`, and the new documents added.
//! Documents written after it are found through the GIN index on the
//! others alone, until the next analyze. A document deleted since stays
//! listed until then, and council_search drops it when its row is not
//! there.
//!
//! A list's bytes: the number of documents, then per document, ascending,
//! the difference from the previous document's id (zigzag, so that a list
//! built out of order still reads, before [`Builder::finish`] sorts it),
//! the document's length (the positions of all its lexemes), the lexeme's
//! frequency, the byte length of its positions, and the positions (stored
//! WordEntryPos values, weight bits included), each the difference from the
//! one before, modulo 2^16. Every number is a LEB128 varint. The row whose
//! lexeme is empty (no tsvector holds an empty lexeme) lists every document
//! with frequency 0: a query that matches without any of its words (`-word`
//! alone) starts from it.

use crate::error::Error;
use crate::search::score::TsVector;
use crate::search::word_map::WordMap;

/// The lexeme of the list of every document.
pub const EVERY_DOCUMENT: &[u8] = b"";

fn put(bytes: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        bytes.push((value as u8) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Reads varints off the front of a slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn number(&mut self) -> Result<u64, Error> {
        // Most numbers of a list take one or two bytes: a search reads
        // four for every document of every list it opens.
        match *self.bytes {
            [first, ref rest @ ..] if first < 0x80 => {
                self.bytes = rest;
                return Ok(u64::from(first));
            }
            [first, second, ref rest @ ..] if second < 0x80 => {
                self.bytes = rest;
                return Ok(u64::from(first & 0x7F) | (u64::from(second) << 7));
            }
            _ => {}
        }
        let mut value = 0u64;
        for (i, &byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        Err(Error::MalformedPostings("a number runs past the end"))
    }

    fn small(&mut self) -> Result<u32, Error> {
        u32::try_from(self.number()?).map_err(|_| Error::MalformedPostings("a count past 2^32"))
    }

    /// The id of the document after `last`, stored as the difference.
    fn document_after(&mut self, last: i64) -> Result<i64, Error> {
        // (a match, not ok_or: an Error made and dropped for every
        // document was 2% of a phrase's search)
        match last.checked_add(unzigzag(self.number()?)) {
            Some(document) => Ok(document),
            None => Err(Error::MalformedPostings("a document id past 2^63")),
        }
    }

    /// The rest of `document`'s entry, past its id.
    fn entry(&mut self, document: i64) -> Result<Posting<'a>, Error> {
        let length = self.small()?;
        let frequency = self.small()?;
        let len = usize::try_from(self.number()?)
            .map_err(|_| Error::MalformedPostings("positions past the end"))?;
        Ok(Posting {
            document,
            length,
            frequency,
            positions: self.take(len)?,
        })
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], Error> {
        if len > self.bytes.len() {
            return Err(Error::MalformedPostings("positions past the end"));
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }
}

/// One document of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posting<'a> {
    pub document: i64,
    /// the document's length: the positions of all its lexemes
    pub length: u32,
    /// the lexeme's positions in it (1 where the tsvector keeps none)
    pub frequency: u32,
    positions: &'a [u8],
}

impl Posting<'_> {
    /// The lexeme's positions in the document, as stored (weight bits
    /// included), into `out`; none where the tsvector keeps none.
    pub fn positions(&self, out: &mut Vec<u16>) -> Result<(), Error> {
        out.clear();
        let mut reader = Reader {
            bytes: self.positions,
        };
        let mut last = 0u16;
        while !reader.bytes.is_empty() {
            let delta = u16::try_from(reader.number()?)
                .map_err(|_| Error::MalformedPostings("a position past 2^16"))?;
            last = last.wrapping_add(delta);
            out.push(last);
        }
        Ok(())
    }
}

/// A lexeme's list, read front to back.
pub struct Cursor<'a> {
    reader: Reader<'a>,
    left: u64,
    last: i64,
    current: Option<Posting<'a>>,
}

impl<'a> Cursor<'a> {
    /// The list whose bytes are `bytes`, and how many documents it holds.
    pub fn open(bytes: &'a [u8]) -> Result<(Cursor<'a>, u64), Error> {
        let mut reader = Reader { bytes };
        let documents = reader.number()?;
        let mut cursor = Cursor {
            reader,
            left: documents,
            last: 0,
            current: None,
        };
        cursor.advance()?;
        Ok((cursor, documents))
    }

    pub fn advance(&mut self) -> Result<(), Error> {
        if self.left == 0 {
            if !self.reader.bytes.is_empty() {
                return Err(Error::MalformedPostings("bytes after the last document"));
            }
            self.current = None;
            return Ok(());
        }
        self.left -= 1;
        let document = self.reader.document_after(self.last)?;
        self.current = Some(self.reader.entry(document)?);
        self.last = document;
        Ok(())
    }

    /// The document the cursor is at; None past the last.
    pub fn current(&self) -> Option<Posting<'a>> {
        self.current
    }
}

/// A list read whole, found by document as documents are asked for in
/// ascending order. Reading it keeps each document's id and where its
/// entry starts; the entry itself is read again for the documents asked
/// for alone: a search of several common words reads lists of thousands
/// and asks for a few hundred.
pub struct Read<'a> {
    bytes: &'a [u8],
    documents: Vec<i64>,
    /// where each document's entry starts in `bytes`, past its id
    entries: Vec<usize>,
    next: usize,
}

impl<'a> Read<'a> {
    /// The list whose bytes are `bytes`.
    pub fn new(bytes: &'a [u8]) -> Result<Read<'a>, Error> {
        let mut reader = Reader { bytes };
        let count = usize::try_from(reader.number()?).unwrap_or(usize::MAX);
        // no more documents than bytes: a malformed count allocates nothing
        let capacity = count.min(bytes.len());
        let mut documents = Vec::with_capacity(capacity);
        let mut entries = Vec::with_capacity(capacity);
        let mut last = 0i64;
        for _ in 0..count {
            let document = reader.document_after(last)?;
            if !documents.is_empty() && document <= last {
                return Err(Error::MalformedPostings("documents out of order"));
            }
            entries.push(bytes.len() - reader.bytes.len());
            reader.entry(document)?;
            documents.push(document);
            last = document;
        }
        if !reader.bytes.is_empty() {
            return Err(Error::MalformedPostings("bytes after the last document"));
        }
        Ok(Read {
            bytes,
            documents,
            entries,
            next: 0,
        })
    }

    /// Back to the start: the documents may be asked for again from the
    /// first.
    pub fn rewind(&mut self) {
        self.next = 0;
    }

    /// Its documents' ids, ascending.
    pub fn documents(&self) -> &[i64] {
        &self.documents
    }

    /// The posting of `document`, if the list holds it; asked in
    /// ascending order (a search past the documents asked before).
    pub fn find(&mut self, document: i64) -> Result<Option<Posting<'a>>, Error> {
        let Some(rest) = self.documents.get(self.next..) else {
            return Ok(None);
        };
        // Galloping from where the last search ended: the next document
        // asked for is usually a few along, and a binary search over the
        // rest of a long list missed the cache at every step.
        let (mut low, mut step) = (0, 1);
        while low + step < rest.len() && rest[low + step] < document {
            low += step;
            step *= 2;
        }
        let high = (low + step + 1).min(rest.len());
        self.next += low + rest[low..high].partition_point(|&d| d < document);
        if self.documents.get(self.next) != Some(&document) {
            return Ok(None);
        }
        let mut reader = Reader {
            bytes: self
                .entries
                .get(self.next)
                .and_then(|&at| self.bytes.get(at..))
                .unwrap_or_default(),
        };
        reader.entry(document).map(Some)
    }
}

#[derive(Default)]
struct List {
    documents: u64,
    /// the lexeme's positions in them all (1 a document that keeps none)
    occurrences: u64,
    last: i64,
    sorted: bool,
    bytes: Vec<u8>,
}

impl List {
    fn push(&mut self, document: i64, length: u32, frequency: u32, positions: &[u8]) {
        if self.documents > 0 && document <= self.last {
            self.sorted = false;
        }
        put(&mut self.bytes, zigzag(document.wrapping_sub(self.last)));
        put(&mut self.bytes, u64::from(length));
        put(&mut self.bytes, u64::from(frequency));
        put(&mut self.bytes, positions.len() as u64);
        self.bytes.extend_from_slice(positions);
        self.last = document;
        self.documents += 1;
        self.occurrences += u64::from(frequency);
    }

    /// The list's stored bytes, its documents in ascending order.
    fn finish(self) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::with_capacity(self.bytes.len() + 10);
        put(&mut bytes, self.documents);
        if self.sorted || self.documents < 2 {
            bytes.extend_from_slice(&self.bytes);
            return Ok(bytes);
        }
        let mut stored = Vec::with_capacity(bytes.len() + self.bytes.len());
        stored.extend_from_slice(&bytes);
        stored.extend_from_slice(&self.bytes);
        let (mut cursor, _) = Cursor::open(&stored)?;
        let mut postings = Vec::new();
        while let Some(at) = cursor.current() {
            postings.push(at);
            cursor.advance()?;
        }
        postings.sort_unstable_by_key(|p| p.document);
        let mut sorted = List {
            sorted: true,
            ..List::default()
        };
        for p in postings {
            sorted.push(p.document, p.length, p.frequency, p.positions);
        }
        sorted.finish()
    }
}

/// A lexeme's list, made: its stored bytes, and what it counts.
pub struct Finished {
    pub lexeme: Box<[u8]>,
    pub bytes: Vec<u8>,
    /// the documents that hold the lexeme
    pub documents: i64,
    /// its positions in them all, as ts_stat counts its occurrences
    pub occurrences: i64,
}

/// Every lexeme's list as it is built, found by lexeme. A build looks a
/// lexeme up for every lexeme of every document: with a standard map,
/// hashing a boxed key and comparing it there was most of the build, so
/// the lexemes are found in a [`WordMap`] (short ones inline in its slots,
/// which a document's next lexemes ask for early), pointing at their list.
#[derive(Default)]
struct Lists {
    found: WordMap<usize>,
    lists: Vec<(Box<[u8]>, List)>,
}

impl Lists {
    /// Adds (document, length, frequency) and its encoded `positions` to
    /// `lexeme`'s list, which it starts if there is none.
    fn push(
        &mut self,
        lexeme: &[u8],
        (document, length, frequency): (i64, u32, u32),
        positions: &[u8],
    ) {
        let at = self.find_or_start(lexeme);
        self.push_at(at, (document, length, frequency), positions);
    }

    /// Where `lexeme`'s list is, started if there is none.
    fn find_or_start(&mut self, lexeme: &[u8]) -> usize {
        if let Some(&at) = self.found.get(lexeme) {
            return at;
        }
        let at = self.lists.len();
        self.found.insert(lexeme, at);
        self.lists.push((
            lexeme.into(),
            List {
                sorted: true,
                ..List::default()
            },
        ));
        at
    }

    /// Adds (document, length, frequency) and `positions` to the list at
    /// `at`.
    fn push_at(
        &mut self,
        at: usize,
        (document, length, frequency): (i64, u32, u32),
        positions: &[u8],
    ) {
        if let Some((_, list)) = self.lists.get_mut(at) {
            list.push(document, length, frequency, positions);
        }
    }

    /// Asks for `lexeme`'s slot ahead of its [`Lists::find_or_start`].
    fn prefetch(&self, lexeme: &[u8]) {
        self.found.prefetch_in(lexeme, 0, lexeme.len());
    }

    /// Asks for the list at `at` ahead of [`Lists::prefetch_end`].
    fn prefetch_list(&self, at: usize) {
        prefetch_index::prefetch_index(&self.lists, at);
    }

    /// Asks for the end of the bytes of the list at `at`, where its next
    /// posting goes, ahead of its [`Lists::push_at`]: it reads the list,
    /// which [`Lists::prefetch_list`] asked for earlier.
    fn prefetch_end(&self, at: usize) {
        if let Some((_, list)) = self.lists.get(at) {
            prefetch_index::prefetch_index(&list.bytes, list.bytes.len());
        }
    }
}

/// Builds every lexeme's list from the documents, handed in any order.
#[derive(Default)]
pub struct Builder {
    lists: Lists,
    positions: Vec<u8>,
    /// where each lexeme of the document being added has its list
    found: Vec<usize>,
    documents: u64,
    /// the documents' lengths all together
    length: u64,
}

impl Builder {
    /// Adds `document`, whose id is `id`, to the list of each lexeme it
    /// holds, and to the list of every document.
    ///
    /// A bulk fill hands the documents to one process as parallel workers
    /// parse them, and that process was the fill's pace: each lexeme's
    /// list is somewhere else in memory, and waiting for it, then for the
    /// end of its bytes, was most of the build. So every lexeme's list is
    /// found first (its slot asked for a few lexemes ahead), and asked for
    /// as it is found; then, as each lexeme is added, the end of the bytes
    /// of one further along is asked for, which arrives while the lexemes
    /// between are added.
    pub fn add(&mut self, id: i64, document: &TsVector<'_>) -> Result<(), Error> {
        let length = document.length()?;
        self.documents += 1;
        self.length += u64::from(length);
        self.positions.clear();
        self.push(EVERY_DOCUMENT, id, length, 0);
        // how far ahead a lexeme's slot and the end of its list's bytes
        // are asked for
        const SLOT_AHEAD: usize = 8;
        const END_AHEAD: usize = 8;
        let lexemes = document.lexemes();
        for index in 0..lexemes.min(SLOT_AHEAD) {
            self.lists.prefetch(document.occurrence(index)?.0);
        }
        self.found.clear();
        for index in 0..lexemes {
            if index + SLOT_AHEAD < lexemes {
                self.lists
                    .prefetch(document.occurrence(index + SLOT_AHEAD)?.0);
            }
            let (lexeme, _) = document.occurrence(index)?;
            let at = self.lists.find_or_start(lexeme);
            self.lists.prefetch_list(at);
            self.found.push(at);
        }
        for &at in self.found.iter().take(END_AHEAD) {
            self.lists.prefetch_end(at);
        }
        for index in 0..lexemes {
            if let Some(&at) = self.found.get(index + END_AHEAD) {
                self.lists.prefetch_end(at);
            }
            let (_, frequency) = document.occurrence(index)?;
            self.positions.clear();
            let mut last = 0u16;
            for position in document.stored_positions_of(index)? {
                put(&mut self.positions, u64::from(position.wrapping_sub(last)));
                last = position;
            }
            if let Some(&at) = self.found.get(index) {
                self.lists
                    .push_at(at, (id, length, frequency), &self.positions);
            }
        }
        Ok(())
    }

    /// Adds `posting`, read from `lexeme`'s list of an earlier build, to
    /// that lexeme's list as it was: what an analyze keeps of the postings,
    /// which are the only copy of the documents they hold. The list of
    /// every document counts it as a document.
    pub fn carry(&mut self, lexeme: &[u8], posting: &Posting<'_>) {
        if lexeme == EVERY_DOCUMENT {
            self.documents += 1;
            self.length += u64::from(posting.length);
        }
        self.lists.push(
            lexeme,
            (posting.document, posting.length, posting.frequency),
            posting.positions,
        );
    }

    /// Adds the document to `lexeme`'s list, with the positions just encoded.
    fn push(&mut self, lexeme: &[u8], id: i64, length: u32, frequency: u32) {
        self.lists
            .push(lexeme, (id, length, frequency), &self.positions);
    }

    /// The documents added, and their length all together.
    pub fn totals(&self) -> (i64, i64) {
        (
            i64::try_from(self.documents).unwrap_or(i64::MAX),
            i64::try_from(self.length).unwrap_or(i64::MAX),
        )
    }

    /// Every lexeme's list, in the lexemes' byte order (the order of the
    /// table's `COLLATE "C"` key), the list of every document first.
    pub fn finish(self) -> impl Iterator<Item = Result<Finished, Error>> {
        let mut lists = self.lists.lists;
        lists.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        lists.into_iter().map(|(lexeme, list)| {
            let documents = i64::try_from(list.documents).unwrap_or(i64::MAX);
            let occurrences = i64::try_from(list.occurrences).unwrap_or(i64::MAX);
            Ok(Finished {
                lexeme,
                bytes: list.finish()?,
                documents,
                occurrences,
            })
        })
    }
}

/// Documents on their way to a [`Builder`] on another thread: each one's
/// id, and its tsvector's bytes, one after another.
#[derive(Default)]
pub struct Batch {
    ids: Vec<i64>,
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl Batch {
    /// Adds the document `id`, whose tsvector's bytes are `document`.
    pub fn push(&mut self, id: i64, document: &[u8]) {
        self.bytes.extend_from_slice(document);
        self.ids.push(id);
        self.ends.push(self.bytes.len());
    }

    /// The bytes of the tsvectors it holds.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it holds no document.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds each of its documents to `builder`, in the order they came.
    pub fn add_to(&self, builder: &mut Builder) -> Result<(), Error> {
        let mut start = 0;
        for (&id, &end) in self.ids.iter().zip(&self.ends) {
            let document = self
                .bytes
                .get(start..end)
                .ok_or(Error::MalformedTsVector("a batch's bounds"))?;
            builder.add(id, &TsVector::parse(document)?)?;
            start = end;
        }
        Ok(())
    }
}

/// A set of document ids, asked once for every entry of every list an
/// analyze carries over: a bit each over the range they span, or, where
/// they are too sparse for that (a sequence restarted far away), the ids
/// sorted.
pub enum DocumentSet {
    Bits { first: i64, bits: Vec<u64> },
    Sorted(Vec<i64>),
}

impl DocumentSet {
    pub fn new(mut ids: Vec<i64>) -> DocumentSet {
        let (Some(&first), Some(&last)) = (ids.iter().min(), ids.iter().max()) else {
            return DocumentSet::Sorted(Vec::new());
        };
        let span = last.abs_diff(first);
        // at most 64 bits per id: a set of ids that follow one another
        // takes a bit each
        if span / 64 > ids.len() as u64 {
            ids.sort_unstable();
            return DocumentSet::Sorted(ids);
        }
        let mut bits = vec![0u64; (span / 64) as usize + 1];
        for id in ids {
            let at = id.abs_diff(first);
            bits[(at / 64) as usize] |= 1 << (at % 64);
        }
        DocumentSet::Bits { first, bits }
    }

    pub fn contains(&self, id: i64) -> bool {
        match self {
            DocumentSet::Bits { first, bits } => {
                id >= *first && {
                    let at = id.abs_diff(*first);
                    usize::try_from(at / 64)
                        .ok()
                        .and_then(|word| bits.get(word))
                        .is_some_and(|word| word & (1 << (at % 64)) != 0)
                }
            }
            DocumentSet::Sorted(ids) => ids.binary_search(&id).is_ok(),
        }
    }
}

/// The `wanted` best of `hits` (rank, document), best first, with every hit
/// that ties the last of them: which of the tied comes first is for the
/// caller's fuller order to say. `hits` is reordered in place, not copied,
/// so that asking again for more (a page whose best were deleted since the
/// last analyze) costs no copy of every match.
pub fn best(hits: &mut [(f32, i64)], wanted: usize) -> Vec<(f32, i64)> {
    let descending = |a: &(f32, i64), b: &(f32, i64)| b.0.total_cmp(&a.0);
    if wanted == 0 {
        return Vec::new();
    }
    let mut kept = if hits.len() > wanted {
        hits.select_nth_unstable_by(wanted - 1, descending);
        let boundary = hits[wanted - 1].0;
        let (head, tail) = hits.split_at(wanted);
        let mut kept = head.to_vec();
        kept.extend(tail.iter().filter(|hit| hit.0 == boundary));
        kept
    } else {
        hits.to_vec()
    };
    kept.sort_unstable_by(descending);
    kept
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::search::score::tests::stored;

    fn build(documents: &[(i64, Vec<u8>)]) -> HashMap<Vec<u8>, Vec<u8>> {
        let mut builder = Builder::default();
        for (id, bytes) in documents {
            builder
                .add(*id, &TsVector::parse(bytes).expect("parse"))
                .expect("add");
        }
        builder
            .finish()
            .map(|list| list.map(|list| (list.lexeme.into_vec(), list.bytes)))
            .collect::<Result<_, _>>()
            .expect("finish")
    }

    fn read(bytes: &[u8]) -> Vec<(i64, u32, u32, Vec<u16>)> {
        let (mut cursor, count) = Cursor::open(bytes).expect("open");
        let mut out = Vec::new();
        let mut positions = Vec::new();
        while let Some(at) = cursor.current() {
            at.positions(&mut positions).expect("positions");
            out.push((at.document, at.length, at.frequency, positions.clone()));
            cursor.advance().expect("advance");
        }
        assert_eq!(out.len() as u64, count);
        // found by document, each entry reads as it reads front to back
        let mut found = Read::new(bytes).expect("read");
        for expected in &out {
            let at = found.find(expected.0).expect("find").expect("listed");
            at.positions(&mut positions).expect("positions");
            assert_eq!(
                &(at.document, at.length, at.frequency, positions.clone()),
                expected
            );
        }
        out
    }

    #[test]
    fn each_lexeme_lists_its_documents_in_order_with_frequency_length_and_positions() {
        let lists = build(&[
            (900, stored(&[("cat", &[1, 4]), ("dog", &[2])])),
            (
                3,
                stored(&[("cat", &[0x4000 | 7]), ("eel", &[1, 300, 16383])]),
            ),
            (40, stored(&[("dog", &[5, 6, 9])])),
        ]);
        assert_eq!(
            read(&lists[&b"cat"[..]]),
            vec![(3, 4, 1, vec![0x4000 | 7]), (900, 3, 2, vec![1, 4]),]
        );
        assert_eq!(
            read(&lists[&b"dog"[..]]),
            vec![(40, 3, 3, vec![5, 6, 9]), (900, 3, 1, vec![2])]
        );
        assert_eq!(
            read(&lists[&b"eel"[..]]),
            vec![(3, 4, 3, vec![1, 300, 16383])]
        );
        assert_eq!(
            read(&lists[EVERY_DOCUMENT]),
            vec![(3, 4, 0, vec![]), (40, 3, 0, vec![]), (900, 3, 0, vec![])]
        );
    }

    /// The fill hands its documents to the builder's thread in batches:
    /// the lists are those of the documents added one by one, and a
    /// document that is no tsvector is refused, not skipped.
    #[test]
    fn documents_handed_over_in_batches_build_what_they_build_one_by_one() {
        let documents = [
            (900, stored(&[("cat", &[1, 4]), ("dog", &[2])])),
            (
                3,
                stored(&[("cat", &[0x4000 | 7]), ("eel", &[1, 300, 16383])]),
            ),
            (40, stored(&[("dog", &[5, 6, 9])])),
            (41, stored(&[])),
        ];
        let mut builder = Builder::default();
        for pair in documents.chunks(3) {
            let mut batch = Batch::default();
            assert!(batch.is_empty());
            for (id, bytes) in pair {
                batch.push(*id, bytes);
            }
            assert_eq!(
                batch.byte_len(),
                pair.iter().map(|(_, b)| b.len()).sum::<usize>()
            );
            batch.add_to(&mut builder).expect("add");
        }
        let batched: HashMap<Vec<u8>, Vec<u8>> = builder
            .finish()
            .map(|list| list.map(|list| (list.lexeme.into_vec(), list.bytes)))
            .collect::<Result<_, _>>()
            .expect("finish");
        assert_eq!(batched, build(&documents));

        let mut batch = Batch::default();
        batch.push(7, &[9, 0, 0, 0]);
        assert!(matches!(
            batch.add_to(&mut Builder::default()),
            Err(Error::MalformedTsVector(_))
        ));
    }

    /// An analyze's build: the lists of an earlier build carried over for
    /// the documents still `listed`, and the documents written since
    /// added, make the lists a build of them all makes, byte for byte.
    #[test]
    fn carried_lists_and_new_documents_build_what_all_the_documents_build() {
        let kept = [
            (900, stored(&[("cat", &[1, 4]), ("dog", &[2])])),
            (
                3,
                stored(&[("cat", &[0x4000 | 7]), ("eel", &[1, 300, 16383])]),
            ),
        ];
        let deleted = (12, stored(&[("cat", &[2]), ("fox", &[1])]));
        // written since, one with an id below the others' (a transaction
        // that began before the last build and committed after it)
        let written = [
            (40, stored(&[("dog", &[5, 6, 9])])),
            (2, stored(&[("eel", &[3]), ("gnu", &[1])])),
            (950, stored(&[])),
        ];
        let earlier = build(&[kept[0].clone(), kept[1].clone(), deleted]);
        let mut builder = Builder::default();
        for (id, bytes) in &written {
            builder
                .add(*id, &TsVector::parse(bytes).expect("parse"))
                .expect("add");
        }
        let listed = DocumentSet::new(vec![900, 3]);
        for (lexeme, bytes) in &earlier {
            let (mut cursor, _) = Cursor::open(bytes).expect("open");
            while let Some(at) = cursor.current() {
                if listed.contains(at.document) {
                    builder.carry(lexeme, &at);
                }
                cursor.advance().expect("advance");
            }
        }
        assert_eq!(builder.totals(), (5, 3 + 4 + 3 + 2));
        let carried: HashMap<Vec<u8>, Vec<u8>> = builder
            .finish()
            .map(|list| list.map(|list| (list.lexeme.into_vec(), list.bytes)))
            .collect::<Result<_, _>>()
            .expect("finish");
        let all: Vec<(i64, Vec<u8>)> = kept.iter().chain(&written).cloned().collect();
        assert_eq!(carried, build(&all));
        assert!(
            !carried.contains_key(&b"fox"[..]),
            "a deleted document's lexeme"
        );
    }

    #[test]
    fn a_set_of_documents_holds_its_ids_whether_close_or_far_apart() {
        let close = DocumentSet::new(vec![5, 70, 6, 200]);
        let far = DocumentSet::new(vec![3, i64::MAX, -7, 1 << 40]);
        for (set, ids) in [
            (&close, [5, 6, 70, 200]),
            (&far, [3, i64::MAX, -7, 1 << 40]),
        ] {
            for id in ids {
                assert!(set.contains(id), "{id}");
            }
            for id in [4, 7, 69, 71, 199, 201, 0, i64::MIN, -6, (1 << 40) + 1] {
                assert!(!set.contains(id), "{id}");
            }
        }
        assert!(matches!(close, DocumentSet::Bits { .. }));
        assert!(matches!(far, DocumentSet::Sorted(_)));
        assert!(!DocumentSet::new(Vec::new()).contains(0));
    }

    #[test]
    fn numbers_of_every_width_read_as_they_were_put() {
        let values = [
            0,
            1,
            127,
            128,
            255,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            1 << 35,
            u64::MAX,
        ];
        let mut bytes = Vec::new();
        for &value in &values {
            put(&mut bytes, value);
        }
        let mut reader = Reader { bytes: &bytes };
        for &value in &values {
            assert_eq!(reader.number().expect("number"), value);
        }
        assert!(reader.bytes.is_empty());
        // a number cut short is an error, whatever its width
        for cut in [&[0x80][..], &[0xFF, 0xFF][..], &[0x80, 0x80, 0x80][..]] {
            assert!(Reader { bytes: cut }.number().is_err(), "{cut:?}");
        }
    }

    #[test]
    fn a_read_list_finds_the_documents_asked_for_in_order() {
        let lists = build(&[
            (1, stored(&[("cat", &[1])])),
            (5, stored(&[("cat", &[2])])),
            (9, stored(&[("cat", &[3])])),
        ]);
        let mut list = Read::new(&lists[&b"cat"[..]]).expect("read");
        assert_eq!(list.documents(), &[1, 5, 9]);
        let mut find = |document| list.find(document).expect("find");
        assert_eq!(find(1).map(|p| p.document), Some(1));
        assert_eq!(find(4), None);
        assert_eq!(
            find(9).map(|p| (p.document, p.length, p.frequency)),
            Some((9, 1, 1))
        );
        assert_eq!(find(10), None);
        assert_eq!(find(11), None);
    }

    #[test]
    fn a_long_list_finds_near_and_far_documents() {
        let documents: Vec<(i64, Vec<u8>)> = (1..=3_000)
            .filter(|d| d % 3 == 0)
            .map(|d| (d, stored(&[("cat", &[1])])))
            .collect();
        let lists = build(&documents);
        let mut list = Read::new(&lists[&b"cat"[..]]).expect("read");
        // asked for one after another, then leaping far ahead
        let asked: Vec<i64> = (1..40).chain((100..3_100).step_by(97)).collect();
        for document in asked {
            assert_eq!(
                list.find(document).expect("find").map(|p| p.document),
                (document % 3 == 0 && document <= 3_000).then_some(document),
                "{document}"
            );
        }
    }

    #[test]
    fn the_best_hits_keep_every_tie_of_the_last() {
        let hits = vec![(1.0, 1), (3.0, 2), (2.0, 3), (2.0, 4), (0.5, 5), (2.0, 6)];
        let best = best(&mut hits.clone(), 2);
        assert_eq!(best[0], (3.0, 2));
        let mut tied: Vec<_> = best[1..].iter().map(|h| h.1).collect();
        tied.sort_unstable();
        assert_eq!(tied, vec![3, 4, 6]);
        assert_eq!(super::best(&mut hits.clone(), 10).len(), 6);
        assert!(super::best(&mut hits.clone(), 0).is_empty());
    }

    /// Reads every entry both ways: front to back, and found by document.
    fn read_whole(bytes: &[u8]) -> Result<(), Error> {
        let (mut cursor, _) = Cursor::open(bytes)?;
        let mut positions = Vec::new();
        while let Some(at) = cursor.current() {
            at.positions(&mut positions)?;
            cursor.advance()?;
        }
        let mut read = Read::new(bytes)?;
        for document in read.documents().to_vec() {
            if let Some(at) = read.find(document)? {
                at.positions(&mut positions)?;
            }
        }
        Ok(())
    }

    #[test]
    fn malformed_lists_are_an_error_never_a_panic() {
        let lists = build(&[
            (1, stored(&[("cat", &[1, 2, 300])])),
            (2, stored(&[("cat", &[5])])),
        ]);
        let bytes = &lists[&b"cat"[..]];
        assert!(read_whole(bytes).is_ok());
        for cut in 0..bytes.len() {
            assert!(
                read_whole(&bytes[..cut]).is_err(),
                "cut at {cut} read as whole"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_whole(&longer).is_err());
        assert!(read_whole(&[0xFF; 11]).is_err());
    }
}
