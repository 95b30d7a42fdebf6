//! PostgreSQL's own headline over words `search::snippet` marked: the
//! `HeadlineParsedText` that `ts_headline` builds with `hlparsetext`, built
//! here from the parser's tokens and the stored document's positions, then
//! `prsd_headline` (which chooses the fragments and reads the options) and
//! `generateHeadline` (which writes them out), as `ts_headline_byid_opt`
//! calls them. The snippet is therefore `ts_headline`'s, option for option.

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
    let items = query
        .bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(Error::MalformedTsQuery)?;
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
    // SAFETY: palloc0 returns zeroed memory for `count` entries in the
    // current memory context, which outlives this call's use of it; every
    // entry written below lies inside it (one per word and one per extra
    // match); each word's text is its own palloc'd copy, as hladdword makes
    // it, because generateHeadline pfrees the words it leaves out.
    let words = unsafe {
        let words = pg_sys::palloc0(count * entry_size).cast::<pg_sys::HeadlineWordEntry>();
        let mut written = 0;
        let mut matches = marked.matches.iter().peekable();
        for (index, word) in marked.words.iter().enumerate() {
            let bytes = &text[word.token.start..word.token.start + word.token.len];
            let copy = pg_sys::palloc(bytes.len().max(1)).cast::<u8>();
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
            let entry = &mut *words.add(written);
            entry.set_type(word.token.kind as u32);
            // a token is shorter than MAX_WORD, or a blank run: the field
            // holds 16 bits, as ts_headline's does
            entry.set_len(u32::try_from(bytes.len()).unwrap_or(u32::MAX) & 0xFFFF);
            entry.pos = word.position;
            entry.word = copy.cast();
            written += 1;
            let mut first = true;
            while let Some(&&(at, item)) = matches.peek() {
                if at != index {
                    break;
                }
                matches.next();
                let operand = std::ptr::addr_of_mut!((*items.add(item)).qoperand);
                if first {
                    (*words.add(written - 1)).item = operand;
                    first = false;
                } else {
                    // hlfinditem: the word again, pointing at the next item
                    let repeated = words.add(written);
                    std::ptr::copy_nonoverlapping(words.add(written - 1), repeated, 1);
                    (*repeated).item = operand;
                    (*repeated).set_repeated(1);
                    written += 1;
                }
            }
        }
        (words, written)
    };
    let (words, written) = words;
    let mut parsed = pg_sys::HeadlineParsedText {
        words,
        lenwords: i32::try_from(count).unwrap_or(i32::MAX),
        curwords: i32::try_from(written).unwrap_or(i32::MAX),
        ..Default::default()
    };
    // SAFETY: deserialize_deflist reads a text datum, made here in the
    // current memory context; prsd_headline reads the parsed text, the
    // option list and the query, as ts_headline_byid_opt
    // passes them; generateHeadline returns a text palloc'd in the current
    // memory context, read before this function returns.
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
        let out = pg_sys::generateHeadline(&mut parsed);
        let len = pgrx::varlena::varsize_any_exhdr(out.cast());
        let data = pgrx::varlena::vardata_any(out.cast()).cast::<u8>();
        String::from_utf8_lossy(std::slice::from_raw_parts(data, len)).into_owned()
    }
}
