//! One integration-test binary for the `kaged` crate (keeps link time low on 2 cores).
//! Every test spawns the real `kaged` binary in a temp directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod suite;
