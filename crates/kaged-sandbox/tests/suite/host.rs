//! Start-up probes against the real host.

use kaged_sandbox::{CgroupSupport, SelfTestError, cgroup_support, self_test};

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

#[test]
fn cgroup_support_is_probed_once_and_explains_itself() {
    let first = cgroup_support();
    assert!(std::ptr::eq(first, cgroup_support()));
    match first {
        CgroupSupport::Available { systemd_run } => assert!(systemd_run.ends_with("systemd-run")),
        CgroupSupport::Unavailable { reason } => {
            assert!(
                reason.contains("not enforced") || reason.contains("ignored"),
                "{reason}"
            );
        }
    }
}
