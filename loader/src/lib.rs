//! council-loader: the client side of llm_council.

pub mod cluster;
pub mod sample;
