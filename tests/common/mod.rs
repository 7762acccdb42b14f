//! Helpers shared by the integration tests. Each test file takes what it needs.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod chains;
pub mod child;
pub mod cluster;
pub mod engine;
pub mod follow_ups;
pub mod pg_cluster;
pub mod sipp;
