//! The search documents as the import keeps them: an import that fills
//! empty tables defers their documents (the search triggers skip its
//! inserts, asking `council_search_deferred`), then parses every row at
//! once with `council_search_fill`, which lets parallel workers share the
//! parsing. Parsing text costs several times what importing it does.

use std::cell::RefCell;

use council_app::QuotedIdentifier;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use super::access::CouncilTable;
use crate::postgres::{backend, spi};

/// The tables whose inserts have no documents yet, and the (sub)transaction
/// that defers them: nothing outside it can be skipped, whatever ends it.
struct Deferral {
    transaction: pg_sys::LocalTransactionId,
    subtransaction: pg_sys::SubTransactionId,
    relids: Vec<pg_sys::Oid>,
}

thread_local! {
    static DEFERRED: RefCell<Option<Deferral>> = const { RefCell::new(None) };
}

/// The search triggers skip the inserts into `relids` until this is
/// dropped (also when an error unwinds past it).
#[must_use]
pub struct Deferred(());

pub fn defer(relids: Vec<pg_sys::Oid>) -> Deferred {
    DEFERRED.with(|deferred| {
        *deferred.borrow_mut() = Some(Deferral {
            transaction: backend::local_transaction(),
            subtransaction: backend::current_subtransaction(),
            relids,
        });
    });
    Deferred(())
}

impl Drop for Deferred {
    fn drop(&mut self) {
        DEFERRED.with(|deferred| *deferred.borrow_mut() = None);
    }
}

/// Whether inserts into `table` are deferred now: only inside the import
/// that deferred them (the same transaction and subtransaction).
pub fn is_deferred(table: pg_sys::Oid) -> bool {
    DEFERRED.with(|deferred| {
        deferred.borrow().as_ref().is_some_and(|d| {
            d.transaction == backend::local_transaction()
                && d.subtransaction == backend::current_subtransaction()
                && d.relids.contains(&table)
        })
    })
}

/// Whether search documents are kept (`llm_council.search`).
pub fn enabled() -> bool {
    crate::gucs::SEARCH.get()
}

/// The tables the search documents come from.
pub const SEARCHED_TABLES: [&str; 4] = [
    "conversations",
    "messages",
    "stage1_responses",
    "stage3_synthesis",
];

/// The searched tables among `tables` with no page at all (new, or
/// truncated): an import fills them, and indexes them in bulk. A table
/// emptied by DELETE keeps its pages and the triggers index it row set by
/// row set; either way every row ends with its document.
pub fn empty_tables(tables: &[CouncilTable]) -> Result<Vec<pg_sys::Oid>, ErrorReport> {
    let mut empty = Vec::new();
    for table in tables.iter().filter(|t| SEARCHED_TABLES.contains(&t.name)) {
        let pageless = spi::read_one::<bool>(
            "SELECT pg_catalog.pg_relation_size($1) OPERATOR(pg_catalog.=) 0",
            &[table.relid.into()],
        )?
        .unwrap_or(false);
        if pageless {
            empty.push(table.relid);
        }
    }
    Ok(empty)
}

/// Gives every row of `tables` that has none its search document, in one
/// query that parallel workers share (see `council_search_fill`).
pub fn fill(schema: &QuotedIdentifier, tables: &[pg_sys::Oid]) -> Result<(), ErrorReport> {
    if tables.is_empty() {
        return Ok(());
    }
    spi::write(
        &format!("SELECT {schema}.council_search_fill($1::pg_catalog.regclass[])"),
        &[tables.to_vec().into()],
    )?;
    Ok(())
}
