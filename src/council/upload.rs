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
use crate::postgres::extension;
use crate::postgres::temp_space::TransactionFile;

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
    let tables = crate::council::access::council_relids(&schema)?;
    crate::council::access::check_tables(
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
