//! Whether the import's COPY may run with `session_replication_role =
//! replica`, which skips PostgreSQL's per-row foreign-key triggers (one query
//! per row, about a quarter of the import's time).
//!
//! Replica mode silences every trigger that is not ENABLE ALWAYS or
//! ENABLE REPLICA, internal ones included, so it is used only when all of
//! this holds:
//! - the caller could set it itself (superuser, or GRANT SET ON PARAMETER):
//!   the import never hands a superuser-only mode to a role without it;
//! - the transaction is READ COMMITTED: the snapshot taken after the locks
//!   sees every parent that exists, and the locks keep writers out until
//!   commit, so the import's own parent checks are as good as the triggers;
//! - every trigger on the council tables belongs to one of the extension's
//!   own foreign keys between them, and those keys are all there, not
//!   deferrable, or is one of the extension's ENABLE ALWAYS triggers (the
//!   search documents', which fire in replica mode too): a foreign key the
//!   DBA added, a deferrable unique or exclusion constraint, or a trigger of
//!   the DBA's own keeps its triggers.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::council::access::{may_set_replication_role, CouncilTable};
use crate::council::catalog::TABLES;
use crate::postgres::{backend, spi};

/// The triggers on the council tables are exactly those of the extension's
/// own foreign keys, with every one of those keys present as created, and
/// the extension's own triggers that fire in replica mode as well.
const OWN_TRIGGERS_ONLY: &str = "
-- unnest of several arrays is grammar (ROWS FROM), not a function one may
-- qualify; the functions run with search_path pinned to pg_catalog.
WITH expected AS (
    SELECT child, col, parent
    FROM unnest($1::pg_catalog.oid[], $2::pg_catalog.text[], $3::pg_catalog.oid[])
         AS e(child, col, parent)
), own_keys AS (
    SELECT c.oid
    FROM pg_catalog.pg_constraint c
    JOIN expected e ON c.conrelid OPERATOR(pg_catalog.=) e.child
                   AND c.confrelid OPERATOR(pg_catalog.=) e.parent
    JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) e.child
                                  AND a.attname OPERATOR(pg_catalog.=) e.col
    WHERE c.contype OPERATOR(pg_catalog.=) 'f'
      AND NOT c.condeferrable
      AND c.conkey OPERATOR(pg_catalog.=) ARRAY[a.attnum]
)
SELECT (SELECT pg_catalog.count(*) FROM own_keys) OPERATOR(pg_catalog.=) pg_catalog.cardinality($1)
   AND NOT EXISTS (
       SELECT 1 FROM pg_catalog.pg_trigger t
       WHERE t.tgrelid OPERATOR(pg_catalog.=) ANY ($4)
         AND CASE WHEN t.tgisinternal
                  THEN NOT t.tgconstraint OPERATOR(pg_catalog.=) ANY (SELECT oid FROM own_keys)
                  ELSE NOT (t.tgenabled OPERATOR(pg_catalog.=) 'A' AND t.tgfoid OPERATOR(pg_catalog.=) ANY (
                           SELECT d.objid FROM pg_catalog.pg_depend d
                           JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
                           WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                             AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                             AND d.deptype OPERATOR(pg_catalog.=) 'e'
                             AND e.extname OPERATOR(pg_catalog.=) 'llm_council'))
              END)";

/// Whether COPY may skip the foreign-key triggers (see the module's text).
pub fn foreign_keys_checked_here(tables: &[CouncilTable]) -> Result<bool, ErrorReport> {
    if !backend::read_committed() {
        return Ok(false);
    }
    if !may_set_replication_role() {
        return Ok(false);
    }
    let relid = |name: &str| tables.iter().find(|t| t.name == name).map(|t| t.relid);
    let mut children = Vec::new();
    let mut columns = Vec::new();
    let mut parents = Vec::new();
    for table in &TABLES {
        if let Some(parent) = table.parent {
            let (Some(child), Some(parent_relid)) = (relid(table.name), relid(parent.table)) else {
                return Ok(false);
            };
            children.push(child);
            columns.push(parent.column.to_owned());
            parents.push(parent_relid);
        }
    }
    let all: Vec<pg_sys::Oid> = tables.iter().map(|t| t.relid).collect();
    let own_only = spi::read_one::<bool>(
        OWN_TRIGGERS_ONLY,
        &[children.into(), columns.into(), parents.into(), all.into()],
    )?
    .unwrap_or(false);
    Ok(own_only)
}
