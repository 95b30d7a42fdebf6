//! The extension's edge with PostgreSQL. Everything that calls into the
//! server below SQL lives here: SPI, the catalog, interrupts, snapshots and
//! locks, subtransactions, temporary files, and COPY's own machinery. The
//! import, verify, cache and worker are written against these functions,
//! and each `unsafe` block here states the invariant that makes it sound.

pub mod backend;
pub mod copy;
pub mod extension;
pub mod interrupts;
pub mod lookup;
pub mod scan;
pub mod spi;
pub mod stored_row;
pub mod subtransaction;
pub mod temp_space;
