//! The delegation rules against a fake cgroupfs tree in a temporary directory, so they are
//! tested on every host, whatever its cgroups.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::fd::AsRawFd;

use pretty_assertions::assert_eq;

use kaged_api::cage::{ByteSize, Limits};

use super::*;

/// `/proc/self/cgroup` on a hybrid host like the ones kaged's CI runs on: v1 controllers,
/// and an empty unified hierarchy beside them.
const HYBRID_CGROUP: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/job/76bc\n1:cpu:/\n0::/\n";
const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
const UNIFIED_MOUNTINFO: &str = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";

#[test]
fn the_own_cgroup_is_the_unified_line_under_the_cgroup2_mount() {
    assert_eq!(
        own_cgroup_dir("0::/system.slice/kaged.service\n", UNIFIED_MOUNTINFO),
        Ok(PathBuf::from("/sys/fs/cgroup/system.slice/kaged.service"))
    );
    assert_eq!(
        own_cgroup_dir(HYBRID_CGROUP, HYBRID_MOUNTINFO),
        Ok(PathBuf::from("/sys/fs/cgroup/unified"))
    );
    // A cgroup namespace (a container, or ProtectControlGroups=private): `/` is the mount.
    assert_eq!(
        own_cgroup_dir("0::/\n", UNIFIED_MOUNTINFO),
        Ok(PathBuf::from("/sys/fs/cgroup"))
    );
    // A mount of a subtree, at a path with a space in it.
    let bind = "50 23 0:26 /user.slice /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n";
    assert_eq!(
        own_cgroup_dir("0::/user.slice/app.scope\n", bind),
        Ok(PathBuf::from("/mnt/my cg/app.scope"))
    );
}

#[test]
fn a_host_without_cgroup_v2_says_which_part_is_missing() {
    let v1_only = "4:memory:/\n1:cpu:/\n";
    assert_eq!(
        own_cgroup_dir(v1_only, HYBRID_MOUNTINFO),
        Err(
            "this process is in no cgroup v2 hierarchy (/proc/self/cgroup has no `0::` line)"
                .to_owned()
        )
    );
    let no_mount = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    assert_eq!(
        own_cgroup_dir("0::/x\n", no_mount),
        Err("no cgroup2 filesystem that holds this process's cgroup /x is mounted".to_owned())
    );
}

/// A cgroup directory as the kernel shows it, holding `procs`.
fn fake_cgroup(controllers: &str, procs: &[u32]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let procs: Vec<String> = procs.iter().map(u32::to_string).collect();
    for (name, text) in [
        ("cgroup.controllers", format!("{controllers}\n")),
        ("cgroup.procs", procs.join("\n")),
        ("cgroup.subtree_control", String::new()),
        ("cgroup.type", "domain\n".to_owned()),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn owner(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().uid()
}

#[test]
fn a_cgroup_of_our_own_with_the_three_controllers_can_be_delegated() {
    let me = std::process::id();
    let cg = fake_cgroup("cpuset cpu io memory hugetlb pids", &[me]);
    let uid = owner(cg.path());
    assert_eq!(check_delegated(cg.path(), "0::/x\n", uid, me), Ok(()));
    // Root may write any cgroup; ownership is not what makes it kaged's.
    assert_eq!(check_delegated(cg.path(), "0::/x\n", 0, me), Ok(()));
}

#[test]
fn each_reason_a_cgroup_cannot_be_delegated_is_named() {
    let me = std::process::id();
    let d = |cg: &tempfile::TempDir| cg.path().display().to_string();

    let hybrid = fake_cgroup("hugetlb", &[me]);
    assert_eq!(
        check_delegated(hybrid.path(), HYBRID_CGROUP, 0, me),
        Err(format!(
            "cgroup2 at {} lacks the memory, pids, cpu controller(s) (it has hugetlb); memory, pids, cpu are bound to cgroup v1 hierarchies (a hybrid cgroup layout)",
            d(&hybrid)
        ))
    );
    let empty = fake_cgroup("", &[me]);
    assert_eq!(
        check_delegated(empty.path(), "0::/\n", 0, me),
        Err(format!("cgroup2 at {} has no controllers", d(&empty)))
    );
    let no_cpu = fake_cgroup("memory pids", &[me]);
    assert_eq!(
        check_delegated(no_cpu.path(), "0::/\n", 0, me),
        Err(format!(
            "cgroup2 at {} lacks the cpu controller(s) (it has memory, pids)",
            d(&no_cpu)
        ))
    );

    let threaded = fake_cgroup("memory pids cpu", &[me]);
    std::fs::write(threaded.path().join("cgroup.type"), "threaded\n").unwrap();
    assert_eq!(
        check_delegated(threaded.path(), "0::/\n", 0, me),
        Err(format!(
            "{} is a `threaded` cgroup; kaged needs a domain cgroup",
            d(&threaded)
        ))
    );

    let not_ours = fake_cgroup("memory pids cpu", &[me]);
    let (uid, stranger) = (owner(not_ours.path()), owner(not_ours.path()) + 1);
    assert_eq!(
        check_delegated(not_ours.path(), "0::/\n", stranger, me),
        Err(format!(
            "{} belongs to uid {uid}, not to kaged's uid {stranger}, so it is not delegated to kaged",
            d(&not_ours)
        ))
    );

    let shared = fake_cgroup("memory pids cpu", &[1, me, 4242]);
    assert_eq!(
        check_delegated(shared.path(), "0::/\n", 0, me),
        Err(format!(
            "{} also holds 2 other process(es) (pid 1, …), so it is not kaged's own",
            d(&shared)
        ))
    );

    let gone = tempfile::tempdir().unwrap();
    let err = check_delegated(&gone.path().join("x"), "0::/\n", 0, me).unwrap_err();
    assert!(err.starts_with("cannot read "), "{err}");
}

#[test]
fn taking_over_moves_the_daemon_into_a_leaf_and_enables_the_controllers() {
    let me = std::process::id();
    let cg = fake_cgroup("cpu memory pids", &[me]);
    let stale = cg.path().join("cage-1-0");
    let busy = cg.path().join("cage-1-1");
    std::fs::create_dir(&stale).unwrap();
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("cgroup.procs"), "77").unwrap();

    take_over(cg.path()).unwrap();

    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    assert_eq!(read(&cg.path().join("daemon/cgroup.procs")), me.to_string());
    assert_eq!(
        read(&cg.path().join("cgroup.subtree_control")),
        "+memory +pids +cpu"
    );
    assert!(!stale.exists(), "an empty leftover cage cgroup is removed");
    assert!(busy.exists(), "one that is not empty stays");
    // Again, as after a restart in the same cgroup: the leaf already exists.
    take_over(cg.path()).unwrap();
}

#[test]
fn a_cage_cgroup_gets_exactly_the_limits_its_policy_sets() {
    let parent = tempfile::tempdir().unwrap();
    let limits = Limits {
        memory: Some(ByteSize(64 << 20)),
        pids: Some(32),
        cpu: Some(1.5),
        ..Limits::default()
    };
    let mut first = CageCgroup::create(parent.path(), &limits).unwrap();
    let path = first.path().to_owned();
    assert_eq!(path.parent(), Some(parent.path()));
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("cage-{}-", std::process::id())),
        "{name}"
    );
    let read = |f: &str| std::fs::read_to_string(path.join(f)).ok();
    assert_eq!(read("memory.max").as_deref(), Some("67108864"));
    assert_eq!(read("pids.max").as_deref(), Some("32"));
    assert_eq!(read("cpu.max").as_deref(), Some("150000 100000"));
    // No swap accounting in this tree, so there is no swap limit to write.
    assert_eq!(read("memory.swap.max"), None);

    // The open cgroup.procs is what the cage's first process writes `0` into.
    let procs = first.take_procs().unwrap();
    kaged_pty::join_cgroup(procs.as_raw_fd()).unwrap();
    assert_eq!(read("cgroup.procs").as_deref(), Some("0"));
    assert!(first.take_procs().is_none());

    let only_pids = Limits {
        pids: Some(8),
        ..Limits::default()
    };
    let second = CageCgroup::create(parent.path(), &only_pids).unwrap();
    assert_ne!(second.path(), path.as_path());
    assert_eq!(
        std::fs::read_to_string(second.path().join("pids.max")).unwrap(),
        "8"
    );
    assert!(!second.path().join("memory.max").exists());
}

#[test]
fn a_tiny_cpu_share_is_raised_to_the_kernels_minimum_quota() {
    let limits = Limits {
        cpu: Some(0.001),
        ..Limits::default()
    };
    assert_eq!(knobs(&limits), vec![("cpu.max", "1000 100000".to_owned())]);
}

#[test]
fn a_cage_cgroup_that_cannot_be_made_or_removed_says_where() {
    let gone = tempfile::tempdir().unwrap().path().join("nowhere");
    let err = CageCgroup::create(&gone, &Limits::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot create {}/cage-", gone.display())),
        "{err}"
    );
    // In a plain directory the interface files are real files, so it is "not empty": the
    // error is reported at once rather than waited out.
    let parent = tempfile::tempdir().unwrap();
    let cg = CageCgroup::create(parent.path(), &Limits::default()).unwrap();
    let path = cg.path().to_owned();
    let err = cg.remove(Duration::from_secs(5)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot remove {}", path.display())),
        "{err}"
    );
}
