//! Whether a document matches a tsquery, decided by PostgreSQL's own
//! `TS_execute` (what `tsvector @@ tsquery` calls) over the positions the
//! search's postings hold for the query's operands: the same answer as the
//! stored tsvector would give, phrases, negation and weights included,
//! without reading it.

use std::ffi::c_void;

use pgrx::pg_sys;

use super::tsvector::TsQuery;
use crate::error::Error;

const _: () = assert!(std::mem::size_of::<pg_sys::QueryItem>() == 12);
/// The bytes before a tsquery's first item: the varlena header and the
/// item count (`HDRSIZETQ`).
const ITEMS_AT: usize = 8;

/// A query made ready to decide documents.
pub struct Matcher<'q> {
    items: *mut pg_sys::QueryItem,
    count: usize,
    /// a weighted operand's positions of the chosen weights, by item
    weighted: Vec<Vec<u16>>,
    _query: std::marker::PhantomData<&'q TsQuery<'q>>,
}

struct Document<'m, 'p> {
    items: *const pg_sys::QueryItem,
    found: &'p [Option<&'p [u16]>],
    weighted: &'m mut [Vec<u16>],
}

impl<'q> Matcher<'q> {
    pub fn new(query: &'q TsQuery<'q>) -> Result<Matcher<'q>, Error> {
        let count = query.item_count()?;
        if count == 0 {
            return Err(Error::MalformedTsQuery);
        }
        // SAFETY: the query is detoasted whole with a 4-byte header (only
        // tsvector::query makes a TsQuery), and holds `count` items after
        // its count, as just checked.
        let items = unsafe { query.whole.cast::<u8>().add(ITEMS_AT).cast() };
        Ok(Matcher {
            items,
            count,
            weighted: vec![Vec::new(); count],
            _query: std::marker::PhantomData,
        })
    }

    /// Whether the document matches, where `found[item]` is the stored
    /// positions (WordEntryPos, weights included) of the operand at that
    /// item when the document holds its lexeme (empty where it keeps no
    /// positions), None when it does not; an operator's item is None.
    pub fn matches(&mut self, found: &[Option<&[u16]>]) -> Result<bool, Error> {
        if found.len() != self.count {
            return Err(Error::MalformedTsQuery);
        }
        let mut document = Document {
            items: self.items,
            found,
            weighted: &mut self.weighted,
        };
        // SAFETY: `items` is the query's first item, in memory that lives
        // as long as the matcher's query; the callback reads `document`,
        // which outlives the call, and returns positions that do too.
        Ok(unsafe {
            pg_sys::TS_execute(
                self.items,
                std::ptr::from_mut(&mut document).cast(),
                pg_sys::TS_EXEC_EMPTY,
                Some(operand_in_document),
            )
        })
    }
}

/// TS_execute's callback: whether the document holds the operand `val`,
/// and where when `data` asks, as `checkcondition_str` answers for a
/// tsvector.
unsafe extern "C-unwind" fn operand_in_document(
    arg: *mut c_void,
    val: *mut pg_sys::QueryOperand,
    data: *mut pg_sys::ExecPhraseData,
) -> pg_sys::TSTernaryValue::Type {
    // SAFETY: TS_execute hands back the Document `matches` passed, and an
    // operand among the items it was given.
    let (document, weight) = unsafe { (&mut *arg.cast::<Document<'_, '_>>(), (*val).weight) };
    let item = (val as usize).wrapping_sub(document.items as usize) / 12;
    let Some(Some(positions)) = document.found.get(item).copied() else {
        return pg_sys::TSTernaryValue::TS_NO;
    };
    if positions.is_empty() {
        // no positions kept: a phrase can only say maybe (and a stripped
        // tsvector matches whatever the weight), as for a tsvector
        return if data.is_null() {
            pg_sys::TSTernaryValue::TS_YES
        } else {
            pg_sys::TSTernaryValue::TS_MAYBE
        };
    }
    let chosen: &[u16] = if weight == 0 {
        positions
    } else {
        let Some(kept) = document.weighted.get_mut(item) else {
            return pg_sys::TSTernaryValue::TS_NO;
        };
        kept.clear();
        kept.extend(
            positions
                .iter()
                .filter(|&&p| weight & (1 << (p >> 14)) != 0),
        );
        kept
    };
    if chosen.is_empty() {
        return pg_sys::TSTernaryValue::TS_NO;
    }
    if !data.is_null() {
        // SAFETY: data is TS_execute's to fill; the positions outlive the
        // call and are read, never written (allocated = false).
        unsafe {
            (*data).npos = i32::try_from(chosen.len()).unwrap_or(i32::MAX);
            (*data).pos = chosen.as_ptr().cast_mut();
            (*data).allocated = false;
        }
    }
    pg_sys::TSTernaryValue::TS_YES
}
