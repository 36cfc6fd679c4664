//! Start-up probes against the real host.

use kaged_sandbox::{CgroupSupport, SelfTestError, inspect_cgroups, self_test};

#[test]
fn self_test_runs_a_real_cage_and_reports_the_bwrap_version() {
    match self_test() {
        Ok(info) => {
            assert!(info.path.ends_with("bwrap"), "{info:?}");
            assert!(
                info.version.starts_with(|c: char| c.is_ascii_digit()),
                "{info:?}"
            );
        }
        Err(SelfTestError::NoUserNamespaces { reason, .. }) => {
            eprintln!("SKIP: bwrap cannot create user namespaces here: {reason}");
        }
        Err(e) => panic!("bwrap self-test failed: {e}"),
    }
}

/// Which kind of host this is, printed for whoever reads the test log, and each kind explains
/// itself. (The test binary shares its cgroup with cargo, so delegation is never available to
/// it; the daemon's own tests start kaged in a cgroup of its own where the host allows.)
#[test]
fn cgroup_inspection_says_how_limits_would_be_enforced_and_changes_nothing() {
    let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let support = inspect_cgroups();
    eprintln!("cgroup limits on this host: {support:?}");
    assert_eq!(
        std::fs::read_to_string("/proc/self/cgroup").unwrap(),
        before
    );
    match support {
        CgroupSupport::Delegated { cgroup } => assert!(cgroup.is_dir(), "{cgroup:?}"),
        CgroupSupport::SystemdScope { systemd_run } => {
            assert!(systemd_run.ends_with("systemd-run"))
        }
        CgroupSupport::Unavailable { reason } => {
            assert!(
                reason.starts_with("no delegated cgroup v2 subtree: ")
                    && reason.contains("systemd-run"),
                "{reason}"
            );
        }
    }
}
