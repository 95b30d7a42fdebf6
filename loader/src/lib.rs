//! council-loader: the client side of llm_council. The binary's commands
//! live in main.rs; the pieces they share, and the cluster harness the tests
//! use, live here.

pub mod cluster;
pub mod connect;
pub mod embedded;
pub mod export;
pub mod import;
pub mod install;
pub mod pgpass;
pub mod report;
pub mod sample;
