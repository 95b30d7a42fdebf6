//! PostgreSQL's own headline over words `search::snippet` marked: the
//! `HeadlineParsedText` that `ts_headline` builds with `hlparsetext`, built
//! here from the parser's tokens and the stored document's positions, then
//! `prsd_headline` (which chooses the fragments and reads the options), and
//! the fragments written out as `generateHeadline` writes them, as
//! `ts_headline_byid_opt` does. The snippet is therefore `ts_headline`'s,
//! option for option.

use pgrx::pg_sys;

use super::tsvector::TsQuery;
use crate::error::Error;
use crate::search::snippet::Marked;

// The operands' item indexes are offsets into the query's items, whose
// size `search::snippet` reads the stored query by.
const _: () = assert!(std::mem::size_of::<pg_sys::QueryItem>() == 12);

// The default parser's headline function itself, as the function pointer
// DirectFunctionCall3Coll takes (pgrx's binding of it is a Rust wrapper).
// What it raises (an unknown option, say) comes back through pgrx's guard
// of DirectFunctionCall3Coll as the same PostgreSQL error.
unsafe extern "C-unwind" {
    #[link_name = "prsd_headline"]
    fn prsd_headline_fn(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
}

/// The headline of `text` for `query`, whose words `marked` lists, with
/// `ts_headline`'s `options`. Errors are PostgreSQL's, as from
/// `ts_headline`: an unknown option, or MinWords not below MaxWords; marks
/// that do not fit the text or the query are refused before PostgreSQL
/// reads them.
pub fn headline(
    text: &[u8],
    marked: &Marked,
    query: &TsQuery<'_>,
    options: &str,
) -> Result<String, Error> {
    let items = query.item_count()?;
    let fits_query = marked.matches.iter().all(|&(_, item)| item < items);
    let fits_text = marked.words.iter().all(|word| {
        word.token
            .start
            .checked_add(word.token.len)
            .is_some_and(|end| end <= text.len())
    });
    if !fits_query || !fits_text {
        return Err(Error::MalformedTsQuery);
    }
    // SAFETY: `query` is a tsquery detoasted whole (only tsvector::query
    // makes one), every item index marked is below its count, and every
    // word lies inside `text`, as just checked.
    Ok(unsafe { marked_headline(text, marked, query.whole, options) })
}

/// [`headline`], once its marks are checked.
///
/// # Safety
/// `query` must point at a whole (detoasted) tsquery in memory that lives
/// as long as the call, every item index in `marked` must be below its
/// item count, and every word must lie inside `text`.
unsafe fn marked_headline(
    text: &[u8],
    marked: &Marked,
    query: *mut pg_sys::TSQueryData,
    options: &str,
) -> String {
    let count = (marked.words.len() + marked.matches.len()).max(1);
    let entry_size = std::mem::size_of::<pg_sys::HeadlineWordEntry>();
    // SAFETY: GETQUERY: the items start right after the header and the
    // count, inside the tsquery the caller vouches for.
    let items = unsafe {
        query
            .cast::<u8>()
            .add(std::mem::size_of::<pg_sys::TSQueryData>())
            .cast::<pg_sys::QueryItem>()
    };
    // Each entry's word, as a range of `text`: prsd_headline reads the
    // entries' lengths, types and items, never their text, so an entry's
    // word points into `text` (no copy per word), and the headline is
    // written here from these ranges, as generateHeadline writes it (which
    // would pfree the words it leaves out).
    let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(count);
    // SAFETY: palloc0 returns zeroed memory for `count` entries in the
    // current memory context, which outlives this call's use of it; every
    // entry written below lies inside it (one per word and one per extra
    // match).
    let words = unsafe {
        let words = pg_sys::palloc0(count * entry_size).cast::<pg_sys::HeadlineWordEntry>();
        let mut matches = marked.matches.iter().peekable();
        for (index, word) in marked.words.iter().enumerate() {
            let entry = &mut *words.add(ranges.len());
            entry.set_type(word.token.kind as u32);
            // a token is shorter than MAX_WORD, or a blank run: the field
            // holds 16 bits, as ts_headline's does
            entry.set_len(u32::try_from(word.token.len).unwrap_or(u32::MAX) & 0xFFFF);
            entry.pos = word.position;
            entry.word = text.as_ptr().add(word.token.start).cast_mut().cast();
            ranges.push((word.token.start, word.token.len & 0xFFFF));
            let mut first = true;
            while let Some(&&(at, item)) = matches.peek() {
                if at != index {
                    break;
                }
                matches.next();
                let operand = std::ptr::addr_of_mut!((*items.add(item)).qoperand);
                if first {
                    (*words.add(ranges.len() - 1)).item = operand;
                    first = false;
                } else {
                    // hlfinditem: the word again, pointing at the next item
                    let repeated = words.add(ranges.len());
                    std::ptr::copy_nonoverlapping(words.add(ranges.len() - 1), repeated, 1);
                    (*repeated).item = operand;
                    (*repeated).set_repeated(1);
                    ranges.push((word.token.start, word.token.len & 0xFFFF));
                }
            }
        }
        words
    };
    let mut parsed = pg_sys::HeadlineParsedText {
        words,
        lenwords: i32::try_from(count).unwrap_or(i32::MAX),
        curwords: i32::try_from(ranges.len()).unwrap_or(i32::MAX),
        ..Default::default()
    };
    // SAFETY: deserialize_deflist reads a text datum, made here in the
    // current memory context; prsd_headline reads the parsed text, the
    // option list and the query, as ts_headline_byid_opt passes them, and
    // sets the marks, the selectors and the delimiter it reads below.
    unsafe {
        let options =
            pg_sys::deserialize_deflist(pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
                options.as_ptr().cast(),
                i32::try_from(options.len()).unwrap_or(i32::MAX),
            )));
        pg_sys::DirectFunctionCall3Coll(
            Some(prsd_headline_fn),
            pg_sys::InvalidOid,
            pg_sys::Datum::from(std::ptr::addr_of_mut!(parsed)),
            pg_sys::Datum::from(options),
            pg_sys::Datum::from(query),
        );
    }
    // SAFETY: prsd_headline set each selector to a palloc'd string of the
    // length it recorded; the entries are the `ranges.len()` written above.
    let (start, stop, delimiter, entries) = unsafe {
        let bytes = |at: *mut std::ffi::c_char, len: i16| -> &[u8] {
            match usize::try_from(len) {
                Ok(len) if !at.is_null() => std::slice::from_raw_parts(at.cast::<u8>(), len),
                _ => &[],
            }
        };
        (
            bytes(parsed.startsel, parsed.startsellen),
            bytes(parsed.stopsel, parsed.stopsellen),
            bytes(parsed.fragdelim, parsed.fragdelimlen),
            std::slice::from_raw_parts(words, ranges.len()),
        )
    };
    // generateHeadline: the words in a fragment, the selected ones between
    // the selectors, a tag replaced by a blank, a skipped token left out,
    // and the delimiter between fragments
    let mut out = Vec::with_capacity(256);
    let (mut in_fragment, mut fragments) = (false, 0);
    for (entry, &(at, len)) in entries.iter().zip(&ranges) {
        if entry.in_() != 0 && entry.repeated() == 0 {
            if !in_fragment {
                in_fragment = true;
                fragments += 1;
                if fragments > 1 {
                    out.extend_from_slice(delimiter);
                }
            }
            if entry.replace() != 0 {
                out.push(b' ');
            } else if entry.skip() == 0 {
                let selected = entry.selected() != 0;
                if selected {
                    out.extend_from_slice(start);
                }
                out.extend_from_slice(text.get(at..at + len).unwrap_or_default());
                if selected {
                    out.extend_from_slice(stop);
                }
            }
        } else if entry.repeated() == 0 {
            in_fragment = false;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
