//! What the LLM Council app defines, once, for every part of this project:
//! the extension, `council-loader` and the tests. Pure Rust, no PostgreSQL
//! and no SQLite: `cargo test -p council-app` covers it in milliseconds.
//!
//! - [`tables`]: the app's tables in dependency order, and the extension's;
//! - [`ddl`]: the app's start-up script, `schema.sql`, text for text;
//! - [`python_json`]: JSON text byte for byte as the app's Python writes it;
//! - [`identifier`]: SQL identifiers, quoted by construction;
//! - [`catalog`]: how a client finds the extension in a database.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod catalog;
pub mod ddl;
pub mod identifier;
pub mod python_json;
pub mod tables;

pub use identifier::QuotedIdentifier;
