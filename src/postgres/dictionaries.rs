//! `council_search_document`'s edge: a text's tsvector for a configuration
//! whose parser is `council_parser`, with each distinct word run through
//! the configuration's dictionaries once per backend rather than once per
//! occurrence (`to_tsvector` lowercases, checks the stop words and stems
//! every word again; on real prose that was most of the time an import
//! spent parsing). The tokens are `search::tokens`', counted as
//! `parsetext` counts them, and the tsvector is built by
//! `search::document`, equal byte for byte to `to_tsvector`'s.
//!
//! Only dictionaries that read one word at a time and always answer the
//! same for it are remembered: the built-in `simple` and Snowball
//! templates. A configuration with any other (a thesaurus, a filter
//! dictionary, an ispell one), another parser, or a word whose dictionary
//! answers with more than one lexeme, is parsed by `to_tsvector` itself.
//! What a dictionary answered is forgotten when any text search
//! dictionary changes (`ALTER TEXT SEARCH DICTIONARY … (StopWords = …)`).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::postgres::notice;
use crate::postgres::text_search_parser::council_parser_gettoken_wrapper;
use crate::search::document::{self, MAX_LEXEME};
use crate::search::tokens;
use crate::search::word_map::WordMap;

/// The longest token PostgreSQL's text search takes (`MAXSTRLEN`): longer
/// ones are skipped with a NOTICE, and not counted.
const MAX_WORD: usize = 2047;
/// How many tokens ahead a parse asks for a word's slot in the word map:
/// about as many words (every other token is the space between two) as
/// the processor fetches from memory at once.
const PREFETCH_AHEAD: usize = 16;
/// How many words' answers a backend keeps before it starts again: the
/// word map then has 2^18 slots of 32 bytes, 8 MB.
const REMEMBERED: usize = 190_000;

/// What a chain of dictionaries answered for one word.
#[derive(Clone, Copy, Default)]
enum Answer {
    /// one lexeme, by its number among the lexemes remembered
    Lexeme(u32),
    /// a stop word: counted, no lexeme
    Stop,
    /// no dictionary took it: neither counted nor kept (and what an
    /// empty slot of the word map holds)
    #[default]
    Unrecognized,
}

/// Each chain of dictionaries (a token type's mapping) and the answers it
/// gave, per word; the lexemes of those answers.
#[derive(Default)]
struct Remembered {
    chains: Vec<(Vec<pg_sys::Oid>, WordMap<Answer>)>,
    /// each lexeme once, whichever words and dictionaries gave it, so
    /// that its number stands for it alone
    lexemes: Vec<Box<[u8]>>,
    numbers: WordMap<u32>,
    /// per dictionary, whether it is one whose answers may be remembered
    rememberable: HashMap<pg_sys::Oid, bool>,
}

thread_local! {
    static REMEMBERED_ANSWERS: RefCell<Remembered> = RefCell::new(Remembered::default());
    static STALE: Cell<bool> = const { Cell::new(false) };
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

/// A text search dictionary changed: what any dictionary answered may no
/// longer be what it answers.
#[pg_guard]
unsafe extern "C-unwind" fn dictionaries_changed(
    _arg: pg_sys::Datum,
    _cache: std::ffi::c_int,
    _hash: u32,
) {
    STALE.with(|stale| stale.set(true));
}

/// The tsvector of `text` for `config`, as `to_tsvector(config, text)`.
pub fn tsvector(config: pg_sys::Oid, text: &[u8]) -> pg_sys::Datum {
    match remembered_tsvector(config, text) {
        Some(bytes) => varlena(&bytes),
        None => to_tsvector(config, text),
    }
}

/// The bytes of `to_tsvector(config, text)` after its header.
pub fn tsvector_bytes(config: pg_sys::Oid, text: &[u8]) -> Vec<u8> {
    if let Some(bytes) = remembered_tsvector(config, text) {
        return bytes;
    }
    let datum = to_tsvector(config, text);
    // SAFETY: to_tsvector returns a tsvector palloc'd whole in the current
    // memory context, copied out at once.
    unsafe { pgrx::varlena::varlena_to_byte_slice(datum.cast_mut_ptr()).to_vec() }
}

/// PostgreSQL's own `to_tsvector(config, text)`.
fn to_tsvector(config: pg_sys::Oid, text: &[u8]) -> pg_sys::Datum {
    let text = varlena(text);
    // SAFETY: to_tsvector_byid takes a regconfig and a text datum, made
    // here in the current memory context; pgrx's guard of OidFunctionCall2Coll
    // turns what it raises into the same PostgreSQL error.
    unsafe {
        pg_sys::OidFunctionCall2Coll(
            pg_sys::Oid::from(pg_sys::F_TO_TSVECTOR_REGCONFIG_TEXT),
            pg_sys::InvalidOid,
            pg_sys::Datum::from(config),
            text,
        )
    }
}

/// `bytes` as a varlena with a 4-byte header, palloc'd in the current
/// memory context: a text, or a tsvector.
pub fn varlena(bytes: &[u8]) -> pg_sys::Datum {
    let size = bytes.len() + pg_sys::VARHDRSZ;
    // SAFETY: palloc returns `size` bytes, of which the header takes the
    // first four and the bytes the rest; SET_VARSIZE writes the header.
    unsafe {
        let memory = pg_sys::palloc(size).cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), memory.add(pg_sys::VARHDRSZ), bytes.len());
        pgrx::varlena::set_varsize_4b(memory.cast(), i32::try_from(size).unwrap_or(i32::MAX));
        pg_sys::Datum::from(memory)
    }
}

/// The tsvector's bytes, or None where `to_tsvector` must make it.
fn remembered_tsvector(config: pg_sys::Oid, text: &[u8]) -> Option<Vec<u8>> {
    if !WATCHING.with(Cell::get) {
        // SAFETY: registering a syscache callback for the backend's life,
        // once; the callback only sets a flag.
        unsafe {
            pg_sys::CacheRegisterSyscacheCallback(
                pg_sys::SysCacheIdentifier::TSDICTOID as std::ffi::c_int,
                Some(dictionaries_changed),
                pg_sys::Datum::from(0),
            );
        }
        WATCHING.with(|watching| watching.set(true));
    }
    // SAFETY: lookup_ts_config_cache returns the configuration's cache
    // entry (or raises for an unknown one), valid until the next catalog
    // invalidation, which nothing below can cause; its map has lenmap
    // lists of lenmap dictionary oids each.
    let (parser, maps) = unsafe {
        let entry = &*pg_sys::lookup_ts_config_cache(config);
        let maps: Vec<Vec<pg_sys::Oid>> = (0..usize::try_from(entry.lenmap).unwrap_or(0))
            .map(|kind| {
                let list = &*entry.map.add(kind);
                let len = usize::try_from(list.len).unwrap_or(0);
                if len == 0 || list.dictIds.is_null() {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(list.dictIds, len).to_vec()
                }
            })
            .collect();
        (entry.prsId, maps)
    };
    if !is_council_parser(parser) {
        return None;
    }
    REMEMBERED_ANSWERS.with(|remembered| {
        let mut remembered = remembered.borrow_mut();
        if STALE.with(|stale| stale.replace(false)) || remembered.words() > REMEMBERED {
            *remembered = Remembered::default();
        }
        let mut chain_of_kind: Vec<Option<usize>> = Vec::with_capacity(maps.len());
        for chain in &maps {
            if chain.is_empty() {
                chain_of_kind.push(None);
                continue;
            }
            for &dictionary in chain {
                if !is_rememberable(&mut remembered, dictionary) {
                    return None;
                }
            }
            let index = match remembered.chains.iter().position(|(c, _)| c == chain) {
                Some(index) => index,
                None => {
                    remembered.chains.push((chain.clone(), WordMap::default()));
                    remembered.chains.len() - 1
                }
            };
            chain_of_kind.push(Some(index));
        }

        let mut words: Vec<(u32, u16)> = Vec::new();
        let mut too_long = 0;
        let mut counted: u32 = 0;
        // Each word's slot is asked for when its token enters a window of
        // the next PREFETCH_AHEAD tokens (with the chain of dictionaries
        // that reads it), so that it has arrived by the time the word is
        // looked up.
        let mut window: VecDeque<(tokens::Token, Option<usize>)> =
            VecDeque::with_capacity(PREFETCH_AHEAD + 1);
        let mut at = 0;
        loop {
            while window.len() <= PREFETCH_AHEAD {
                let Some(token) = tokens::token_at(text, at) else {
                    break;
                };
                at = token.start + token.len;
                let chain = chain_of_kind.get(token.kind as usize).copied().flatten();
                if let Some(chain) = chain {
                    remembered.chains[chain]
                        .1
                        .prefetch_in(text, token.start, token.len);
                }
                window.push_back((token, chain));
            }
            let Some((token, chain)) = window.pop_front() else {
                break;
            };
            if token.len >= MAX_WORD {
                too_long += 1;
                continue;
            }
            let Some(chain) = chain else {
                continue;
            };
            let word = &text[token.start..token.start + token.len];
            let answer = match remembered.chains[chain]
                .1
                .get_in(text, token.start, token.len)
            {
                Some(&answer) => answer,
                None => {
                    let answer = match lexize(&remembered.chains[chain].0, word)? {
                        Lexized::Lexeme(lexeme) => Answer::Lexeme(remembered.number(lexeme)?),
                        Lexized::Stop => Answer::Stop,
                        Lexized::Unrecognized => Answer::Unrecognized,
                    };
                    remembered.chains[chain].1.insert(word, answer);
                    answer
                }
            };
            match answer {
                Answer::Unrecognized => {}
                Answer::Stop => counted += 1,
                Answer::Lexeme(lexeme) => {
                    counted += 1;
                    words.push((lexeme, document::position(counted)));
                }
            }
        }
        let lexemes = &remembered.lexemes;
        let built = document::tsvector(&mut words, |n| {
            lexemes.get(n as usize).map_or(&[][..], |l| &l[..])
        })?;
        for _ in 0..too_long {
            notice::send(
                PgLogLevel::NOTICE,
                pg_sys::panic::ErrorReport::new(
                    PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                    "word is too long to be indexed",
                    "council_dictionary",
                )
                .set_detail(format!(
                    "Words longer than {MAX_WORD} characters are ignored."
                )),
            );
        }
        Some(built)
    })
}

impl Remembered {
    /// How many words' answers are remembered.
    fn words(&self) -> usize {
        self.chains.iter().map(|(_, words)| words.len()).sum()
    }

    /// The number standing for `lexeme`.
    fn number(&mut self, lexeme: Box<[u8]>) -> Option<u32> {
        if let Some(&number) = self.numbers.get(&lexeme) {
            return Some(number);
        }
        let number = u32::try_from(self.lexemes.len()).ok()?;
        self.numbers.insert(&lexeme, number);
        self.lexemes.push(lexeme);
        Some(number)
    }
}

/// Whether `parser` is council_parser: its get-token function is ours.
fn is_council_parser(parser: pg_sys::Oid) -> bool {
    // SAFETY: lookup_ts_parser_cache returns the parser's cache entry (or
    // raises), whose FmgrInfo holds the address of its get-token function.
    let token = unsafe { (*pg_sys::lookup_ts_parser_cache(parser)).prstoken.fn_addr };
    token.is_some_and(|f| {
        std::ptr::fn_addr_eq(
            f,
            council_parser_gettoken_wrapper
                as unsafe extern "C-unwind" fn(pg_sys::FunctionCallInfo) -> pg_sys::Datum,
        )
    })
}

/// Whether `dictionary`'s answers may be remembered: its template is the
/// built-in `simple` or Snowball one, which read one word, always alike.
fn is_rememberable(remembered: &mut Remembered, dictionary: pg_sys::Oid) -> bool {
    *remembered
        .rememberable
        .entry(dictionary)
        .or_insert_with(|| {
            // SAFETY: lookup_ts_dictionary_cache returns the dictionary's cache
            // entry (or raises); get_func_name returns its lexize function's
            // name, palloc'd, or NULL.
            unsafe {
                let lexize = (*pg_sys::lookup_ts_dictionary_cache(dictionary)).lexizeOid;
                if pg_sys::get_func_namespace(lexize)
                    != pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE)
                {
                    return false;
                }
                let name = pg_sys::get_func_name(lexize);
                !name.is_null()
                    && matches!(
                        CStr::from_ptr(name).to_bytes(),
                        b"dsimple_lexize" | b"dsnowball_lexize"
                    )
            }
        })
}

/// What one lexize call answered.
enum Lexized {
    Lexeme(Box<[u8]>),
    Stop,
    Unrecognized,
}

/// What `chain` answers for `word`, as LexizeExec asks: each dictionary in
/// turn until one takes it. None for an answer not remembered here (more
/// than one lexeme, or flags), which `to_tsvector` then parses.
fn lexize(chain: &[pg_sys::Oid], word: &[u8]) -> Option<Lexized> {
    for &dictionary in chain {
        let mut state = pg_sys::DictSubState::default();
        // SAFETY: the dictionary's lexize function takes its data, the
        // word (not NUL-terminated) and its length, and its sub-state, as
        // LexizeExec passes them; it returns a palloc'd array of TSLexeme
        // ended by a NULL lexeme, or NULL when it does not take the word.
        let lexemes = unsafe {
            let entry = &mut *pg_sys::lookup_ts_dictionary_cache(dictionary);
            pg_sys::FunctionCall4Coll(
                &mut entry.lexize,
                pg_sys::InvalidOid,
                pg_sys::Datum::from(entry.dictData),
                pg_sys::Datum::from(word.as_ptr()),
                pg_sys::Datum::from(i32::try_from(word.len()).unwrap_or(i32::MAX)),
                pg_sys::Datum::from(std::ptr::addr_of_mut!(state)),
            )
            .cast_mut_ptr::<pg_sys::TSLexeme>()
        };
        if lexemes.is_null() {
            continue;
        }
        // SAFETY: a non-NULL answer is an array ended by a NULL lexeme, so
        // when its first lexeme is not NULL a second element follows.
        let (first, second) = unsafe {
            let first = &*lexemes;
            if first.lexeme.is_null() {
                return Some(Lexized::Stop);
            }
            (first, &*lexemes.add(1))
        };
        if !second.lexeme.is_null() || first.flags != 0 {
            return None;
        }
        // SAFETY: the lexeme is a NUL-terminated string of the dictionary's.
        let lexeme = unsafe { CStr::from_ptr(first.lexeme) }.to_bytes();
        if lexeme.len() > MAX_LEXEME {
            return None;
        }
        return Some(Lexized::Lexeme(lexeme.into()));
    }
    Some(Lexized::Unrecognized)
}
