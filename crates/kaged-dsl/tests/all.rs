//! One integration-test binary for the crate (keeps link time low); tests live in `suite/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
