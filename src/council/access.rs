//! What the caller may do, checked before an import or a verification reads,
//! stores or locks anything: the same checks `COPY … FROM` and `LOCK TABLE`
//! make, so the extension opens no door PostgreSQL keeps shut.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use council_app::QuotedIdentifier;

use super::catalog::{Kind, TABLES};
use crate::error::Error;
use crate::postgres::backend::{self, ServerFiles};
use crate::postgres::{extension, spi};

/// A council table, resolved once per call.
#[derive(Clone, Copy, Debug)]
pub struct CouncilTable {
    pub name: &'static str,
    pub relid: pg_sys::Oid,
}

/// The council tables' oids, in dependency order; `schema` is quoted.
pub fn council_relids(schema: &QuotedIdentifier) -> Result<Vec<CouncilTable>, ErrorReport> {
    TABLES
        .iter()
        .map(|table| {
            relid(schema, table.name).map(|relid| CouncilTable {
                name: table.name,
                relid,
            })
        })
        .collect()
}

/// A table of the extension, or the error that it is missing.
pub fn relid(schema: &QuotedIdentifier, name: &'static str) -> Result<pg_sys::Oid, ErrorReport> {
    extension::table(schema, name)?.ok_or_else(|| Error::CouncilTableMissing(name).into())
}

fn has(relid: pg_sys::Oid, privileges: u32) -> bool {
    backend::table_privilege(relid, privileges).unwrap_or(false)
}

fn denied(object: &str, missing: &str, why: &str) -> ErrorReport {
    Error::PermissionDenied {
        object: object.to_owned(),
        privilege: missing.to_owned(),
        why: why.to_owned(),
    }
    .into()
}

/// Checks that the current user may read all of table `relid` (`name`)
/// for `function`, which reads it below the executor: SELECT on it, and
/// no row-level security that would hide rows.
pub fn check_readable(
    relid: pg_sys::Oid,
    name: &'static str,
    function: &'static str,
) -> Result<(), ErrorReport> {
    if !has(relid, pg_sys::ACL_SELECT) {
        return Err(denied(
            &format!("table {name}"),
            "SELECT",
            &format!("{function} reads every row"),
        ));
    }
    if backend::row_level_security_applies(relid) {
        return Err(Error::RowLevelSecurity {
            function,
            table: name,
        }
        .into());
    }
    Ok(())
}

/// Checks `privilege` on every council table and names the first table
/// that lacks it.
pub fn check_tables(
    tables: &[CouncilTable],
    privilege: u32,
    privilege_name: &str,
    why: &str,
) -> Result<(), ErrorReport> {
    match tables.iter().find(|t| !has(t.relid, privilege)) {
        Some(table) => Err(denied(
            &format!("table {}", table.name),
            privilege_name,
            why,
        )),
        None => Ok(()),
    }
}

/// Everything an import needs, checked up front so that a role that may
/// not finish it gets no lock, no copy of its file and no half-done work:
/// - a writable transaction, as for COPY FROM (25006);
/// - SELECT (existing rows) and INSERT (new rows) on every council table,
///   INSERT on council_import_rejects;
/// - the privilege LOCK TABLE wants for SHARE ROW EXCLUSIVE;
/// - UPDATE on the identity sequences the import moves past its ids;
/// - no row-level security in force for the caller, which COPY FROM refuses
///   too (the import writes through COPY's machinery);
/// - for a sync, which also updates and deletes, UPDATE and DELETE.
pub fn check_import(
    schema: &QuotedIdentifier,
    tables: &[CouncilTable],
    sync: bool,
) -> Result<(), ErrorReport> {
    backend::prevent_if_read_only(c"council_import");
    check_tables(
        tables,
        pg_sys::ACL_SELECT,
        "SELECT",
        "the import reads the rows already there",
    )?;
    check_tables(
        tables,
        pg_sys::ACL_INSERT,
        "INSERT",
        "the import inserts the file's rows",
    )?;
    check_tables(
        tables,
        pg_sys::ACL_UPDATE | pg_sys::ACL_DELETE | pg_sys::ACL_TRUNCATE,
        "UPDATE, DELETE or TRUNCATE",
        "the import locks the table against other writers, as LOCK TABLE would",
    )?;
    if sync {
        check_tables(
            tables,
            pg_sys::ACL_UPDATE,
            "UPDATE",
            "a sync writes the file's changed rows over the old ones",
        )?;
        check_tables(
            tables,
            pg_sys::ACL_DELETE,
            "DELETE",
            "a sync deletes the rows the file does not have",
        )?;
    }
    let rejects = relid(schema, "council_import_rejects")?;
    if !has(rejects, pg_sys::ACL_INSERT) {
        return Err(denied(
            "table council_import_rejects",
            "INSERT",
            "the import keeps the rows it rejects there",
        ));
    }
    for table in tables {
        let spec = TABLES.iter().find(|t| t.name == table.name);
        if spec.is_some_and(|t| t.key().kind == Kind::BigInt) {
            check_sequence(table)?;
        }
    }
    check_no_row_level_security(tables, "council_import")
}

/// Refuses tables whose row-level security applies to the caller: the
/// import writes, and the export reads, below the executor that applies it.
pub fn check_no_row_level_security(
    tables: &[CouncilTable],
    function: &'static str,
) -> Result<(), ErrorReport> {
    for table in tables {
        if backend::row_level_security_applies(table.relid) {
            return Err(Error::RowLevelSecurity {
                function,
                table: table.name,
            }
            .into());
        }
    }
    Ok(())
}

fn check_sequence(table: &CouncilTable) -> Result<(), ErrorReport> {
    let sequence = spi::read_one::<pg_sys::Oid>(
        "SELECT pg_catalog.pg_get_serial_sequence($1::pg_catalog.regclass::pg_catalog.text, 'id')::pg_catalog.regclass::pg_catalog.oid",
        &[table.relid.into()],
    )?;
    match sequence {
        Some(sequence) if !has(sequence, pg_sys::ACL_UPDATE) => Err(denied(
            &format!("the identity sequence of {}", table.name),
            "UPDATE",
            "the import moves it past the largest imported id",
        )),
        _ => Ok(()),
    }
}

/// Reading a server file is for superusers and members of
/// pg_read_server_files, as for `COPY … FROM 'file'`.
pub fn check_server_file_access(function: &'static str) -> Result<(), ErrorReport> {
    if backend::may_use_server_files(ServerFiles::Read) {
        Ok(())
    } else {
        Err(Error::ServerFileDenied(function).into())
    }
}

/// Whether the caller could `SET session_replication_role` itself: only
/// then may the import switch it for its own COPY.
pub fn may_set_replication_role() -> bool {
    backend::may_set(c"session_replication_role")
}
