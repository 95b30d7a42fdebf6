//! BM25 over a stored tsvector, in safe Rust: the relevance council_search
//! ranks by. Okapi BM25 with Lucene's and FTS5's non-negative IDF:
//!
//! score(d) = Σ over the query's lexemes t of
//!     idf(t) · tf(t, d) · (k1 + 1) / (tf(t, d) + k1 · (1 − b + b · |d| / avgdl))
//! idf(t) = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))
//!
//! tf(t, d) is how many positions t has in d (PostgreSQL keeps at most 256
//! per lexeme), |d| the positions of all its lexemes, N, df and avgdl the
//! term statistics `council_search_analyze()` keeps. k1 = 1.2, b = 0.75, as
//! in FTS5 and Lucene.
//!
//! The tsvector is read in its stored form (`tsvector.h`): an int32 count,
//! that many 32-bit WordEntry (haspos:1, len:11, pos:20, allocated from the
//! low bit), the lexemes, sorted, then each lexeme's positions at the
//! 2-byte-aligned offset after its text: a uint16 count and the positions.

use crate::error::Error;

/// The saturation of term frequency.
pub const K1: f64 = 1.2;
/// How much a document's length normalises its frequencies.
pub const B: f64 = 0.75;

/// A tsvector's lexemes, each with its number of positions.
pub struct TsVector<'a> {
    entries: &'a [u8],
    strings: &'a [u8],
    count: usize,
}

struct Entry {
    has_positions: bool,
    len: usize,
    pos: usize,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

// An Error made eagerly (`ok_or`) is dropped on every call that does not
// fail; these run for every entry of every document a search scores.
#[allow(clippy::unnecessary_lazy_evaluations)]
impl<'a> TsVector<'a> {
    /// The tsvector whose stored bytes (after the varlena header) are `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<TsVector<'a>, Error> {
        let count = u32_at(bytes, 0).ok_or_else(|| Error::MalformedTsVector("no lexeme count"))?;
        let count = usize::try_from(count).map_err(|_| Error::MalformedTsVector("lexeme count"))?;
        let strings_at = count
            .checked_mul(4)
            .and_then(|n| n.checked_add(4))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| Error::MalformedTsVector("more entries than bytes"))?;
        Ok(TsVector {
            entries: &bytes[4..strings_at],
            strings: &bytes[strings_at..],
            count,
        })
    }

    fn entry(&self, i: usize) -> Result<Entry, Error> {
        let word = u32_at(self.entries, i * 4).ok_or_else(|| Error::MalformedTsVector("entry"))?;
        Ok(Entry {
            has_positions: word & 1 == 1,
            len: ((word >> 1) & 0x7FF) as usize,
            pos: (word >> 12) as usize,
        })
    }

    fn lexeme(&self, entry: &Entry) -> Result<&'a [u8], Error> {
        self.strings
            .get(entry.pos..entry.pos + entry.len)
            .ok_or_else(|| Error::MalformedTsVector("lexeme past the end"))
    }

    /// How many positions a lexeme has: 1 when the tsvector keeps none.
    fn positions(&self, entry: &Entry) -> Result<u32, Error> {
        if !entry.has_positions {
            return Ok(1);
        }
        let end = entry.pos + entry.len;
        let aligned = end + (end & 1);
        u16_at(self.strings, aligned)
            .map(u32::from)
            .ok_or_else(|| Error::MalformedTsVector("positions past the end"))
    }

    /// The index of the first lexeme not less than `lexeme`. The lexemes
    /// are sorted as PostgreSQL's tsCompareString sorts them: bytewise, a
    /// prefix first, which is how Rust orders byte slices.
    fn lower_bound(&self, lexeme: &[u8]) -> Result<usize, Error> {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.lexeme(&self.entry(middle)?)? < lexeme {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    /// The number of positions of `lexeme`, 0 when the document lacks it.
    pub fn frequency(&self, lexeme: &[u8]) -> Result<u32, Error> {
        let at = self.lower_bound(lexeme)?;
        if at == self.count {
            return Ok(0);
        }
        let entry = self.entry(at)?;
        if self.lexeme(&entry)? == lexeme {
            self.positions(&entry)
        } else {
            Ok(0)
        }
    }

    /// The indexes of the lexemes equal to `lexeme`, or that start with it
    /// when `prefix`: a range, since they sort together.
    pub fn matching(&self, lexeme: &[u8], prefix: bool) -> Result<std::ops::Range<usize>, Error> {
        let start = self.lower_bound(lexeme)?;
        let mut end = start;
        while end < self.count {
            let found = self.lexeme(&self.entry(end)?)?;
            let matches = if prefix {
                found.starts_with(lexeme)
            } else {
                found == lexeme
            };
            if !matches {
                break;
            }
            end += 1;
        }
        Ok(start..end)
    }

    /// The `index`th lexeme, with its number of positions (1 when the
    /// tsvector keeps none).
    pub fn occurrence(&self, index: usize) -> Result<(&'a [u8], u32), Error> {
        let entry = self.entry(index)?;
        Ok((self.lexeme(&entry)?, self.positions(&entry)?))
    }

    /// How many lexemes the document holds.
    pub fn lexemes(&self) -> usize {
        self.count
    }

    /// The word positions of the `index`th lexeme, 1 to 16383 (PostgreSQL
    /// keeps at most 256 of a lexeme, and counts every word past the
    /// 16383rd as the 16383rd); none when the tsvector keeps no positions.
    pub fn positions_of(&self, index: usize) -> Result<impl Iterator<Item = u16> + 'a, Error> {
        // a position's two high bits are its weight
        Ok(self.stored_positions_of(index)?.map(|p| p & 0x3FFF))
    }

    /// The `index`th lexeme's positions as stored (WordEntryPos): the
    /// position, and its weight in the two high bits.
    pub fn stored_positions_of(
        &self,
        index: usize,
    ) -> Result<impl Iterator<Item = u16> + 'a, Error> {
        let entry = self.entry(index)?;
        let stored: &'a [u8] = if entry.has_positions {
            let end = entry.pos + entry.len;
            let aligned = end + (end & 1);
            let count = usize::from(
                u16_at(self.strings, aligned)
                    .ok_or_else(|| Error::MalformedTsVector("positions past the end"))?,
            );
            self.strings
                .get(aligned + 2..aligned + 2 + 2 * count)
                .ok_or_else(|| Error::MalformedTsVector("positions past the end"))?
        } else {
            &[]
        };
        Ok(stored
            .chunks_exact(2)
            .map(|p| u16::from_ne_bytes([p[0], p[1]])))
    }

    /// The document's length: the positions of all its lexemes. Read for
    /// every document a search scores, so kept to one pass over the entries.
    pub fn length(&self) -> Result<u32, Error> {
        let mut total: u32 = 0;
        for word in self.entries.chunks_exact(4) {
            let word = u32::from_ne_bytes([word[0], word[1], word[2], word[3]]);
            let positions = if word & 1 == 0 {
                1
            } else {
                let end = (word >> 12) as usize + ((word >> 1) & 0x7FF) as usize;
                let aligned = end + (end & 1);
                match self.strings.get(aligned..aligned + 2) {
                    Some(count) => u32::from(u16::from_ne_bytes([count[0], count[1]])),
                    None => return Err(Error::MalformedTsVector("positions past the end")),
                }
            };
            total = total.saturating_add(positions);
        }
        Ok(total)
    }
}

/// The inverse document frequency of a lexeme found in `df` of `n`
/// documents; never negative, so a word in most documents still counts a
/// little rather than against.
pub fn idf(n: f64, df: f64) -> f64 {
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// A query made ready for BM25: its lexemes, each with its IDF, and the
/// corpus's average document length. `council_search_prepare` encodes them
/// once per search, and `council_search_score` reads them for every
/// matching document without parsing arrays. The bytes: the average (f64),
/// then for each lexeme its IDF (f64), its length (u32) and its bytes, in
/// the machine's byte order: they never leave the server that made them.
#[derive(Clone, Copy)]
pub struct Prepared<'a> {
    average_length: f64,
    terms: &'a [u8],
}

/// The prepared form of `lexemes`, each with its IDF, in a corpus whose
/// documents average `average_length` positions.
pub fn prepare<'q>(
    lexemes: impl IntoIterator<Item = (&'q [u8], f64)>,
    average_length: f64,
) -> Vec<u8> {
    let mut bytes = average_length.to_ne_bytes().to_vec();
    for (lexeme, idf) in lexemes {
        // a lexeme is at most 2 KB (MAXSTRLEN), so its length fits
        let len = u32::try_from(lexeme.len()).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&idf.to_ne_bytes());
        bytes.extend_from_slice(&len.to_ne_bytes());
        bytes.extend_from_slice(lexeme);
    }
    bytes
}

impl<'a> Prepared<'a> {
    /// Reads a prepared query, every term of it checked.
    pub fn parse(bytes: &'a [u8]) -> Result<Prepared<'a>, Error> {
        let average = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(f64::from_ne_bytes)
            .ok_or(Error::MalformedSearchQuery)?;
        let prepared = Prepared {
            average_length: average,
            terms: &bytes[8..],
        };
        let mut rest = prepared.terms;
        while !rest.is_empty() {
            let (_, _, after) = Self::term(rest).ok_or(Error::MalformedSearchQuery)?;
            rest = after;
        }
        Ok(prepared)
    }

    /// The first term of `bytes`, and the bytes after it.
    fn term(bytes: &'a [u8]) -> Option<(&'a [u8], f64, &'a [u8])> {
        let idf = f64::from_ne_bytes(bytes.get(..8)?.try_into().ok()?);
        let len = usize::try_from(u32_at(bytes, 8)?).ok()?;
        let lexeme = bytes.get(12..12 + len)?;
        Some((lexeme, idf, &bytes[12 + len..]))
    }

    pub fn average_length(&self) -> f64 {
        self.average_length
    }

    /// The lexemes, each with its IDF.
    pub fn terms(&self) -> impl Iterator<Item = (&'a [u8], f64)> + 'a {
        let mut rest = self.terms;
        std::iter::from_fn(move || {
            let (lexeme, idf, after) = Self::term(rest)?;
            rest = after;
            Some((lexeme, idf))
        })
    }
}

/// The BM25 score of `document` for the query's `lexemes`, each with its
/// `idf`, in a corpus whose documents average `average_length` positions.
pub fn bm25<'q>(
    document: &TsVector<'_>,
    lexemes: impl IntoIterator<Item = (&'q [u8], f64)>,
    average_length: f64,
) -> Result<f64, Error> {
    let bm25 = Bm25::new(document.length()?, average_length);
    let mut score = 0.0;
    for (lexeme, idf) in lexemes {
        score += bm25.term(document.frequency(lexeme)?, idf);
    }
    Ok(score)
}

/// BM25 for one document, of a length: the sum of [`Bm25::term`] over the
/// query's lexemes is its score, whether the document is read from a
/// tsvector ([`bm25`]) or from the search's postings.
pub struct Bm25 {
    norm: f64,
}

impl Bm25 {
    /// For a document `length` positions long, in a corpus whose documents
    /// average `average_length`.
    pub fn new(length: u32, average_length: f64) -> Bm25 {
        let length = f64::from(length);
        let average = if average_length > 0.0 {
            average_length
        } else {
            length.max(1.0)
        };
        Bm25 {
            norm: K1 * (1.0 - B + B * length / average),
        }
    }

    /// What a lexeme of `idf` the document holds `frequency` times adds.
    pub fn term(&self, frequency: u32, idf: f64) -> f64 {
        if frequency == 0 {
            return 0.0;
        }
        let tf = f64::from(frequency);
        idf * tf * (K1 + 1.0) / (tf + self.norm)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tsvector as PostgreSQL stores it, from (lexeme, positions), which
    /// must come sorted.
    pub(crate) fn stored(lexemes: &[(&str, &[u16])]) -> Vec<u8> {
        let mut strings = Vec::new();
        let mut entries = Vec::new();
        for (lexeme, positions) in lexemes {
            let pos = strings.len() as u32;
            let has = u32::from(!positions.is_empty());
            entries.push(has | ((lexeme.len() as u32) << 1) | (pos << 12));
            strings.extend_from_slice(lexeme.as_bytes());
            if !positions.is_empty() {
                if strings.len() % 2 == 1 {
                    strings.push(0);
                }
                strings.extend_from_slice(&(positions.len() as u16).to_ne_bytes());
                for p in *positions {
                    strings.extend_from_slice(&p.to_ne_bytes());
                }
            }
        }
        let mut bytes = (lexemes.len() as u32).to_ne_bytes().to_vec();
        for e in entries {
            bytes.extend_from_slice(&e.to_ne_bytes());
        }
        bytes.extend_from_slice(&strings);
        bytes
    }

    #[test]
    fn frequencies_and_length_are_read_off_the_positions() {
        let bytes = stored(&[
            ("cat", &[1, 4, 9]),
            ("dog", &[2]),
            ("dogs", &[3, 5]),
            ("z", &[]),
        ]);
        let doc = TsVector::parse(&bytes).expect("parse");
        assert_eq!(doc.frequency(b"cat").ok(), Some(3));
        assert_eq!(doc.frequency(b"dog").ok(), Some(1));
        assert_eq!(doc.frequency(b"dogs").ok(), Some(2));
        assert_eq!(
            doc.frequency(b"z").ok(),
            Some(1),
            "no positions counts once"
        );
        assert_eq!(doc.frequency(b"do").ok(), Some(0));
        assert_eq!(doc.frequency(b"eel").ok(), Some(0));
        assert_eq!(doc.length().ok(), Some(7));
    }

    #[test]
    fn a_rare_word_outweighs_a_repeated_common_one() {
        let n = 1000.0;
        let common = idf(n, 900.0);
        let rare = idf(n, 2.0);
        assert!(common > 0.0 && rare > 5.0 * common, "{common} {rare}");
        let repeated = stored(&[("alpha", &[1, 2, 3, 4]), ("beta", &[5])]);
        let once = stored(&[("alpha", &[1]), ("zeta", &[2]), ("gamma", &[3])]);
        let query = [(&b"alpha"[..], common), (&b"zeta"[..], rare)];
        let score = |bytes: &[u8]| {
            bm25(&TsVector::parse(bytes).expect("parse"), query, 4.0).expect("score")
        };
        assert!(score(&once) > score(&repeated));
    }

    #[test]
    fn a_longer_document_scores_less_for_the_same_frequency() {
        let short = stored(&[("alpha", &[1]), ("beta", &[2])]);
        let long = stored(&[("alpha", &[1]), ("beta", &[2, 3, 4, 5, 6, 7, 8, 9])]);
        let query = [(&b"alpha"[..], 1.0)];
        let score = |bytes: &[u8]| {
            bm25(&TsVector::parse(bytes).expect("parse"), query, 5.0).expect("score")
        };
        assert!(score(&short) > score(&long));
    }

    #[test]
    fn malformed_bytes_are_an_error_never_a_panic() {
        assert!(TsVector::parse(&[]).is_err());
        assert!(TsVector::parse(&9u32.to_ne_bytes()).is_err());
        let mut bytes = stored(&[("cat", &[1, 2])]);
        bytes.truncate(bytes.len() - 6);
        let doc = TsVector::parse(&bytes).expect("the header is whole");
        assert!(doc.frequency(b"cat").is_err());
        assert!(doc.length().is_err());
    }
}
