//! A tsvector's or a tsquery's bytes, for the search's scoring and
//! snippets to read in safe Rust (`search::score`, `search::snippet`):
//! detoasted whole, as PostgreSQL's own text search code reads them.

use pgrx::pg_sys;
use pgrx::AnyElement;

use crate::error::Error;

/// The bytes after the varlena header of `value`, which must be a
/// tsvector; they live in the current memory context, as long as the call.
pub fn bytes(value: &AnyElement) -> Result<&[u8], Error> {
    if value.oid() != pg_sys::TSVECTOROID {
        return Err(Error::NotTsVector);
    }
    Ok(whole(value).1)
}

/// A tsquery detoasted whole, in the current memory context, as long as
/// the call: made only by [`query`], so the headline may hand it to
/// PostgreSQL's own code.
pub struct TsQuery<'a> {
    pub(super) whole: *mut pg_sys::TSQueryData,
    /// its bytes after the varlena header
    pub bytes: &'a [u8],
}

impl TsQuery<'_> {
    /// How many items the query has (operands and operators), every one
    /// of them within its bytes.
    pub fn item_count(&self) -> Result<usize, Error> {
        let item = std::mem::size_of::<pg_sys::QueryItem>();
        self.bytes
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| {
                n.checked_mul(item).and_then(|b| b.checked_add(4)) <= Some(self.bytes.len())
            })
            .ok_or(Error::MalformedTsQuery)
    }
}

/// The tsquery `value`, detoasted whole.
pub fn query(value: &AnyElement) -> Result<TsQuery<'_>, Error> {
    if value.oid() != pg_sys::TSQUERYOID {
        return Err(Error::NotTsQuery);
    }
    let (whole, bytes) = whole(value);
    Ok(TsQuery {
        whole: whole.cast(),
        bytes,
    })
}

/// `websearch_to_tsquery(config, text)`, in the current memory context,
/// which must outlive the TsQuery's use. Errors are PostgreSQL's.
pub fn websearch_query<'a>(config: pg_sys::Oid, text: &str) -> TsQuery<'a> {
    let text = super::dictionaries::varlena(text.as_bytes());
    // SAFETY: websearch_to_tsquery_byid takes a regconfig and a text datum,
    // made here in the current memory context, and returns a tsquery
    // palloc'd whole there (never toasted); pgrx's guard of
    // OidFunctionCall2Coll turns what it raises into the same PostgreSQL
    // error.
    unsafe {
        let query = pg_sys::OidFunctionCall2Coll(
            pg_sys::Oid::from(pg_sys::F_WEBSEARCH_TO_TSQUERY_REGCONFIG_TEXT),
            pg_sys::DEFAULT_COLLATION_OID,
            pg_sys::Datum::from(config),
            text,
        );
        let whole = query.cast_mut_ptr::<pg_sys::varlena>();
        TsQuery {
            whole: whole.cast(),
            bytes: pgrx::varlena::varlena_to_byte_slice(whole),
        }
    }
}

impl<'a> TsQuery<'a> {
    /// The tsquery as a statement's parameter.
    pub fn argument(&self) -> pgrx::datum::DatumWithOid<'a> {
        // SAFETY: the tsquery is whole, in memory that lives as long as
        // `'a`, beyond any statement of the call that reads it.
        unsafe {
            pgrx::datum::DatumWithOid::new(pg_sys::Datum::from(self.whole), pg_sys::TSQUERYOID)
        }
    }
}

/// `value`, a varlena, detoasted whole, and its bytes after the header.
fn whole(value: &AnyElement) -> (*mut pg_sys::varlena, &[u8]) {
    let datum = value.datum();
    // SAFETY: a tsvector or tsquery datum is a varlena, possibly toasted, compressed
    // or short; pg_detoast_datum returns it whole with a 4-byte header,
    // allocated in the current memory context, which outlives the caller's
    // use of the slice (the function's arguments and result live there).
    unsafe {
        let whole = pg_sys::pg_detoast_datum(datum.cast_mut_ptr::<pg_sys::varlena>());
        (whole, pgrx::varlena::varlena_to_byte_slice(whole))
    }
}
