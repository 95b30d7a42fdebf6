//! A table's row in its stored form: each column's Datum as PostgreSQL
//! keeps it, read without the executor or a copy. The lookup by key and the
//! scan hand rows out this way.

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;

use crate::error::Error;

/// The attribute number of each of `columns` in `relid`, in their order.
pub fn attnums(relid: pg_sys::Oid, columns: &[&str]) -> Result<Vec<usize>, ErrorReport> {
    let mut attnums = Vec::with_capacity(columns.len());
    for name in columns {
        let cname = CString::new(*name).map_err(|_| missing(name))?;
        // SAFETY: a catalog lookup by name; returns InvalidAttrNumber (0)
        // for a column that does not exist.
        let attnum = unsafe { pg_sys::get_attnum(relid, cname.as_ptr()) };
        attnums.push(
            usize::try_from(attnum)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| missing(name))?,
        );
    }
    Ok(attnums)
}

fn missing(name: &str) -> ErrorReport {
    Error::InternalQuery(format!("a council table lacks its column {name}")).into()
}

/// The database's text as a String: UTF-8 in a UTF-8 database, which
/// validating finds cheaply; anything else with its bytes that do not
/// decode replaced, which is far slower.
pub fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

/// A row as the table stores it, found by a lookup or a scan; column `i` is
/// the `i`th name given when it was opened.
pub struct StoredRow<'a> {
    values: &'a [pg_sys::Datum],
    nulls: &'a [bool],
    attnums: &'a [usize],
    slot: *mut pg_sys::TupleTableSlot,
}

impl<'a> StoredRow<'a> {
    /// The row `slot` holds, deformed.
    ///
    /// # Safety
    ///
    /// `slot` holds a tuple of the table `attnums` were resolved for, and
    /// keeps it as long as the row is used.
    pub unsafe fn from_slot(
        slot: *mut pg_sys::TupleTableSlot,
        attnums: &'a [usize],
    ) -> StoredRow<'a> {
        // SAFETY: the caller's promise; deforming the slot fills
        // tts_values and tts_isnull for every attribute.
        let (values, nulls) = unsafe {
            pg_sys::slot_getallattrs(slot);
            let natts = usize::try_from((*(*slot).tts_tupleDescriptor).natts).unwrap_or(0);
            (
                std::slice::from_raw_parts((*slot).tts_values, natts),
                std::slice::from_raw_parts((*slot).tts_isnull, natts),
            )
        };
        StoredRow {
            values,
            nulls,
            attnums,
            slot,
        }
    }

    fn datum(&self, i: usize) -> Option<pg_sys::Datum> {
        let at = self.attnums.get(i)?.checked_sub(1)?;
        match self.nulls.get(at) {
            Some(false) => self.values.get(at).copied(),
            _ => None,
        }
    }

    pub fn is_null(&self, i: usize) -> bool {
        self.datum(i).is_none()
    }

    /// bigint and timestamptz (microseconds since 2000-01-01 UTC)
    pub fn int8(&self, i: usize) -> Option<i64> {
        self.datum(i).map(|d| d.value() as i64)
    }

    pub fn int4(&self, i: usize) -> Option<i32> {
        self.datum(i).map(|d| d.value() as i32)
    }

    pub fn float8(&self, i: usize) -> Option<f64> {
        self.datum(i).map(|d| f64::from_bits(d.value() as u64))
    }

    pub fn bool(&self, i: usize) -> Option<bool> {
        self.datum(i).map(|d| d.value() & 0xff != 0)
    }

    pub fn uuid(&self, i: usize) -> Option<[u8; 16]> {
        let datum = self.datum(i)?;
        let mut bytes = [0; 16];
        // SAFETY: a uuid datum points at its 16 bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(datum.cast_mut_ptr::<u8>(), bytes.as_mut_ptr(), 16)
        };
        Some(bytes)
    }

    /// The bytes of a text, varchar or bytea value, detoasted.
    pub fn text(&self, i: usize) -> Option<&[u8]> {
        let datum = self.datum(i)?;
        // SAFETY: a text datum is a varlena, possibly toasted or short;
        // detoasting allocates in the lookup's memory context, which lives
        // at least as long as this row.
        unsafe {
            let value = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr::<pg_sys::varlena>());
            let len = pgrx::varlena::varsize_any_exhdr(value);
            let data = pgrx::varlena::vardata_any(value).cast::<u8>();
            Some(std::slice::from_raw_parts(data, len))
        }
    }

    /// A text value as a String (see [`utf8`]).
    pub fn string(&self, i: usize) -> Option<String> {
        self.text(i).map(|bytes| utf8(bytes.to_vec()))
    }

    /// A jsonb value's container, in its binary form (the bytes after the
    /// varlena header, detoasted and aligned as jsonb's own code reads
    /// them); None when it is NULL.
    pub fn jsonb_container(&self, i: usize) -> Option<&[u8]> {
        let datum = self.datum(i)?;
        // SAFETY: a jsonb datum is a varlena, possibly toasted or short;
        // pg_detoast_datum returns it whole with a 4-byte header, allocated
        // in the current memory context, which lives at least as long as
        // this row.
        unsafe {
            let value = pg_sys::pg_detoast_datum(datum.cast_mut_ptr::<pg_sys::varlena>());
            let len = pgrx::varlena::varsize_any_exhdr(value);
            let data = pgrx::varlena::vardata_any(value).cast::<u8>();
            Some(std::slice::from_raw_parts(data, len))
        }
    }

    /// What `jsonb_out` prints for a jsonb value; None when it is NULL.
    pub fn jsonb_printed(&self, i: usize) -> Option<&[u8]> {
        let datum = self.datum(i)?;
        // SAFETY: jsonb_out detoasts the value and returns a C string in the
        // lookup's memory context, which lives at least as long as this row.
        unsafe {
            pgrx::fcinfo::direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(datum)])
                .map(|text| std::ffi::CStr::from_ptr(text.cast_mut_ptr::<std::ffi::c_char>()))
                .map(std::ffi::CStr::to_bytes)
        }
    }

    /// Whether a jsonb value equals `json` as PostgreSQL compares jsonb
    /// (numbers by value: 1.0 equals 1.00); None when the value is NULL.
    /// Parses `json` into a second jsonb: the slow way.
    pub fn jsonb_equals(&self, i: usize, json: &str) -> Option<bool> {
        let datum = self.datum(i)?;
        let Ok(text) = CString::new(json) else {
            return Some(false);
        };
        // SAFETY: jsonb_in parses a C string (an ERROR for invalid JSON,
        // which the mapping has already refused); jsonb_eq detoasts both.
        let equal = unsafe {
            let ours = pgrx::fcinfo::direct_function_call_as_datum(
                pg_sys::jsonb_in,
                &[Some(pg_sys::Datum::from(text.as_ptr()))],
            );
            ours.and_then(|ours| {
                pgrx::fcinfo::direct_function_call_as_datum(
                    pg_sys::jsonb_eq,
                    &[Some(datum), Some(ours)],
                )
            })
        };
        Some(equal.is_some_and(|equal| equal.value() & 0xff != 0))
    }

    /// The transaction that wrote this version of the row. Only a row
    /// read from a table has one: a query's computed row raises an ERROR.
    pub fn xmin(&self) -> pg_sys::TransactionId {
        let mut is_null = false;
        // SAFETY: the slot holds the row as long as it is used (the promise
        // of from_slot).
        let xmin = unsafe {
            pg_sys::slot_getsysattr(
                self.slot,
                pg_sys::MinTransactionIdAttributeNumber,
                &mut is_null,
            )
        };
        pg_sys::TransactionId::from(xmin.value() as u32)
    }
}
