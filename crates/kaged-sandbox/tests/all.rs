//! One integration-test binary for the sandbox; the tests live in `suite/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Declares a test that runs its body as the current user and, when that is root, once more
/// as `nobody` (the daemon runs unprivileged in per-user mode).
macro_rules! cage_test {
    ($(#[$meta:meta])* fn $name:ident() $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            crate::suite::fixture::as_root_and_unprivileged(
                concat!(module_path!(), "::", stringify!($name)),
                || $body,
            );
        }
    };
}

mod suite;
