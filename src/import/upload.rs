//! The upload's SQL functions: `council_upload(chunk)`, the INSTEAD OF
//! trigger of the view `council_upload_stream`, and
//! `council_upload_large_object(oid)`, each appending to this
//! transaction's upload (`council::upload`).

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::council::upload::append;
use crate::error::Error;
use crate::postgres::spi;

/// Appends a piece of a council.db to this transaction's upload and returns
/// the bytes received so far.
#[pg_extern(name = "council_upload", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_upload(chunk: &[u8]) -> Result<i64, ErrorReport> {
    append(chunk)
}

/// Appends the `chunk` of each row that COPY (or INSERT) puts into the view
/// `council_upload_stream`, as its INSTEAD OF trigger.
#[pg_trigger(sql = false)]
fn council_upload_stream_append<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, std::convert::Infallible> {
    let Some(row) = trigger.new() else {
        // Only an INSTEAD OF INSERT trigger on the view calls this.
        ErrorReport::from(Error::NotUploadTrigger).report(PgLogLevel::ERROR);
        return Ok(None);
    };
    let appended = match row.get_by_index::<&[u8]>(std::num::NonZeroUsize::MIN) {
        Ok(Some(chunk)) => append(chunk).map(|_| ()),
        // A NULL chunk appends nothing, as an empty one does.
        Ok(None) => Ok(()),
        Err(err) => Err(Error::UploadColumn(err.to_string()).into()),
    };
    if let Err(err) = appended {
        err.report(PgLogLevel::ERROR);
    }
    // NULL, "nothing done", lets PostgreSQL free the row now: given the row
    // back, it keeps its copy until the statement ends, and a 1 GB COPY
    // would hold 1 GB. COPY therefore reports 0 rows.
    Ok(None)
}

/// How much of a large object one read moves into the upload.
const LARGE_OBJECT_PIECE: i32 = 1 << 20;

/// Appends the contents of large object `large_object` to this transaction's
/// upload, a piece at a time: the route for psql, whose `\lo_import` sends a
/// file as a large object. Reading it needs SELECT on it, as `lo_get` does.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_upload_large_object(large_object: pg_sys::Oid) -> Result<i64, ErrorReport> {
    let mut offset = 0i64;
    let mut size = 0i64;
    loop {
        let piece = spi::read_one::<Vec<u8>>(
            "SELECT pg_catalog.lo_get($1, $2, $3)",
            &[
                large_object.into(),
                offset.into(),
                LARGE_OBJECT_PIECE.into(),
            ],
        )?
        .unwrap_or_default();
        if piece.is_empty() && offset > 0 {
            return Ok(size);
        }
        size = append(&piece)?;
        offset += piece.len() as i64;
        if piece.len() < LARGE_OBJECT_PIECE as usize {
            return Ok(size);
        }
    }
}

extension_sql_file!(
    "../../sql/upload_stream.sql",
    name = "upload_stream",
    requires = [council_upload]
);
