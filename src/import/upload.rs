//! Files the client sends instead of naming a server path.
//!
//! The stream: `COPY council_upload_stream FROM STDIN (FORMAT binary)`, rows
//! of one bytea each, or `council_upload(chunk)` any number of times, append
//! to this transaction's upload, a PostgreSQL temporary file; then
//! `council_import_upload(…)` or `council_verify_upload()` read it. Backend
//! memory holds one chunk at a time, whatever the file's size, and the file
//! goes with the transaction, whether it commits, aborts, or the client
//! disconnects (crash recovery removes it after a kill -9).
//!
//! COPY is the loader's route: the client sends while the server writes,
//! with no round trip per chunk, which a function call cannot avoid.
//!
//! The bytea forms, `council_import(bytea)` and `council_verify(bytea)`, store
//! their one value the same way; they suit small files (a bytea value holds
//! at most 1 GB, and the backend holds it whole).

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::path::PathBuf;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::error::Error;
use crate::postgres::backend::local_transaction;
use crate::postgres::temp_space::TransactionFile;
use crate::postgres::{extension, spi};

/// This backend's upload, with the transaction it belongs to. A file of an
/// earlier transaction was closed and removed by that transaction's end; it
/// is forgotten, never closed again.
struct Upload {
    transaction: pg_sys::LocalTransactionId,
    file: ManuallyDrop<TransactionFile>,
}

thread_local! {
    static UPLOAD: RefCell<Option<Upload>> = const { RefCell::new(None) };
}

/// Checks `privilege` on every council table, then stores `data` in a new
/// temporary file of this transaction; dropping it removes the file.
pub fn store(data: &[u8], privilege: u32, name: &str) -> Result<TransactionFile, ErrorReport> {
    check_privileges(privilege, name)?;
    let mut file = TransactionFile::create();
    file.append(data)?;
    Ok(file)
}

fn check_privileges(privilege: u32, name: &str) -> Result<(), ErrorReport> {
    let schema = extension::schema()?;
    let tables = super::access::council_relids(&schema)?;
    super::access::check_tables(
        &tables,
        privilege,
        name,
        "an upload is for roles that may import or verify it",
    )
}

/// Appends `chunk` to this transaction's upload, started by the first call
/// in the transaction; returns the upload's size so far.
pub fn append(chunk: &[u8]) -> Result<i64, ErrorReport> {
    let transaction = local_transaction();
    let fresh =
        UPLOAD.with_borrow(|upload| upload.as_ref().is_none_or(|u| u.transaction != transaction));
    if fresh {
        // Whoever may neither import nor verify stores nothing on the server.
        check_privileges(pg_sys::ACL_SELECT, "SELECT")?;
        let file = TransactionFile::create();
        UPLOAD.set(Some(Upload {
            transaction,
            file: ManuallyDrop::new(file),
        }));
        // Closed before commit, as PostgreSQL expects of a temporary file
        // (the resource owner would warn of a leak); at abort the resource
        // owner closes it, and it is only forgotten here.
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::PreCommit, close);
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::PrePrepare, close);
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Abort, || {
            UPLOAD.take();
        });
    }
    UPLOAD.with_borrow_mut(|upload| match upload {
        Some(upload) => {
            upload.file.append(chunk)?;
            Ok(i64::try_from(upload.file.size()).unwrap_or(i64::MAX))
        }
        None => Err(no_upload()),
    })
}

fn close() {
    if let Some(upload) = UPLOAD.take() {
        drop(ManuallyDrop::into_inner(upload.file));
    }
}

/// The file of this transaction's upload.
pub fn current_path() -> Result<PathBuf, ErrorReport> {
    let transaction = local_transaction();
    UPLOAD.with_borrow(|upload| match upload {
        Some(upload) if upload.transaction == transaction => Ok(upload.file.path().to_owned()),
        _ => Err(no_upload()),
    })
}

fn no_upload() -> ErrorReport {
    Error::NoUpload.into()
}

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
