//! One integration-test binary for worktrees, against real git in temp dirs; the tests live in
//! `suite/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
