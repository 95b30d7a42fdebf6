//! The extension's edge with PostgreSQL. Everything that calls into the
//! server below SQL lives here: SPI, the catalog, privileges, interrupts,
//! snapshots and locks, subtransactions, temporary files, shared memory,
//! COPY's own machinery, and the threads that must keep out of the server;
//! so does every difference between the majors (`cfg(feature = "pgN")`). The import, verify, export, search, cache and
//! worker are written against these safe functions, and each `unsafe`
//! block here states the invariant that makes it sound.

pub mod backend;
pub mod copy;
pub mod dictionaries;
pub mod extension;
pub mod headline;
pub mod interrupts;
pub mod lookup;
pub mod names;
pub mod notice;
pub mod scan;
pub mod shared_memory;
pub mod spi;
pub mod stored_row;
pub mod subtransaction;
pub mod temp_space;
pub mod text_search_parser;
pub mod threads;
pub mod ts_execute;
pub mod tsvector;
