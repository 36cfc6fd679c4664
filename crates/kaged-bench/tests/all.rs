//! One integration-test binary for kaged-bench (see style.md: link time on a 2-core machine).

mod suite;
