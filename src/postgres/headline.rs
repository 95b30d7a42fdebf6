//! PostgreSQL's own headline over words `search::snippet` marked: the
//! `HeadlineParsedText` that `ts_headline` builds with `hlparsetext`, built
//! here from the parser's tokens and the stored document's positions, then
//! `prsd_headline` (which chooses the fragments and reads the options), and
//! the fragments written out as `generateHeadline` writes them, as
//! `ts_headline_byid_opt` does. The snippet is therefore `ts_headline`'s,
//! option for option.

use pgrx::pg_sys;

use super::stored_row::utf8;
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

/// `ts_headline`'s options, parsed once for every snippet of a page: the
/// list PostgreSQL's own `deserialize_deflist` makes, which
/// `prsd_headline` only reads. It lives in the memory context current when
/// it was made, as long as the call that made it.
pub struct Options {
    list: *mut pg_sys::List,
    words_after_last_match: Option<u32>,
}

impl Options {
    /// How many words past the last word the query marks a headline of
    /// these options can reach: MaxWords, where the headline is made of
    /// fragments (MaxFragments above 0), which `prsd_headline` stretches
    /// at most MaxWords words past their last marked word (and whose
    /// fallback, the first MinWords words, stops sooner: MinWords is below
    /// MaxWords). None where it may reach any word (a headline of one
    /// fragment, which HighlightAll makes the whole text), or where an
    /// option does not read as a number here: PostgreSQL then reads the
    /// whole text, and refuses what it refuses.
    pub fn words_after_last_match(&self) -> Option<u32> {
        self.words_after_last_match
    }
}

/// `s` as a text datum, copied into the current memory context, which
/// lasts as long as the call that made it.
fn text_datum(s: &str) -> pg_sys::Datum {
    // SAFETY: cstring_to_text_with_len copies `len` bytes from the pointer,
    // all inside `s`.
    pg_sys::Datum::from(unsafe {
        pg_sys::cstring_to_text_with_len(
            s.as_ptr().cast(),
            i32::try_from(s.len()).unwrap_or(i32::MAX),
        )
    })
}

/// Parses `options` as `ts_headline` does. An option `prsd_headline` does
/// not know is refused when a headline reads it, as from `ts_headline`.
pub fn options(options: &str) -> Options {
    // SAFETY: deserialize_deflist reads a text datum, and returns a list
    // allocated in the current memory context.
    let list = unsafe { pg_sys::deserialize_deflist(text_datum(options)) };
    // prsd_headline's defaults, and each option as it reads them: the
    // name in any case, the last one given counting
    let (mut max_words, mut max_fragments) = (Some(35), Some(0));
    // SAFETY: the list is deserialize_deflist's: NIL or a list of DefElems
    // whose names are C strings and whose values are String nodes, which
    // defGetString reads.
    unsafe {
        let length = if list.is_null() { 0 } else { (*list).length };
        for i in 0..usize::try_from(length).unwrap_or(0) {
            let element = (*(*list).elements.add(i))
                .ptr_value
                .cast::<pg_sys::DefElem>();
            let name = std::ffi::CStr::from_ptr((*element).defname).to_bytes();
            let target = if name.eq_ignore_ascii_case(b"MaxWords") {
                &mut max_words
            } else if name.eq_ignore_ascii_case(b"MaxFragments") {
                &mut max_fragments
            } else {
                continue;
            };
            let value = std::ffi::CStr::from_ptr(pg_sys::defGetString(element));
            *target = value.to_str().ok().and_then(|v| {
                v.trim_matches(|c: char| c.is_ascii_whitespace())
                    .parse::<i32>()
                    .ok()
            });
        }
    }
    let words_after_last_match = match (max_words, max_fragments) {
        (Some(words), Some(fragments)) if fragments > 0 => u32::try_from(words).ok(),
        _ => None,
    };
    Options {
        list,
        words_after_last_match,
    }
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
    options: &Options,
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

/// The one-bit fields of a `HeadlineWordEntry`, by their place in its
/// bitfield word (ts_public.h, the same in every supported major).
#[derive(Clone, Copy)]
enum Flag {
    Selected = 0,
    In = 1,
    Replace = 2,
    Repeated = 3,
    Skip = 4,
}

/// A word's entry as `hlparsetext` fills it: its type (bits 8 to 15 of the
/// bitfield word) and length (16 to 31, cut to 16 bits as PostgreSQL's
/// field cuts it) written as one word, where bindgen's setters write each
/// field a bit at a time: for every token of every snippet, that was a
/// tenth of a search's time.
fn word_entry(
    kind: u32,
    len: u32,
    pos: u16,
    word: *mut std::ffi::c_char,
) -> pg_sys::HeadlineWordEntry {
    let mut entry = pg_sys::HeadlineWordEntry {
        pos,
        word,
        ..Default::default()
    };
    let flags = ((kind & 0xFF) << 8) | ((len & 0xFFFF) << 16);
    entry._bitfield_1 = pg_sys::__BindgenBitfieldUnit::new(flags.to_ne_bytes());
    entry
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
    options: &Options,
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
            // a token is shorter than MAX_WORD, or a blank run: the field
            // holds 16 bits, as ts_headline's does
            words.add(ranges.len()).write(word_entry(
                word.token.kind as u32,
                u32::try_from(word.token.len).unwrap_or(u32::MAX),
                word.position,
                text.as_ptr().add(word.token.start).cast_mut().cast(),
            ));
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
                    (*repeated)
                        ._bitfield_1
                        .set_bit(Flag::Repeated as usize, true);
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
    // SAFETY: prsd_headline reads the parsed text, the option list (made
    // by `options` in a context that outlives this call) and the query, as
    // ts_headline_byid_opt passes them, and sets the marks, the selectors
    // and the delimiter it reads below.
    unsafe {
        pg_sys::DirectFunctionCall3Coll(
            Some(prsd_headline_fn),
            pg_sys::InvalidOid,
            pg_sys::Datum::from(std::ptr::addr_of_mut!(parsed)),
            pg_sys::Datum::from(options.list),
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
    let flag =
        |entry: &pg_sys::HeadlineWordEntry, flag: Flag| entry._bitfield_1.get_bit(flag as usize);
    for (entry, &(at, len)) in entries.iter().zip(&ranges) {
        if flag(entry, Flag::In) && !flag(entry, Flag::Repeated) {
            if !in_fragment {
                in_fragment = true;
                fragments += 1;
                if fragments > 1 {
                    out.extend_from_slice(delimiter);
                }
            }
            if flag(entry, Flag::Replace) {
                out.push(b' ');
            } else if !flag(entry, Flag::Skip) {
                let selected = flag(entry, Flag::Selected);
                if selected {
                    out.extend_from_slice(start);
                }
                out.extend_from_slice(text.get(at..at + len).unwrap_or_default());
                if selected {
                    out.extend_from_slice(stop);
                }
            }
        } else if !flag(entry, Flag::Repeated) {
            in_fragment = false;
        }
    }
    utf8(out)
}

// ts_headline(regconfig, text, tsquery, text) itself, as the function
// pointer DirectFunctionCall4Coll takes.
unsafe extern "C-unwind" {
    #[link_name = "ts_headline_byid_opt"]
    fn ts_headline_byid_opt_fn(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
}

/// `ts_headline(config, text, query, options)`: the snippet of a document
/// parsed with a configuration other than council_english, whose words
/// only its own dictionaries can find again. Errors are PostgreSQL's.
pub fn ts_headline(config: pg_sys::Oid, text: &str, query: &TsQuery<'_>, options: &str) -> String {
    // SAFETY: ts_headline_byid_opt reads a regconfig, two texts
    // (`text_datum`) and a whole tsquery (only tsvector::query makes a TsQuery), and
    // returns a text in the current memory context, read at once.
    unsafe {
        let headline = pg_sys::DirectFunctionCall4Coll(
            Some(ts_headline_byid_opt_fn),
            pg_sys::DEFAULT_COLLATION_OID,
            pg_sys::Datum::from(config),
            text_datum(text),
            pg_sys::Datum::from(query.whole),
            text_datum(options),
        );
        let headline = pg_sys::pg_detoast_datum_packed(headline.cast_mut_ptr::<pg_sys::varlena>());
        utf8(pgrx::varlena::varlena_to_byte_slice(headline).to_vec())
    }
}

/// Memory for one snippet at a time: what PostgreSQL's headline allocates
/// for a row (its word entries, its marks) is freed before the next, so a
/// page of many rows takes no more than its largest one.
pub struct Scratch(pgrx::PgMemoryContexts);

impl Scratch {
    pub fn new() -> Scratch {
        Scratch(pgrx::PgMemoryContexts::new("llm_council snippet"))
    }

    /// Runs `snippet` with this memory current, then frees what it
    /// allocated: it returns owned Rust values, which point at none of it.
    pub fn run<T: 'static>(&mut self, snippet: impl FnOnce() -> T) -> T {
        // SAFETY: the context is this Scratch's own, alive while it is;
        // what `snippet` returns is 'static, so nothing it returns borrows
        // the memory reset below.
        let made = unsafe { self.0.switch_to(|_| snippet()) };
        // SAFETY: nothing allocated there is used past `snippet`.
        unsafe { self.0.reset() };
        made
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_entry_packs_its_fields_as_the_bitfield_setters_write_them() {
        for (kind, len) in [(1, 3), (12, 0xFFFF), (22, 0x1_0005), (255, 0)] {
            let packed = word_entry(kind, len, 7, std::ptr::null_mut());
            let mut set = pg_sys::HeadlineWordEntry {
                pos: 7,
                ..Default::default()
            };
            set.set_type(kind);
            set.set_len(len & 0xFFFF);
            assert_eq!(packed._bitfield_1.get(0, 32), set._bitfield_1.get(0, 32));
            assert_eq!(
                (packed.type_(), packed.len(), packed.pos),
                (kind, len & 0xFFFF, 7)
            );
        }
        let mut entry = word_entry(2, 5, 1, std::ptr::null_mut());
        for (flag, set) in [
            (
                Flag::Selected,
                pg_sys::HeadlineWordEntry::set_selected as fn(&mut _, u32),
            ),
            (Flag::In, pg_sys::HeadlineWordEntry::set_in),
            (Flag::Replace, pg_sys::HeadlineWordEntry::set_replace),
            (Flag::Repeated, pg_sys::HeadlineWordEntry::set_repeated),
            (Flag::Skip, pg_sys::HeadlineWordEntry::set_skip),
        ] {
            let mut by_setter = entry;
            set(&mut by_setter, 1);
            entry._bitfield_1.set_bit(flag as usize, true);
            assert_eq!(
                entry._bitfield_1.get(0, 32),
                by_setter._bitfield_1.get(0, 32)
            );
        }
    }
}
