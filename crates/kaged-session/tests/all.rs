//! One integration-test binary for the crate (see style.md: keeps link time low).
mod suite;
