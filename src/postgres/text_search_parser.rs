//! `council_parser`: a text search parser (`CREATE TEXT SEARCH PARSER`,
//! in `sql/text_search.sql`) whose tokens are `search::tokens`'. These are
//! the four functions PostgreSQL's text search calls, with the argument and
//! result types its catalog demands (`internal` pointers to the text, the
//! parser's state and the token it writes back); the headline is
//! PostgreSQL's own `prsd_headline`, which reads the same tokens.

use std::ffi::{c_char, c_int, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::Internal;

use crate::search::tokens::{self, Kind};

/// Where the parser is in the text it was started on.
struct State {
    text: *const u8,
    len: usize,
    at: usize,
}

/// The start function: `text` points at `length` bytes of the text to
/// parse, which stay in place until the end function is called.
#[pg_extern(immutable, parallel_safe)]
fn council_parser_start(text: Internal, length: i32) -> Internal {
    // SAFETY: PostgreSQL passes a pointer to the text's first byte (not a
    // varlena), valid until the end function; only its address is kept.
    let text = unsafe { text.get::<u8>() }.map_or(std::ptr::null(), std::ptr::from_ref);
    let len = if text.is_null() {
        0
    } else {
        usize::try_from(length).unwrap_or(0)
    };
    let state = State { text, len, at: 0 };
    // SAFETY: palloc returns memory of the size asked for, aligned for any
    // type, in the current memory context, which lives as long as the
    // parse (the caller's); it is written whole before it is read.
    let state = unsafe {
        let memory = pg_sys::palloc(std::mem::size_of::<State>()).cast::<State>();
        memory.write(state);
        memory
    };
    Internal::from(Some(pg_sys::Datum::from(state)))
}

/// The get-token function: writes where the next token starts and its
/// length in bytes, and returns its type; 0 at the end of the text.
#[pg_extern(immutable, parallel_safe)]
fn council_parser_gettoken(
    mut state: Internal,
    mut token: Internal,
    mut length: Internal,
) -> Internal {
    let end = || Internal::from(Some(pg_sys::Datum::from(0)));
    // SAFETY: `state` is the State council_parser_start made, which
    // PostgreSQL hands back until the end function.
    let state = unsafe { state.get_mut::<State>() };
    // SAFETY: PostgreSQL passes a `char *` of its own to write the token's
    // place into (ts_parse.c, wparser.c).
    let token = unsafe { token.get_mut::<*const c_char>() };
    // SAFETY: and an `int` of its own for the token's length.
    let length = unsafe { length.get_mut::<c_int>() };
    let (Some(state), Some(token), Some(length)) = (state, token, length) else {
        return end();
    };
    let text = if state.text.is_null() {
        &[][..]
    } else {
        // SAFETY: the text pointer and length were PostgreSQL's own, valid
        // for the whole parse.
        unsafe { std::slice::from_raw_parts(state.text, state.len) }
    };
    let Some(found) = tokens::token_at(text, state.at) else {
        return end();
    };
    state.at = found.start + found.len;
    *token = text.as_ptr().wrapping_add(found.start).cast();
    // Texts are at most 1 GB, so a token's length fits a C int.
    *length = c_int::try_from(found.len).unwrap_or(c_int::MAX);
    Internal::from(Some(pg_sys::Datum::from(found.kind as i32)))
}

/// The end function: the state goes with its memory context.
#[pg_extern(immutable, parallel_safe)]
fn council_parser_end(_state: Internal) {}

/// The lextypes function: the token types, as an array of `LexDescr`
/// ended by a zero `lexid`.
#[pg_extern(immutable, parallel_safe)]
fn council_parser_lextype(_unused: Internal) -> Internal {
    let count = Kind::ALL.len() + 1;
    // SAFETY: palloc0 returns zeroed memory for `count` descriptors in the
    // current memory context, where PostgreSQL reads them; the last stays
    // zero, which ends the list. pstrdup copies each C string there too.
    let descriptors = unsafe {
        let descriptors = pg_sys::palloc0(count * std::mem::size_of::<pg_sys::LexDescr>())
            .cast::<pg_sys::LexDescr>();
        for (i, (kind, alias, description)) in Kind::ALL.iter().enumerate() {
            let alias = CString::new(*alias).unwrap_or_default();
            let description = CString::new(*description).unwrap_or_default();
            descriptors.add(i).write(pg_sys::LexDescr {
                lexid: *kind as c_int,
                alias: pg_sys::pstrdup(alias.as_ptr()),
                descr: pg_sys::pstrdup(description.as_ptr()),
            });
        }
        descriptors
    };
    Internal::from(Some(pg_sys::Datum::from(descriptors)))
}

extension_sql_file!(
    "../../sql/text_search.sql",
    name = "text_search",
    requires = [
        council_parser_start,
        council_parser_gettoken,
        council_parser_end,
        council_parser_lextype
    ]
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn text(query: &str) -> String {
        Spi::get_one::<String>(query)
            .expect("the query")
            .unwrap_or_default()
    }

    #[pg_test]
    fn council_english_finds_the_words_inside_code_paths_and_addresses() {
        assert_eq!(
            text(
                "SELECT array_to_string(tsvector_to_array(to_tsvector('council_english',
                    'Call tls.createSecureContext() from /usr/lib/node; mail ops@example.org, 42 times')), ' ')"
            ),
            "42 call createsecurecontext exampl lib mail node op org time tls usr"
        );
        // The default parser keeps them whole: a search for the word inside
        // finds nothing there.
        let english: bool = Spi::get_one(
            "SELECT to_tsvector('english', 'tls.createSecureContext()')
                 @@ plainto_tsquery('english', 'createSecureContext')",
        )
        .expect("the query")
        .unwrap_or(true);
        assert!(!english);
    }

    #[pg_test]
    fn queries_and_headlines_read_the_same_tokens() {
        let found: bool = Spi::get_one(
            "SELECT to_tsvector('council_english', 'see https://www.postgresql.org/docs/textsearch.html')
                 @@ websearch_to_tsquery('council_english', 'textsearch docs')",
        )
        .expect("the query")
        .unwrap_or(false);
        assert!(found);
        assert_eq!(
            text(
                "SELECT ts_headline('council_english', 'Use tls.createSecureContext(options), then connect.',
                    websearch_to_tsquery('council_english', 'createSecureContext'))"
            ),
            "Use tls.<b>createSecureContext</b>(options), then connect."
        );
        assert_eq!(
            text(
                "SELECT string_agg(alias, ',' ORDER BY tokid)
                 FROM ts_token_type('council_parser')"
            ),
            "asciiword,word,numword,blank,uint"
        );
    }
}
