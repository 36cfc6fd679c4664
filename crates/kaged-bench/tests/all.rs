//! One integration-test binary for kaged-bench (see style.md: link time on a 2-core machine).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
