//! The council core: what every feature shares about the council tables
//! and the app's file. The catalog of tables and columns, the privilege
//! checks, the file's reader and its rows' mapping, the decision on each
//! row against what is stored, the file's digest and the record of each
//! import, sync and export. Import, verify, export and search are written
//! against it, and not against each other.

pub mod access;
pub mod catalog;
pub mod compare;
pub mod decision;
pub mod digest;
pub mod read;
pub mod record;
pub mod row;
pub mod search_documents;
pub mod source;
pub mod upload;
