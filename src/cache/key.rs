//! Result-cache key, byte-compatible with the Python application.
//!
//! The application computes
//!
//! ```python
//! key_data = {"query": query.strip().lower(), "models": sorted(models),
//!             "voting_method": voting_method, "options": options or {}}
//! key = sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:32]
//! ```
//!
//! and this module reproduces it byte for byte, so that keys computed in the
//! database (`council_cache_key(...)`) and in Python hit the same entries.
//! Pure Rust: no pgrx types, so it is testable with plain `cargo test`.
//!
//! What has to match, and how:
//!
//! * `str.strip()` strips what Python's `str.isspace()` accepts, which is
//!   Rust's `char::is_whitespace` plus U+001C..U+001F: see [`is_py_space`].
//! * `str.lower()` is full Unicode lowercasing with the final-sigma rule.
//!   Rust's `str::to_lowercase` implements the same algorithm, but with the
//!   Unicode tables of the toolchain (17.0 for Rust 1.95), while Python 3.11
//!   uses Unicode 14.0.  The two differ on characters added or re-categorised
//!   since: 55 new capitals that Rust lowercases and Python leaves alone, and
//!   307 characters whose Cased / Case_Ignorable status (which decides
//!   Σ → ς or σ next to them) differs.  `PY311_NO_LOWERCASE` and
//!   `PY311_CASE_CLASS` pin Python 3.11's behaviour; a test compares every
//!   code point against the data the Python generator wrote into
//!   `tests/fixtures/cache_key_vectors.json`, so a toolchain with newer
//!   Unicode tables fails that test instead of silently changing keys.
//! * `json.dumps` defaults: `", "` / `": "` separators, keys sorted by code
//!   point at every level, `ensure_ascii=True` (`\uXXXX`, lower-case hex,
//!   surrogate pairs above U+FFFF; DEL U+007F is escaped too), floats as
//!   `repr(float)` (`1e+16`, `1e-05`, `1.0`, `-0.0`, `Infinity`).  Rust's
//!   shortest round-trip digits (`{:e}`) agree with Python's except when two
//!   shortest candidates are exactly equally near: Rust rounds up, Python to
//!   even (111275153569243.125 → Rust `…243.13`, Python `…243.12`); the
//!   writer, shared with the loader's sample files, is
//!   `council_app::python_json`.
//! * `options or {}` follows Python truthiness: `null`, `false`, `0`, `0.0`
//!   (including `-0.0` and floats that underflow to zero, e.g. `1e-400`),
//!   `""`, `[]` and `{}` all become `{}`.
//!
//! Options come in as a `serde_json::Value` parsed from the jsonb text with
//! the `arbitrary_precision` feature, so every number keeps the text it was
//! written with.  That text decides the Python type, as in `json.loads`: no
//! `.`, `e` or `E` means `int` (printed as is, `-0` as `0`), anything else is
//! a `float` (parsed to f64, printed as Python's repr; out of range becomes
//! `inf`, printed `Infinity`).
//!
//! Caveat at the SQL edge: PostgreSQL's jsonb stores numbers as `numeric`
//! and prints them normalised: `1.50` stays `1.50` (a float, printed `1.5`),
//! but `1e2` is printed `100` and therefore arrives here as an int, while the
//! Python application, given the JSON text `1e2`, would have held the float
//! `100.0`.  This only matters for floats with an integral value written in
//! exponent form; write them with a fractional part (`100.0`) in SQL.
//! Likewise jsonb prints `-0.0` as `0.0`: the same key for a top-level
//! value (both are falsy), but `[-0.0]` arrives as `[0.0]` and hashes as such.
//!
//! Other limits, mirrored or documented:
//!
//! * Python 3.11 refuses to convert integers of more than 4300 digits
//!   (`ValueError` in `json.loads`): reported as
//!   [`CacheKeyError::IntegerTooLong`] (SQLSTATE 22003).
//! * serde_json's parser stops at 128 levels of nesting, where Python would
//!   go on to about 1000: such options are reported as invalid JSON (22P02).
//!   Values built in code are limited to [`MAX_OPTIONS_DEPTH`] levels.
//! * Python's `json.loads` also accepts `NaN`, `Infinity` and lone
//!   surrogate escapes; jsonb rejects them, and so does this module (22P02).

use crate::sqlstate::{self, SqlState};
use council_app::python_json;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Length of a cache key in hex characters (`hexdigest()[:32]`).
pub const CACHE_KEY_LEN: usize = 32;

/// Deepest options nesting accepted when serialising (guards the recursion).
pub const MAX_OPTIONS_DEPTH: usize = 512;

/// Why a cache key could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheKeyError {
    /// The options text is not JSON (or not JSON that PostgreSQL accepts).
    #[error("invalid input syntax for type json: {0}")]
    InvalidOptionsJson(String),
    /// An integer Python 3.11 refuses to convert (more than 4300 digits).
    #[error(
        "integer in options has {digits} digits, over Python's limit of {limit} for integer string conversion"
    )]
    IntegerTooLong { digits: usize, limit: usize },
    /// Options nested deeper than [`MAX_OPTIONS_DEPTH`].
    #[error("options are nested deeper than {0} levels")]
    NestingTooDeep(usize),
}

impl CacheKeyError {
    /// The SQLSTATE to raise this error with.
    pub fn sqlstate(&self) -> SqlState {
        match self {
            // invalid_text_representation
            CacheKeyError::InvalidOptionsJson(_) => sqlstate::INVALID_TEXT_REPRESENTATION,
            // numeric_value_out_of_range
            CacheKeyError::IntegerTooLong { .. } => sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            // statement_too_complex
            CacheKeyError::NestingTooDeep(_) => sqlstate::STATEMENT_TOO_COMPLEX,
        }
    }
}

impl From<python_json::Error> for CacheKeyError {
    fn from(err: python_json::Error) -> CacheKeyError {
        match err {
            python_json::Error::InvalidNumber(text) => {
                CacheKeyError::InvalidOptionsJson(format!("invalid number {text}"))
            }
            python_json::Error::IntegerTooLong { digits, limit } => {
                CacheKeyError::IntegerTooLong { digits, limit }
            }
            python_json::Error::NestingTooDeep(depth) => CacheKeyError::NestingTooDeep(depth),
        }
    }
}

/// The exact string the application passes to sha256: `json.dumps(key_data,
/// sort_keys=True)`.
pub fn key_json(
    query: &str,
    models: &[&str],
    voting_method: &str,
    options: Option<&Value>,
) -> Result<String, CacheKeyError> {
    let mut sorted_models = models.to_vec();
    // Byte order of UTF-8 is code point order, which is how Python sorts str.
    sorted_models.sort_unstable();

    let mut out = String::with_capacity(128);
    // The four keys, already in sorted order.
    out.push('{');
    python_json::key(&mut out, true, "models");
    python_json::string_array(&mut out, &sorted_models);
    python_json::key(&mut out, false, "options");
    match options {
        Some(value) if py_truthy(value) => out
            .push_str(&python_json::dumps(value, MAX_OPTIONS_DEPTH).map_err(CacheKeyError::from)?),
        _ => out.push_str("{}"),
    }
    python_json::key(&mut out, false, "query");
    python_json::string(&mut out, &normalize_query(query));
    python_json::key(&mut out, false, "voting_method");
    python_json::string(&mut out, voting_method);
    out.push('}');
    Ok(out)
}

/// Python's `query.strip().lower()`.
pub fn normalize_query(query: &str) -> String {
    py_lower(query.trim_matches(is_py_space))
}

/// Python 3.11's `str.isspace()` for one character: the characters with
/// bidirectional class WS, B or S or general category Zs.  Unlike
/// `char::is_whitespace` this includes U+001C..U+001F; neither includes
/// U+200B or U+FEFF.
pub fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// The cache key: the first 32 hex digits of the SHA-256 of [`key_json`].
pub fn cache_key(key_json: &str) -> String {
    let digest = Sha256::digest(key_json.as_bytes());
    let mut key = String::with_capacity(CACHE_KEY_LEN);
    for byte in digest.iter().take(CACHE_KEY_LEN / 2) {
        // Lower-case, as Python's hexdigest() prints.
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

#[cfg(test)]
fn parse_options(text: Option<&str>) -> Result<Option<Value>, CacheKeyError> {
    match text {
        None => Ok(None),
        Some(text) => serde_json::from_str::<Value>(text)
            .map(Some)
            .map_err(|e| CacheKeyError::InvalidOptionsJson(e.to_string())),
    }
}

// ---------------------------------------------------------------------------
// str.lower() as Python 3.11 (Unicode 14.0) does it
// ---------------------------------------------------------------------------

/// How the final-sigma rule sees a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaseClass {
    /// Cased and not Case_Ignorable.
    Cased,
    /// Case_Ignorable (skipped when looking for the neighbouring letter).
    Ignorable,
    /// Neither.
    Neither,
}

/// Characters that Rust's tables (Unicode 17.0) lowercase but Python 3.11
/// (Unicode 14.0) does not, because they were added in Unicode 15..17:
/// Cyrillic TJE, Latin capitals in Latin Extended-D, Garay, Kirat Rai.
/// Inclusive code point ranges, sorted.
const PY311_NO_LOWERCASE: &[(u32, u32)] = &[
    (0x1C89, 0x1C89),
    (0xA7CB, 0xA7CC),
    (0xA7CE, 0xA7CE),
    (0xA7D2, 0xA7D2),
    (0xA7D4, 0xA7D4),
    (0xA7DA, 0xA7DA),
    (0xA7DC, 0xA7DC),
    (0x10D50, 0x10D65),
    (0x16EA0, 0x16EB8),
];

/// Characters whose final-sigma class under Python 3.11 differs from what
/// Rust's tables say; the class given is Python's.  Nearly all were
/// unassigned in Unicode 14.0 (so neither Cased nor Case_Ignorable there);
/// U+0295 was Ll (Lo since Unicode 16) and U+1171E was Mn (Mc since 15).
/// Inclusive code point ranges, sorted, not overlapping.
const PY311_CASE_CLASS: &[(u32, u32, CaseClass)] = &[
    (0x0295, 0x0295, CaseClass::Cased),
    (0x0897, 0x0897, CaseClass::Neither),
    (0x0ECE, 0x0ECE, CaseClass::Neither),
    (0x1ACF, 0x1ADD, CaseClass::Neither),
    (0x1AE0, 0x1AEB, CaseClass::Neither),
    (0x1C89, 0x1C8A, CaseClass::Neither),
    (0xA7CB, 0xA7CF, CaseClass::Neither),
    (0xA7D2, 0xA7D2, CaseClass::Neither),
    (0xA7D4, 0xA7D4, CaseClass::Neither),
    (0xA7DA, 0xA7DC, CaseClass::Neither),
    (0xA7F1, 0xA7F1, CaseClass::Neither),
    (0x10D4E, 0x10D4E, CaseClass::Neither),
    (0x10D50, 0x10D65, CaseClass::Neither),
    (0x10D69, 0x10D6D, CaseClass::Neither),
    (0x10D6F, 0x10D85, CaseClass::Neither),
    (0x10EC5, 0x10EC5, CaseClass::Neither),
    (0x10EFA, 0x10EFF, CaseClass::Neither),
    (0x11241, 0x11241, CaseClass::Neither),
    (0x113BB, 0x113C0, CaseClass::Neither),
    (0x113CE, 0x113CE, CaseClass::Neither),
    (0x113D0, 0x113D0, CaseClass::Neither),
    (0x113D2, 0x113D2, CaseClass::Neither),
    (0x113E1, 0x113E2, CaseClass::Neither),
    (0x1171E, 0x1171E, CaseClass::Ignorable),
    (0x11B60, 0x11B60, CaseClass::Neither),
    (0x11B62, 0x11B64, CaseClass::Neither),
    (0x11B66, 0x11B66, CaseClass::Neither),
    (0x11DD9, 0x11DD9, CaseClass::Neither),
    (0x11F00, 0x11F01, CaseClass::Neither),
    (0x11F36, 0x11F3A, CaseClass::Neither),
    (0x11F40, 0x11F40, CaseClass::Neither),
    (0x11F42, 0x11F42, CaseClass::Neither),
    (0x11F5A, 0x11F5A, CaseClass::Neither),
    (0x13439, 0x13440, CaseClass::Neither),
    (0x13447, 0x13455, CaseClass::Neither),
    (0x1611E, 0x16129, CaseClass::Neither),
    (0x1612D, 0x1612F, CaseClass::Neither),
    (0x16D40, 0x16D42, CaseClass::Neither),
    (0x16D6B, 0x16D6C, CaseClass::Neither),
    (0x16EA0, 0x16EB8, CaseClass::Neither),
    (0x16EBB, 0x16ED3, CaseClass::Neither),
    (0x16FF2, 0x16FF3, CaseClass::Neither),
    (0x1DF25, 0x1DF2A, CaseClass::Neither),
    (0x1E030, 0x1E06D, CaseClass::Neither),
    (0x1E08F, 0x1E08F, CaseClass::Neither),
    (0x1E4EB, 0x1E4EF, CaseClass::Neither),
    (0x1E5EE, 0x1E5EF, CaseClass::Neither),
    (0x1E6E3, 0x1E6E3, CaseClass::Neither),
    (0x1E6E6, 0x1E6E6, CaseClass::Neither),
    (0x1E6EE, 0x1E6EF, CaseClass::Neither),
    (0x1E6F5, 0x1E6F5, CaseClass::Neither),
    (0x1E6FF, 0x1E6FF, CaseClass::Neither),
];

const CAPITAL_SIGMA: char = '\u{3a3}';
const SMALL_SIGMA: char = '\u{3c3}';
const FINAL_SIGMA: char = '\u{3c2}';

/// Where the range `lo..=hi` lies against `cp`, for a binary search of
/// sorted ranges that do not overlap.
fn range_against(lo: u32, hi: u32, cp: u32) -> std::cmp::Ordering {
    if hi < cp {
        std::cmp::Ordering::Less
    } else if lo > cp {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

fn in_ranges(c: char, ranges: &[(u32, u32)]) -> bool {
    let cp = u32::from(c);
    ranges
        .binary_search_by(|&(lo, hi)| range_against(lo, hi, cp))
        .is_ok()
}

/// Python 3.11's `str.lower()`.
fn py_lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == CAPITAL_SIGMA {
            out.push(if is_final_sigma(&chars, i) {
                FINAL_SIGMA
            } else {
                SMALL_SIGMA
            });
        } else {
            push_lower_char(&mut out, c);
        }
    }
    out
}

/// Lowercase of one character other than U+03A3, as Python 3.11 maps it.
fn push_lower_char(out: &mut String, c: char) {
    if in_ranges(c, PY311_NO_LOWERCASE) {
        out.push(c);
    } else {
        out.extend(c.to_lowercase());
    }
}

/// The final-sigma condition of Python (and of the Unicode standard):
/// Σ is preceded by a cased letter, skipping case-ignorable characters, and
/// not followed by one, again skipping case-ignorable characters.
fn is_final_sigma(chars: &[char], i: usize) -> bool {
    let (before, rest) = chars.split_at(i);
    let after = rest.get(1..).unwrap_or(&[]);
    let first_before = before
        .iter()
        .rev()
        .map(|&c| case_class(c))
        .find(|&k| k != CaseClass::Ignorable);
    if first_before != Some(CaseClass::Cased) {
        return false;
    }
    let first_after = after
        .iter()
        .map(|&c| case_class(c))
        .find(|&k| k != CaseClass::Ignorable);
    first_after != Some(CaseClass::Cased)
}

/// The final-sigma class of `c` under Python 3.11.
fn case_class(c: char) -> CaseClass {
    let cp = u32::from(c);
    if let Ok(i) = PY311_CASE_CLASS.binary_search_by(|&(lo, hi, _)| range_against(lo, hi, cp)) {
        if let Some(&(_, _, class)) = PY311_CASE_CLASS.get(i) {
            return class;
        }
    }
    std_case_class(c)
}

/// The final-sigma class of `c` under Rust's own tables.  std does not
/// expose Cased / Case_Ignorable, so ask its final-sigma implementation:
/// in "AΣc" the Σ stays σ only if c is cased and not case-ignorable; in
/// "AΣcA" it stays σ if c is cased or case-ignorable.
fn std_case_class(c: char) -> CaseClass {
    if c.is_ascii_alphabetic() {
        return CaseClass::Cased;
    }
    if c.is_ascii() {
        // Word_Break MidLetter / MidNumLet / Single_Quote, and Sk.
        return if matches!(c, '\'' | '.' | ':' | '^' | '`') {
            CaseClass::Ignorable
        } else {
            CaseClass::Neither
        };
    }
    let mut probe = String::with_capacity(8);
    probe.push('A');
    probe.push(CAPITAL_SIGMA);
    probe.push(c);
    if sigma_in_probe(&probe) == Some(SMALL_SIGMA) {
        return CaseClass::Cased;
    }
    probe.push('A');
    if sigma_in_probe(&probe) == Some(SMALL_SIGMA) {
        CaseClass::Ignorable
    } else {
        CaseClass::Neither
    }
}

fn sigma_in_probe(probe: &str) -> Option<char> {
    // 'A' lowercases to the single char 'a', so the Σ's image is char 1.
    probe.to_lowercase().chars().nth(1)
}

/// Python truthiness of the value `json.loads` would have produced.
fn py_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => {
            let text = n.to_string();
            if python_json::is_float_text(&text) {
                // NaN cannot come from JSON; inf is truthy, underflow is 0.0.
                text.parse::<f64>().map(|f| f != 0.0).unwrap_or(true)
            } else {
                text.bytes().any(|b| matches!(b, b'1'..=b'9'))
            }
        }
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`key_json`] with the options given as JSON text; `None` means `{}`.
    fn key_json_from_json_text(
        query: &str,
        models: &[&str],
        voting_method: &str,
        options_json_text: Option<&str>,
    ) -> Result<String, CacheKeyError> {
        let options = parse_options(options_json_text)?;
        key_json(query, models, voting_method, options.as_ref())
    }

    /// What [`cache_key`] makes of that key JSON: with
    /// [`key_json_from_json_text`], the cache key of options given as JSON
    /// text (e.g. jsonb's text output).
    fn hashed(json: Result<String, CacheKeyError>) -> Result<String, CacheKeyError> {
        json.map(|json| cache_key(&json))
    }

    use council_app::python_json::PY_INT_MAX_STR_DIGITS;
    use serde_json::json;

    const VECTORS: &str = include_str!("../../tests/fixtures/cache_key_vectors.json");

    fn fixture() -> Value {
        serde_json::from_str(VECTORS).expect("vectors file is JSON")
    }

    fn str_list(v: &Value) -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|m| m.as_str().expect("string").to_owned())
            .collect()
    }

    #[test]
    fn vectors_match_python() {
        let fx = fixture();
        let vectors = fx["vectors"].as_array().expect("vectors");
        assert!(vectors.len() >= 60, "only {} vectors", vectors.len());
        let mut failures = Vec::new();
        for v in vectors {
            let name = v["name"].as_str().expect("name");
            let query = v["query"].as_str().expect("query");
            let models = str_list(&v["models"]);
            let models: Vec<&str> = models.iter().map(String::as_str).collect();
            let voting = v["voting_method"].as_str().expect("voting_method");
            let options = v["options"].as_str();
            let want_json = v["key_json"].as_str().expect("key_json");
            let want_key = v["key"].as_str().expect("key");

            let got_json = key_json_from_json_text(query, &models, voting, options)
                .unwrap_or_else(|e| panic!("{name}: {e}")); // ok: test assertion
            if got_json != want_json {
                let at = got_json
                    .bytes()
                    .zip(want_json.bytes())
                    .position(|(a, b)| a != b)
                    .unwrap_or(got_json.len().min(want_json.len()));
                failures.push(format!(
                    "{name}: key_json differs at byte {at}\n  want: {}\n  got:  {}",
                    &want_json[at.saturating_sub(20)..(at + 40).min(want_json.len())],
                    &got_json[at.saturating_sub(20)..(at + 40).min(got_json.len())],
                ));
                continue;
            }
            let got_key = hashed(key_json_from_json_text(query, &models, voting, options))
                .unwrap_or_else(|e| panic!("{name}: {e}")); // ok: test assertion
            if got_key != want_key {
                failures.push(format!("{name}: key {got_key} != {want_key}"));
            }
            // The Value entry point gives the same key.
            let parsed: Option<Value> = options.map(|t| serde_json::from_str(t).expect("json"));
            let via_value = key_json(query, &models, voting, parsed.as_ref())
                .map(|json| cache_key(&json))
                .expect("cache_key");
            assert_eq!(via_value, want_key, "{name} via cache_key");
            assert_eq!(via_value.len(), CACHE_KEY_LEN);
        }
        assert!(
            failures.is_empty(),
            "{} of {} vectors differ:\n{}",
            failures.len(),
            vectors.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn error_vectors() {
        let fx = fixture();
        let errors = fx["errors"].as_array().expect("errors");
        assert!(!errors.is_empty());
        for e in errors {
            let name = e["name"].as_str().expect("name");
            let text = e["options"].as_str().expect("options");
            let state = e["sqlstate"].as_str().expect("sqlstate");
            match hashed(key_json_from_json_text("q", &["m"], "borda", Some(text))) {
                Ok(k) => panic!("{name}: expected error {state}, got key {k}"), // ok: test assertion
                Err(err) => assert_eq!(err.sqlstate(), state, "{name}: {err}"),
            }
        }
    }

    fn cp_ranges(v: &Value) -> Vec<(u32, u32, String)> {
        v.as_array()
            .expect("ranges")
            .iter()
            .map(|r| {
                let lo = r[0].as_u64().expect("lo") as u32;
                let hi = r[1].as_u64().expect("hi") as u32;
                (lo, hi, r[2].as_str().expect("class").to_owned())
            })
            .collect()
    }

    /// Every code point: isspace, single-character lower() and the
    /// final-sigma class agree with the Python 3.11 data in the fixture.
    #[test]
    fn unicode_tables_match_python_for_every_code_point() {
        let fx = fixture();
        let uni = &fx["unicode"];

        let spaces: std::collections::HashSet<u32> = uni["isspace"]
            .as_array()
            .expect("isspace")
            .iter()
            .map(|x| x.as_u64().expect("cp") as u32)
            .collect();
        let lower: std::collections::HashMap<u32, String> = uni["lower"]
            .as_array()
            .expect("lower")
            .iter()
            .map(|e| {
                let cp = e[0].as_u64().expect("cp") as u32;
                let s: String = e[1]
                    .as_array()
                    .expect("cps")
                    .iter()
                    .map(|x| char::from_u32(x.as_u64().expect("cp") as u32).expect("char"))
                    .collect();
                (cp, s)
            })
            .collect();
        let mut classes = std::collections::HashMap::new();
        for (lo, hi, k) in cp_ranges(&uni["case_class"]) {
            let class = match k.as_str() {
                "C" => CaseClass::Cased,
                "I" => CaseClass::Ignorable,
                other => panic!("class {other}"), // ok: test fixture
            };
            for cp in lo..=hi {
                classes.insert(cp, class);
            }
        }

        let mut bad = Vec::new();
        let mut one = String::new();
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let cp = u32::from(c);
            if is_py_space(c) != spaces.contains(&cp) {
                bad.push(format!("isspace U+{cp:04X}"));
            }
            one.clear();
            one.push(c);
            let want = lower.get(&cp).cloned().unwrap_or_else(|| one.clone());
            if py_lower(&one) != want {
                bad.push(format!("lower U+{cp:04X}"));
            }
            let want_class = classes.get(&cp).copied().unwrap_or(CaseClass::Neither);
            if case_class(c) != want_class {
                bad.push(format!("case class U+{cp:04X}: {:?}", case_class(c)));
            }
        }
        assert!(
            bad.is_empty(),
            "{} code points differ from Python {} (Unicode {}); Rust has Unicode {:?}:\n{}",
            bad.len(),
            fx["python_version"],
            fx["unicode_version"],
            char::UNICODE_VERSION,
            bad.iter().take(50).cloned().collect::<Vec<_>>().join("\n")
        );
    }

    #[test]
    fn py311_tables_are_sorted_and_disjoint() {
        for w in PY311_NO_LOWERCASE.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:x?}");
        }
        for w in PY311_CASE_CLASS.windows(2) {
            assert!(
                w[0].0 <= w[0].1 && w[0].1 < w[1].0,
                "{:x?}",
                (w[0].0, w[1].0)
            );
        }
    }

    #[test]
    fn numbers_follow_json_loads_types() {
        let k = |text: &str| {
            let j = key_json_from_json_text("q", &[], "b", Some(text)).expect("ok");
            let start = j.find("\"options\": ").expect("options") + 11;
            let end = j.find(", \"query\"").expect("query");
            j[start..end].to_owned()
        };
        assert_eq!(k("[1e2]"), "[100.0]");
        assert_eq!(k("[1E2]"), "[100.0]");
        assert_eq!(k("[100]"), "[100]");
        assert_eq!(k("[-0]"), "[0]");
        assert_eq!(k("[-0.0]"), "[-0.0]");
        assert_eq!(k("[1.50]"), "[1.5]");
        assert_eq!(k("[1e400, -1e400, 1e-400]"), "[Infinity, -Infinity, 0.0]");
        assert_eq!(k("1e-400"), "{}");
        assert_eq!(k("-0"), "{}");
        assert_eq!(k("0e7"), "{}");
        assert_eq!(k("1e400"), "Infinity");
        assert_eq!(k("[18446744073709551616]"), "[18446744073709551616]");
    }

    #[test]
    fn values_built_in_code() {
        // Number::from_f64 keeps floats floats (1e16 must not become an int).
        let v = json!({"b": 1e16, "a": 1.0, "c": [1, -2, 0.5], "é": "x"});
        let j = key_json("Q", &["m2", "m1"], "borda", Some(&v)).expect("ok");
        assert_eq!(
            j,
            "{\"models\": [\"m1\", \"m2\"], \"options\": {\"a\": 1.0, \"b\": 1e+16, \
             \"c\": [1, -2, 0.5], \"\\u00e9\": \"x\"}, \"query\": \"q\", \"voting_method\": \"borda\"}"
        );
        assert_eq!(
            key_json("q", &[], "b", None).expect("ok"),
            key_json("q", &[], "b", Some(&json!(null))).expect("ok")
        );
    }

    #[test]
    fn errors_and_sqlstates() {
        let bad = hashed(key_json_from_json_text("q", &[], "b", Some("{"))).expect_err("invalid");
        assert_eq!(bad.sqlstate(), "22P02");
        let long = format!("[{}]", "9".repeat(PY_INT_MAX_STR_DIGITS + 1));
        let err =
            hashed(key_json_from_json_text("q", &[], "b", Some(&long))).expect_err("too long");
        assert_eq!(
            err,
            CacheKeyError::IntegerTooLong {
                digits: PY_INT_MAX_STR_DIGITS + 1,
                limit: PY_INT_MAX_STR_DIGITS
            }
        );
        assert_eq!(err.sqlstate(), "22003");
        let ok = format!("[{}]", "9".repeat(PY_INT_MAX_STR_DIGITS));
        assert!(hashed(key_json_from_json_text("q", &[], "b", Some(&ok))).is_ok());

        // serde_json's parser refuses more than 128 levels.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let err = hashed(key_json_from_json_text("q", &[], "b", Some(&deep))).expect_err("deep");
        assert_eq!(err.sqlstate(), "22P02");

        // Values built in code are limited by MAX_OPTIONS_DEPTH.
        let mut v = json!(1);
        for _ in 0..MAX_OPTIONS_DEPTH {
            v = Value::Array(vec![v]);
        }
        let err = key_json("q", &[], "b", Some(&v)).expect_err("too deep");
        assert_eq!(err, CacheKeyError::NestingTooDeep(MAX_OPTIONS_DEPTH));
        assert_eq!(err.sqlstate(), "54001");
        if let Value::Array(mut inner) = v {
            let v = inner.pop().expect("one level less");
            assert!(key_json("q", &[], "b", Some(&v)).is_ok());
        }
    }

    #[test]
    fn query_normalisation() {
        assert_eq!(normalize_query("\u{1c} ΟΔΟΣ \u{3000}"), "οδος");
        assert_eq!(normalize_query("\u{200b}A\u{feff}"), "\u{200b}a\u{feff}");
        assert_eq!(normalize_query("İ"), "i\u{307}");
        assert_eq!(normalize_query("ẞ"), "ß");
        // Rust's std (Unicode 17) would lowercase U+10D50 and give σ here.
        assert_eq!(normalize_query("\u{10d50}"), "\u{10d50}");
        assert_eq!(normalize_query("ΑΣ\u{10d70}"), "ας\u{10d70}");
        assert_ne!("ΑΣ\u{10d70}".to_lowercase(), "ας\u{10d70}");
    }
}
