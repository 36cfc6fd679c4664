#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pretty_assertions::assert_eq;

use kaged_api::cage::{ByteSize, Walltime};

use super::*;
use crate::FsGrant;

fn pp(path: &str) -> PortablePath {
    PortablePath::parse(path).unwrap()
}

/// A fixed host so argv comparisons do not depend on the machine.
fn host() -> HostSystem {
    HostSystem {
        bwrap: Some("/usr/bin/bwrap".into()),
        cgroups: CgroupSupport::Unavailable {
            reason: "no user systemd here".into(),
        },
        system: vec![
            SystemMount::RoBind("/usr".into()),
            SystemMount::Symlink {
                target: "usr/bin".into(),
                link: "/bin".into(),
            },
            SystemMount::RoBind("/etc".into()),
        ],
        masks: vec![],
        resolv_conf: None,
        disable_userns: true,
    }
}

/// `<tmp>/home/src/proj` with `src/`, `docs/` and a secret next to the project.
struct Fixture {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(tmp.path()).unwrap();
    let root = base.join("home/src/proj");
    for dir in ["src", "docs", ".state"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("docs/readme"), "hi").unwrap();
    std::fs::create_dir_all(root.join(".kaged")).unwrap();
    std::fs::write(base.join("home/secret"), "s3cret").unwrap();
    Fixture {
        _tmp: tmp,
        base,
        root,
    }
}

fn request<'a>(root: &'a Path, policy: &'a CagePolicy, argv: &'a [String]) -> CageRequest<'a> {
    CageRequest {
        project_root: root,
        policy,
        argv,
        env_values: &[],
        deny: &[],
        scratch_dir: None,
        pty: false,
        cwd: None,
        egress: None,
        hook: None,
        linked_git: None,
        program: None,
    }
}

fn sh() -> Vec<String> {
    vec!["bash".into(), "--norc".into()]
}

/// Descriptor numbers in bind order (scratch, then grants parent-first).
fn bound_fds(cage: &CompiledCage) -> Vec<RawFd> {
    cage.keep_fds.iter().map(AsRawFd::as_raw_fd).collect()
}

fn os(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

fn policy(grants: &[(&str, Access)]) -> CagePolicy {
    CagePolicy {
        fs: grants
            .iter()
            .map(|(path, access)| FsGrant {
                path: pp(path),
                access: *access,
            })
            .collect(),
        env: vec![],
        // These tests are about grants; the protected paths have tests of their own.
        writable_policy_and_git_hooks: true,
        ..CagePolicy::default()
    }
}

/// Everything up to and including the system mounts, for the default, non-PTY cage.
fn prologue(new_session: bool) -> Vec<&'static str> {
    let mut v = vec![
        "--die-with-parent",
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--cap-drop",
        "ALL",
    ];
    if new_session {
        v.push("--new-session");
    }
    v.extend([
        "--hostname",
        "kaged-cage",
        "--clearenv",
        "--setenv",
        "HOME",
        "/home/cage",
        "--setenv",
        "PATH",
        CAGE_PATH,
    ]);
    v
}

const SYSTEM: &[&str] = &[
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/bin",
    "/bin",
    "--ro-bind",
    "/etc",
    "/etc",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
];

#[test]
fn default_policy_compiles_to_the_design_argv() {
    let fx = fixture();
    let argv = sh();
    let policy = CagePolicy::default();
    let env = [
        ("TERM".to_owned(), "xterm-256color".to_owned()),
        ("KAGED_AUTH_SIDECAR_NONCE".to_owned(), "secret".to_owned()),
        ("SSH_AUTH_SOCK".to_owned(), "/run/user/1000/ssh".to_owned()),
    ];
    let cage = compile_on(
        &CageRequest {
            env_values: &env,
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap();
    let root = fx.root.to_str().unwrap();
    let (fd, kaged_fd) = (
        bound_fds(&cage)[0].to_string(),
        bound_fds(&cage)[1].to_string(),
    );
    let (kaged, git) = (fx.root.join(".kaged"), fx.root.join(".git"));
    let mut expected = prologue(true);
    expected.extend(["--setenv", "TERM", "xterm-256color"]);
    expected.extend(SYSTEM);
    expected.extend(["--tmpfs", "/home/cage", "--bind-fd", &fd, root]);
    // The project's policy is read-only, and with no repository a cage cannot create one.
    expected.extend(["--ro-bind-fd", &kaged_fd, kaged.to_str().unwrap()]);
    expected.extend([
        "--tmpfs",
        git.to_str().unwrap(),
        "--remount-ro",
        git.to_str().unwrap(),
    ]);
    expected.extend(["--remount-ro", "/", "--chdir", root, "--", "bash", "--norc"]);
    assert_eq!(cage.program, PathBuf::from("/usr/bin/bwrap"));
    assert_eq!(cage.args, os(&expected));
    assert_eq!(cage.keep_fds.len(), 2);
    assert_eq!(cage.mountpoints, vec![git.clone()]);
    assert_eq!(cage.walltime, None);
    assert_eq!(
        cage.summary,
        CageSummary {
            grants: vec![GrantSummary {
                path: pp("project:/"),
                host_path: fx.root.clone(),
                access: Access::Rw,
            }],
            network: Network::None,
            state: State::Ephemeral,
            limits: Limits::default(),
            cgroup_limits: CgroupLimits::NotRequested,
            env: vec!["TERM".into()],
            masked: vec![],
            protected: vec![kaged, git],
            protection_lifted: false,
            cwd: fx.root.clone(),
            pty: false,
            nested_userns_disabled: true,
        }
    );
}

#[test]
fn pty_cage_omits_new_session_and_nothing_else() {
    let fx = fixture();
    let argv = sh();
    let policy = policy(&[("project:/", Access::Rw)]);
    let plain = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap();
    let pty = compile_on(
        &CageRequest {
            pty: true,
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap();
    // The fd numbers differ between the two compilations; compare with them blanked.
    let blank = |cage: &CompiledCage| -> Vec<OsString> {
        let fds: Vec<OsString> = cage
            .raw_fds()
            .iter()
            .map(|f| f.to_string().into())
            .collect();
        cage.args
            .iter()
            .map(|a| {
                if fds.contains(a) {
                    "FD".into()
                } else {
                    a.clone()
                }
            })
            .collect()
    };
    let mut expected = blank(&plain);
    expected.retain(|a| a != "--new-session");
    assert_eq!(blank(&pty), expected);
    assert!(blank(&plain).contains(&"--new-session".into()));
}

#[test]
fn only_network_host_shares_the_network_namespace() {
    let fx = fixture();
    let argv = sh();
    let mut policy = policy(&[("project:/", Access::Rw)]);
    let none = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap();
    assert!(!none.args.contains(&"--share-net".into()));
    policy.network = Network::Host;
    let hosted = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap();
    assert_eq!(
        &hosted.args[..4],
        &os(&[
            "--die-with-parent",
            "--unshare-all",
            "--unshare-user",
            "--share-net"
        ])[..]
    );
}

#[test]
fn a_filtered_network_gets_loopback_the_relay_the_socket_and_the_proxy_variables() {
    let fx = fixture();
    let argv = sh();
    let mut policy = policy(&[("project:/", Access::Rw)]);
    policy.network = Network::Filtered(kaged_api::EgressRules {
        allow: vec!["example.com:443".into()],
        deny: vec![],
    });
    let err = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap_err();
    assert!(matches!(err, CageError::EgressRequired), "{err}");
    let socket_dir = fx.base.join("gateway");
    let relay = PathBuf::from("/opt/kaged/bin/kaged");
    // The host's own proxy settings must not point around the gateway.
    let env_values = [("HTTPS_PROXY".to_owned(), "http://corp:8080".to_owned())];
    policy.env.push("HTTPS_PROXY".into());
    let cage = compile_on(
        &CageRequest {
            egress: Some(EgressPlumbing {
                socket_dir: &socket_dir,
                relay: &relay,
                env: &[("OPENAI_API_KEY".into(), "dummy".into())],
            }),
            env_values: &env_values,
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap();
    let args = cage.args.clone();
    assert!(!args.contains(&"--share-net".into()), "{args:?}");
    let text: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let window = |needle: &[&str]| text.windows(needle.len()).any(|w| w == needle);
    assert!(
        window(&["--ro-bind", "/opt/kaged/bin/kaged", EGRESS_RELAY]),
        "{text:?}"
    );
    assert!(
        window(&[
            "--ro-bind",
            socket_dir.to_str().unwrap(),
            EGRESS_GATEWAY_DIR
        ]),
        "{text:?}"
    );
    for name in ["HTTP_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        assert!(
            window(&["--setenv", name, "http://127.0.0.1:3128"]),
            "{name}: {text:?}"
        );
    }
    assert!(
        window(&["--setenv", "NO_PROXY", "localhost,127.0.0.1"]),
        "{text:?}"
    );
    assert!(window(&["--setenv", "OPENAI_API_KEY", "dummy"]), "{text:?}");
    // Replaced, not set twice: the host's value is nowhere in the argv.
    assert!(!text.iter().any(|a| a == "http://corp:8080"), "{text:?}");
    let tail = &text[text.len() - 7..];
    assert_eq!(
        tail,
        [
            EGRESS_RELAY,
            EGRESS_RELAY_ARG,
            "3128",
            EGRESS_SOCKET,
            "--",
            "bash",
            "--norc"
        ]
    );
    assert!(cage.summary.env.contains(&"https_proxy".to_owned()));
    assert_eq!(
        cage.summary
            .env
            .iter()
            .filter(|n| *n == "HTTPS_PROXY")
            .count(),
        1
    );
}

#[test]
fn read_only_grant_inside_writable_grant_is_mounted_after_it() {
    let fx = fixture();
    let argv = sh();
    // Listed child-first on purpose: the compiler orders by depth.
    let policy = policy(&[("project:/docs", Access::Ro), ("project:/", Access::Rw)]);
    let cage = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap();
    let fds = bound_fds(&cage);
    let root = fx.root.to_str().unwrap();
    let docs = fx.root.join("docs");
    let mut expected = prologue(true);
    expected.extend(SYSTEM);
    let (fd0, fd1) = (fds[0].to_string(), fds[1].to_string());
    expected.extend(["--tmpfs", "/home/cage", "--bind-fd", &fd0, root]);
    expected.extend(["--ro-bind-fd", &fd1, docs.to_str().unwrap()]);
    expected.extend(["--remount-ro", "/", "--chdir", root, "--", "bash", "--norc"]);
    assert_eq!(cage.args, os(&expected));
}

#[test]
fn grant_paths_that_are_not_plain_project_paths_are_rejected() {
    // Host paths, naked paths and `..` escapes cannot even be written as a portable path…
    for bad in [
        "/etc",
        "/home/src/proj",
        "docs",
        "project:docs",
        "project:",
        "project:/../secret",
        "project:/docs/../../secret",
        "project:/docs/../../../../../../etc",
    ] {
        assert!(PortablePath::parse(bad).is_err(), "{bad:?} parsed");
    }
    // …and of those that can be, only the project's own namespace compiles.
    let fx = fixture();
    let argv = sh();
    for bad in ["config:/x", "project:/do\0cs"] {
        let policy = policy(&[(bad, Access::Ro)]);
        let err = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap_err();
        assert!(
            matches!(
                err,
                CageError::NotAProjectPath { .. } | CageError::NulInPath { .. }
            ),
            "{bad:?} gave {err}"
        );
        assert!(err.to_string().contains(&bad.replace('\0', "\\0")), "{err}");
    }
}

#[test]
fn symlink_leading_out_of_the_project_is_rejected_at_compile_time() {
    let fx = fixture();
    let argv = sh();
    symlink(fx.base.join("home"), fx.root.join("up")).unwrap();
    symlink("../../secret", fx.root.join("relative-up")).unwrap();
    symlink("/etc", fx.root.join("etc")).unwrap();
    for grant in [
        "project:/up",
        "project:/up/secret",
        "project:/relative-up",
        "project:/etc",
    ] {
        let policy = policy(&[(grant, Access::Ro)]);
        let err = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap_err();
        assert!(
            matches!(err, CageError::GrantEscapes { .. }),
            "{grant}: {err}"
        );
    }
}

#[test]
fn symlink_within_the_project_is_bound_at_its_real_path() {
    let fx = fixture();
    let argv = sh();
    symlink("docs", fx.root.join("manual")).unwrap();
    let policy = policy(&[("project:/manual", Access::Ro)]);
    let cage = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap();
    assert_eq!(
        cage.summary.grants,
        vec![GrantSummary {
            path: pp("project:/manual"),
            host_path: fx.root.join("docs"),
            access: Access::Ro,
        }]
    );
    // The project root is not granted, so the cage starts in its home.
    assert_eq!(cage.summary.cwd, PathBuf::from(CAGE_HOME));
}

#[test]
fn missing_and_duplicate_grants_are_rejected() {
    let fx = fixture();
    let argv = sh();
    let policy_missing = policy(&[("project:/nope", Access::Ro)]);
    let err = compile_on(&request(&fx.root, &policy_missing, &argv), &host()).unwrap_err();
    assert!(matches!(err, CageError::GrantMissing { .. }), "{err}");
    let policy_dup = policy(&[
        ("project:/docs", Access::Ro),
        ("project:/docs/", Access::Rw),
    ]);
    let err = compile_on(&request(&fx.root, &policy_dup, &argv), &host()).unwrap_err();
    assert!(matches!(err, CageError::DuplicateGrant { .. }), "{err}");
}

#[test]
fn opening_beneath_the_root_refuses_any_symlink_component() {
    let fx = fixture();
    symlink("docs", fx.root.join("manual")).unwrap();
    let root_fd =
        open_no_symlinks(AT_FDCWD, &fx.root, OFlag::O_DIRECTORY, ResolveFlag::empty()).unwrap();
    let beneath = ResolveFlag::RESOLVE_BENEATH;
    assert!(
        open_no_symlinks(
            root_fd.as_fd(),
            Path::new("docs/readme"),
            OFlag::O_NOFOLLOW,
            beneath
        )
        .is_ok()
    );
    assert_eq!(
        open_no_symlinks(
            root_fd.as_fd(),
            Path::new("manual/readme"),
            OFlag::O_NOFOLLOW,
            beneath
        )
        .unwrap_err(),
        Errno::ELOOP
    );
    assert_eq!(
        open_no_symlinks(
            root_fd.as_fd(),
            Path::new("../../secret"),
            OFlag::O_NOFOLLOW,
            beneath
        )
        .unwrap_err(),
        Errno::EXDEV
    );
}

#[test]
fn kaged_variables_and_home_cannot_be_allowlisted() {
    let fx = fixture();
    let argv = sh();
    for name in ["KAGED_AUTH_SIDECAR_NONCE", "kaged_mode", "Kaged_X", "HOME"] {
        let policy = CagePolicy {
            env: vec!["TERM".into(), name.into()],
            ..CagePolicy::default()
        };
        let err = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap_err();
        assert!(
            matches!(err, CageError::ReservedEnvName { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    for name in ["", "A=B", "1X", "NU\0L"] {
        let policy = CagePolicy {
            env: vec![name.into()],
            ..CagePolicy::default()
        };
        let err = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap_err();
        assert!(
            matches!(err, CageError::InvalidEnvName { .. }),
            "{name:?}: {err}"
        );
    }
}

#[test]
fn only_allowlisted_variables_with_values_enter_and_path_can_be_overridden() {
    let fx = fixture();
    let argv = sh();
    let policy = CagePolicy {
        env: vec![
            "LANG".into(),
            "PATH".into(),
            "LANG".into(),
            "COLORTERM".into(),
        ],
        ..policy(&[("project:/", Access::Rw)])
    };
    let env = [
        ("PATH".to_owned(), "/opt/tools/bin:/usr/bin".to_owned()),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ("EDITOR".to_owned(), "vi".to_owned()),
    ];
    let cage = compile_on(
        &CageRequest {
            env_values: &env,
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap();
    let setenvs: Vec<&OsString> = cage
        .args
        .windows(3)
        .filter(|w| w[0] == "--setenv")
        .flat_map(|w| [&w[1], &w[2]])
        .collect();
    assert_eq!(
        setenvs,
        vec![
            "HOME",
            "/home/cage",
            "LANG",
            "C.UTF-8",
            "PATH",
            "/opt/tools/bin:/usr/bin"
        ]
    );
    assert_eq!(cage.summary.env, vec!["LANG".to_owned(), "PATH".to_owned()]);
    assert!(cage.args.contains(&"--clearenv".into()));
}

#[test]
fn denied_path_under_a_writable_grant_is_refused() {
    let fx = fixture();
    let argv = sh();
    let policy = policy(&[("project:/", Access::Rw)]);
    let deny = [fx.root.join(".state")];
    let err = compile_on(
        &CageRequest {
            deny: &deny,
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap_err();
    assert!(
        matches!(err, CageError::DeniedUnderWritable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(".state"), "{err}");
}

#[test]
fn denied_paths_under_read_only_mounts_are_masked_and_others_left_alone() {
    let fx = fixture();
    let argv = sh();
    std::fs::write(fx.root.join("docs/nonce"), "n").unwrap();
    let policy = policy(&[("project:/", Access::Ro)]);
    let deny = [
        fx.root.join(".state"),
        fx.root.join("docs/nonce"),
        fx.base.join("home/secret"),
        fx.base.join("run/does-not-exist"),
        PathBuf::from("/etc/hostname"),
    ];
    let mut host = host();
    host.masks = vec![fx.root.join("src")];
    let cage = compile_on(
        &CageRequest {
            deny: &deny,
            ..request(&fx.root, &policy, &argv)
        },
        &host,
    )
    .unwrap();
    let state = fx.root.join(".state");
    let nonce = fx.root.join("docs/nonce");
    let root = fx.root.to_str().unwrap();
    let fd = bound_fds(&cage)[0].to_string();
    let mut expected = prologue(true);
    expected.extend(SYSTEM);
    expected.extend(["--tmpfs", "/home/cage", "--ro-bind-fd", &fd, root]);
    expected.extend([
        "--tmpfs",
        state.to_str().unwrap(),
        "--remount-ro",
        state.to_str().unwrap(),
    ]);
    expected.extend(["--ro-bind", "/dev/null", nonce.to_str().unwrap()]);
    expected.extend(["--ro-bind", "/dev/null", "/etc/hostname"]);
    let src = fx.root.join("src");
    expected.extend([
        "--tmpfs",
        src.to_str().unwrap(),
        "--remount-ro",
        src.to_str().unwrap(),
    ]);
    expected.extend(["--remount-ro", "/", "--chdir", root, "--", "bash", "--norc"]);
    assert_eq!(cage.args, os(&expected));
    assert_eq!(
        cage.summary.masked,
        vec![state, nonce, PathBuf::from("/etc/hostname"), src]
    );
}

#[test]
fn grant_inside_a_denied_path_is_refused() {
    let fx = fixture();
    let argv = sh();
    let policy = policy(&[("project:/docs", Access::Ro)]);
    let deny = [fx.base.join("home")];
    let err = compile_on(
        &CageRequest {
            deny: &deny,
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap_err();
    assert!(matches!(err, CageError::InsideDenied { .. }), "{err}");
}

#[test]
fn persistent_state_binds_the_scratch_directory_as_home() {
    let fx = fixture();
    let argv = sh();
    let scratch = fx.base.join("state/scratch/proj");
    std::fs::create_dir_all(&scratch).unwrap();
    let policy = CagePolicy {
        state: State::Persistent,
        ..policy(&[("project:/", Access::Rw)])
    };
    let err = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap_err();
    assert!(matches!(err, CageError::ScratchDirRequired), "{err}");

    // The scratch directory lives in the (denied) state dir: that is fine, it is mounted
    // elsewhere, but nothing denied may sit inside it.
    let deny = [fx.base.join("state")];
    let cage = compile_on(
        &CageRequest {
            scratch_dir: Some(&scratch),
            deny: &deny,
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap();
    let fds = bound_fds(&cage);
    let root = fx.root.to_str().unwrap();
    let (fd0, fd1) = (fds[0].to_string(), fds[1].to_string());
    let mut expected = prologue(true);
    expected.extend(SYSTEM);
    expected.extend(["--bind-fd", &fd0, "/home/cage", "--bind-fd", &fd1, root]);
    expected.extend(["--remount-ro", "/", "--chdir", root, "--", "bash", "--norc"]);
    assert_eq!(cage.args, os(&expected));

    let deny_inside = [scratch.clone()];
    let err = compile_on(
        &CageRequest {
            scratch_dir: Some(&scratch),
            deny: &deny_inside,
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap_err();
    assert!(
        matches!(err, CageError::DeniedUnderWritable { .. }),
        "{err}"
    );
}

#[test]
fn limits_wrap_bwrap_in_a_systemd_scope_when_cgroups_work() {
    let fx = fixture();
    let argv = sh();
    let policy = CagePolicy {
        limits: Limits {
            walltime: Some(Walltime(600)),
            memory: Some(ByteSize(512 << 20)),
            pids: Some(128),
            cpu: Some(1.5),
            ..Limits::default()
        },
        ..policy(&[("project:/", Access::Rw)])
    };
    let mut host = host();
    let bare = compile_on(&request(&fx.root, &policy, &argv), &host).unwrap();
    assert_eq!(bare.program, PathBuf::from("/usr/bin/bwrap"));
    assert_eq!(
        bare.summary.cgroup_limits,
        CgroupLimits::NotEnforced {
            reason: "no user systemd here".into()
        }
    );
    assert_eq!(bare.walltime, Some(Duration::from_secs(600)));

    host.cgroups = CgroupSupport::SystemdScope {
        systemd_run: "/usr/bin/systemd-run".into(),
    };
    let scoped = compile_on(&request(&fx.root, &policy, &argv), &host).unwrap();
    assert_eq!(scoped.program, PathBuf::from("/usr/bin/systemd-run"));
    let scope = os(&[
        "--user",
        "--scope",
        "--quiet",
        "--collect",
        "-p",
        "MemoryMax=536870912",
        "-p",
        "MemorySwapMax=0",
        "-p",
        "TasksMax=128",
        "-p",
        "CPUQuota=150%",
        "--",
        "/usr/bin/bwrap",
    ]);
    assert_eq!(&scoped.args[..scope.len()], &scope[..]);
    assert_eq!(scoped.args[scope.len()], "--die-with-parent");
    assert_eq!(
        scoped.summary.cgroup_limits,
        CgroupLimits::Enforced {
            via: LimitMechanism::SystemdScope,
            cgroup: None
        }
    );
    assert_eq!(scoped.walltime, Some(Duration::from_secs(600)));
    assert!(scoped.cgroup.is_none());
}

#[test]
fn limits_get_a_cgroup_of_the_cages_own_where_the_daemon_has_a_delegated_subtree() {
    let fx = fixture();
    let argv = sh();
    let limited = CagePolicy {
        limits: Limits {
            memory: Some(ByteSize(256 << 20)),
            pids: Some(64),
            ..Limits::default()
        },
        ..policy(&[("project:/", Access::Rw)])
    };
    // A stand-in for the daemon's delegated cgroup; the kernel's own files are not needed to
    // see what is written where.
    let delegated = tempfile::tempdir().unwrap();
    let mut host = host();
    host.cgroups = CgroupSupport::Delegated {
        cgroup: delegated.path().to_owned(),
    };
    let cage = compile_on(&request(&fx.root, &limited, &argv), &host).unwrap();
    assert_eq!(cage.program, PathBuf::from("/usr/bin/bwrap"), "no wrapper");
    let own = cage.cgroup.as_ref().expect("a cgroup of its own");
    assert_eq!(own.path().parent(), Some(delegated.path()));
    assert_eq!(
        cage.summary.cgroup_limits,
        CgroupLimits::Enforced {
            via: LimitMechanism::DelegatedCgroup,
            cgroup: Some(own.path().to_owned())
        }
    );
    let read = |f: &str| std::fs::read_to_string(own.path().join(f)).unwrap();
    assert_eq!(
        (read("memory.max"), read("pids.max")),
        ("268435456".into(), "64".into())
    );

    // Without memory, pids or cpu there is nothing to create.
    let plain = policy(&[("project:/", Access::Rw)]);
    let cage = compile_on(&request(&fx.root, &plain, &argv), &host).unwrap();
    assert!(cage.cgroup.is_none());
    assert_eq!(cage.summary.cgroup_limits, CgroupLimits::NotRequested);

    // A subtree that fails is reported, not fatal: the caller decides.
    host.cgroups = CgroupSupport::Delegated {
        cgroup: delegated.path().join("gone"),
    };
    let cage = compile_on(&request(&fx.root, &limited, &argv), &host).unwrap();
    assert!(cage.cgroup.is_none());
    match &cage.summary.cgroup_limits {
        CgroupLimits::NotEnforced { reason } => assert!(
            reason.starts_with(&format!(
                "the cage's cgroup could not be set up: cannot create {}/cage-",
                delegated.path().join("gone").display()
            )),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_limits_are_rejected_with_their_key() {
    let fx = fixture();
    let argv = sh();
    for (limits, key) in [
        (
            Limits {
                walltime: Some(Walltime(0)),
                ..Limits::default()
            },
            "walltime",
        ),
        (
            Limits {
                memory: Some(ByteSize(0)),
                ..Limits::default()
            },
            "memory",
        ),
        (
            Limits {
                pids: Some(0),
                ..Limits::default()
            },
            "pids",
        ),
        (
            Limits {
                cpu: Some(f64::NAN),
                ..Limits::default()
            },
            "cpu",
        ),
        (
            Limits {
                cpu: Some(0.0),
                ..Limits::default()
            },
            "cpu",
        ),
    ] {
        let policy = CagePolicy {
            limits,
            ..CagePolicy::default()
        };
        let err = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap_err();
        assert!(
            matches!(&err, CageError::InvalidLimit { key: k, .. } if *k == key),
            "{err}"
        );
    }
}

#[test]
fn working_directory_must_be_granted() {
    let fx = fixture();
    let argv = sh();
    let policy = policy(&[("project:/src", Access::Rw)]);
    let cage = compile_on(
        &CageRequest {
            cwd: Some(&pp("project:/src")),
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap();
    assert_eq!(cage.summary.cwd, fx.root.join("src"));
    let err = compile_on(
        &CageRequest {
            cwd: Some(&pp("project:/docs")),
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap_err();
    assert!(matches!(err, CageError::CwdNotGranted { .. }), "{err}");
    let err = compile_on(
        &CageRequest {
            cwd: Some(&pp("config:/src")),
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap_err();
    assert!(matches!(err, CageError::NotAProjectPath { .. }), "{err}");
}

#[test]
fn empty_argv_and_missing_bwrap_are_errors() {
    let fx = fixture();
    let policy = CagePolicy::default();
    let err = compile_on(&request(&fx.root, &policy, &[]), &host()).unwrap_err();
    assert!(matches!(err, CageError::EmptyArgv), "{err}");
    let argv = sh();
    let no_bwrap = HostSystem {
        bwrap: None,
        ..host()
    };
    let err = compile_on(&request(&fx.root, &policy, &argv), &no_bwrap).unwrap_err();
    assert!(matches!(err, CageError::BwrapNotFound), "{err}");
}

#[test]
fn summary_serialises_for_audit_without_env_values() {
    let fx = fixture();
    let argv = sh();
    let policy = CagePolicy::default();
    let env = [("TERM".to_owned(), "xterm".to_owned())];
    let cage = compile_on(
        &CageRequest {
            env_values: &env,
            pty: true,
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&cage.summary).unwrap(),
        serde_json::json!({
            "grants": [{"path": "project:/", "host_path": fx.root, "access": "rw"}],
            "network": "none",
            "state": "ephemeral",
            "limits": {},
            "cgroup_limits": {"status": "not_requested"},
            "env": ["TERM"],
            "masked": [],
            "protected": [fx.root.join(".kaged"), fx.root.join(".git")],
            "protection_lifted": false,
            "cwd": fx.root,
            "pty": true,
            "nested_userns_disabled": true,
        })
    );
}

#[test]
fn bwrap_without_disable_userns_still_compiles_without_it() {
    let fx = fixture();
    let argv = sh();
    let policy = policy(&[("project:/", Access::Rw)]);
    let old = HostSystem {
        disable_userns: false,
        ..host()
    };
    let cage = compile_on(&request(&fx.root, &policy, &argv), &old).unwrap();
    let fd = bound_fds(&cage)[0].to_string();
    let root = fx.root.to_str().unwrap();
    let mut expected = prologue(true);
    expected.retain(|a| *a != "--disable-userns");
    expected.extend(SYSTEM);
    expected.extend(["--tmpfs", "/home/cage", "--bind-fd", &fd, root]);
    expected.extend(["--remount-ro", "/", "--chdir", root, "--", "bash", "--norc"]);
    assert_eq!(cage.args, os(&expected));
    assert!(!cage.summary.nested_userns_disabled);
}

/// A repository: `.git/` with config, hooks and info, and a submodule's git dir.
fn repository(root: &Path) {
    for dir in [
        ".git/hooks",
        ".git/info",
        ".git/objects",
        ".git/modules/vendored/hooks",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join(".git/config"), "[core]\n").unwrap();
    std::fs::write(root.join(".git/modules/vendored/config"), "[core]\n").unwrap();
}

fn protected_of(cage: &CompiledCage) -> Vec<PathBuf> {
    cage.summary.protected.clone()
}

#[test]
fn policy_and_git_metadata_are_read_only_under_a_writable_grant() {
    let fx = fixture();
    repository(&fx.root);
    let argv = sh();
    let policy = CagePolicy::default();
    let cage = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap();
    let r = |p: &str| fx.root.join(p);
    assert_eq!(
        protected_of(&cage),
        vec![
            r(".kaged"),
            r(".git/modules/vendored/config"),
            r(".git/modules/vendored/hooks"),
            r(".git/modules/vendored/info"),
            r(".git/config"),
            r(".git/hooks"),
            r(".git/info"),
        ]
    );
    // Existing paths are bound by descriptor after the grant; the submodule's missing
    // `info/` gets an empty read-only stand-in.
    let args = args_text(&cage);
    let grant = args
        .iter()
        .position(|a| a == fx.root.to_str().unwrap())
        .unwrap();
    let config = args
        .iter()
        .position(|a| a == r(".git/config").to_str().unwrap())
        .unwrap();
    assert!(
        grant < config && args[config - 2] == "--ro-bind-fd",
        "{args:?}"
    );
    assert_eq!(cage.mountpoints, vec![r(".git/modules/vendored/info")]);
    // Objects stay writable: agents can commit.
    assert!(!protected_of(&cage).iter().any(|p| p.ends_with("objects")));
}

#[test]
fn read_only_and_invisible_paths_need_no_protection_and_the_policy_can_lift_it() {
    let fx = fixture();
    repository(&fx.root);
    let argv = sh();
    let read_only = CagePolicy {
        fs: vec![FsGrant {
            path: pp("project:/"),
            access: Access::Ro,
        }],
        ..CagePolicy::default()
    };
    let cage = compile_on(&request(&fx.root, &read_only, &argv), &host()).unwrap();
    assert_eq!(protected_of(&cage), Vec::<PathBuf>::new());
    let only_src = CagePolicy {
        fs: vec![FsGrant {
            path: pp("project:/src"),
            access: Access::Rw,
        }],
        ..CagePolicy::default()
    };
    let cage = compile_on(&request(&fx.root, &only_src, &argv), &host()).unwrap();
    assert_eq!(protected_of(&cage), Vec::<PathBuf>::new());
    let lifted = CagePolicy {
        writable_policy_and_git_hooks: true,
        ..CagePolicy::default()
    };
    let cage = compile_on(&request(&fx.root, &lifted, &argv), &host()).unwrap();
    assert_eq!(protected_of(&cage), Vec::<PathBuf>::new());
    assert!(cage.summary.protection_lifted);
}

#[test]
fn a_worktree_protects_its_pointer_file_and_the_git_dir_it_names() {
    let fx = fixture();
    // The main repository inside the project, and a worktree checked out beside it.
    let main = fx.root.join("main");
    repository(&main);
    let wt_git = main.join(".git/worktrees/feature");
    std::fs::create_dir_all(&wt_git).unwrap();
    std::fs::write(wt_git.join("commondir"), "../..\n").unwrap();
    std::fs::write(
        fx.root.join(".git"),
        "gitdir: main/.git/worktrees/feature\n",
    )
    .unwrap();
    let argv = sh();
    let cage = compile_on(&request(&fx.root, &CagePolicy::default(), &argv), &host()).unwrap();
    let p = protected_of(&cage);
    for want in [
        fx.root.join(".git"),
        main.join(".git/config"),
        main.join(".git/hooks"),
        wt_git.join("hooks"),
    ] {
        assert!(p.contains(&want), "{want:?} not in {p:?}");
    }
    // A `.git` symlink could be repointed at a git dir with hooks: refused.
    std::fs::remove_file(fx.root.join(".git")).unwrap();
    symlink(main.join(".git"), fx.root.join(".git")).unwrap();
    let err = compile_on(&request(&fx.root, &CagePolicy::default(), &argv), &host()).unwrap_err();
    assert!(matches!(err, CageError::GitSymlink { .. }), "{err}");
}

/// A linked worktree outside its repository, as the daemon runs a worktree session: the cage
/// is rooted in the worktree and gets the git dirs the daemon names.
#[test]
fn a_linked_worktrees_git_dirs_are_bound_as_named_and_a_planted_symlink_is_refused() {
    let fx = fixture();
    let repo = fx.base.join("repo");
    repository(&repo);
    let common = repo.join(".git");
    for dir in [
        "objects",
        "refs/heads",
        "refs/kaged",
        "logs",
        "worktrees/run1",
    ] {
        std::fs::create_dir_all(common.join(dir)).unwrap();
    }
    let wt = fx.base.join("wt/run1");
    std::fs::create_dir_all(wt.join(".kaged")).unwrap();
    std::fs::write(
        wt.join(".git"),
        format!("gitdir: {}\n", common.join("worktrees/run1").display()),
    )
    .unwrap();
    let git = LinkedGit {
        common_dir: common.clone(),
        writable: vec![
            "objects".into(),
            "refs".into(),
            "logs".into(),
            "worktrees/run1".into(),
        ],
        read_only: vec![
            ("config".into(), false),
            ("hooks".into(), true),
            ("refs/kaged".into(), true),
            ("worktrees/run1/config.worktree".into(), false),
            ("worktrees/run1/commondir".into(), false),
        ],
    };
    let argv = sh();
    let policy = CagePolicy::default();
    let req = CageRequest {
        linked_git: Some(&git),
        program: None,
        ..request(&wt, &policy, &argv)
    };
    let cage = compile_on(&req, &host()).unwrap();
    let args = args_text(&cage);
    let flag_of = |p: &Path| {
        let at = args.iter().position(|a| a == p.to_str().unwrap());
        at.map(|i| args[i - 2].clone()).unwrap_or_default()
    };
    let c = |p: &str| common.join(p);
    let binds: Vec<(PathBuf, String)> = [
        common.clone(),
        c("logs"),
        c("objects"),
        c("refs"),
        c("worktrees/run1"),
        c("config"),
        c("hooks"),
        c("refs/kaged"),
    ]
    .into_iter()
    .map(|p| (p.clone(), flag_of(&p)))
    .collect();
    let want: Vec<(PathBuf, String)> = [
        (common.clone(), "--ro-bind-fd"),
        (c("logs"), "--bind-fd"),
        (c("objects"), "--bind-fd"),
        (c("refs"), "--bind-fd"),
        (c("worktrees/run1"), "--bind-fd"),
        (c("config"), "--ro-bind-fd"),
        (c("hooks"), "--ro-bind-fd"),
        (c("refs/kaged"), "--ro-bind-fd"),
    ]
    .into_iter()
    .map(|(p, f)| (p, f.to_owned()))
    .collect();
    assert_eq!(binds, want);
    // Missing under a writable part: an empty read-only stand-in the cage cannot replace.
    let missing = c("worktrees/run1/config.worktree");
    assert_eq!(
        cage.mountpoints,
        vec![c("worktrees/run1/commondir"), missing]
    );
    assert!(protected_of(&cage).contains(&wt.join(".git")));
    // A cage that once had the main checkout writable could have swapped `refs` for a
    // symlink; binding through it would expose whatever it names.
    std::fs::remove_dir_all(c("refs")).unwrap();
    symlink(fx.base.join("home"), c("refs")).unwrap();
    let err = compile_on(&req, &host()).unwrap_err();
    assert!(matches!(err, CageError::Protect { .. }), "{err}");
}

#[test]
fn stand_ins_are_removed_only_while_still_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let (empty_dir, full_dir, empty_file) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    std::fs::create_dir(&empty_dir).unwrap();
    std::fs::create_dir(&full_dir).unwrap();
    std::fs::write(full_dir.join("x"), "").unwrap();
    std::fs::write(&empty_file, "").unwrap();
    remove_mountpoints(&[empty_dir.clone(), full_dir.clone(), empty_file.clone()]);
    assert!(!empty_dir.exists() && !empty_file.exists());
    assert!(full_dir.join("x").exists());
}

#[test]
fn an_agent_s_cage_gets_the_hook_helper_and_its_socket_directory_read_only() {
    let fx = fixture();
    let argv = sh();
    let policy = policy(&[("project:/", Access::Rw)]);
    let socket_dir = fx.base.join("agent");
    let helper = PathBuf::from("/opt/kaged/bin/kaged");
    let cage = compile_on(
        &CageRequest {
            hook: Some(HookPlumbing {
                socket_dir: &socket_dir,
                helper: &helper,
            }),
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap();
    let text = args_text(&cage);
    let window = |needle: &[&str]| text.windows(needle.len()).any(|w| w == needle);
    assert!(
        window(&["--ro-bind", "/opt/kaged/bin/kaged", AGENT_HOOK]),
        "{text:?}"
    );
    assert!(
        window(&["--ro-bind", socket_dir.to_str().unwrap(), AGENT_SOCKET_DIR]),
        "{text:?}"
    );
    // The command runs as declared: the helper is run by the CLI's hooks, not around it.
    assert_eq!(&text[text.len() - 3..], ["--", "bash", "--norc"]);
    // Without it, nothing of it is in the cage.
    let plain = compile_on(&request(&fx.root, &policy, &argv), &host()).unwrap();
    assert!(
        !plain
            .args
            .iter()
            .any(|a| a.to_string_lossy().starts_with(AGENT_DIR)),
        "{:?}",
        plain.args
    );
}

#[test]
fn an_agent_program_outside_the_cage_is_bound_alone_and_read_only_under_its_name() {
    let fx = fixture();
    let argv = vec![format!("{AGENT_BIN_DIR}/claude")];
    let policy = policy(&[("project:/", Access::Rw)]);
    let exe = fx.base.join("versions").join("2.0.14");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::write(&exe, b"\x7fELF").unwrap();
    let bind = ProgramBind {
        host: &exe,
        name: "claude",
    };
    let cage = compile_on(
        &CageRequest {
            program: Some(bind),
            ..request(&fx.root, &policy, &argv)
        },
        &host(),
    )
    .unwrap();
    let text = args_text(&cage);
    let want = [
        "--ro-bind",
        exe.to_str().unwrap(),
        "/run/kaged-agent/bin/claude",
    ];
    assert!(text.windows(3).any(|w| w == want), "{text:?}");
    // Neither its directory nor anything else of the host's comes with it.
    let dir = exe.parent().unwrap().to_str().unwrap().to_owned();
    assert_eq!(text.iter().filter(|a| **a == dir).count(), 0, "{text:?}");

    // A directory, a name that could land elsewhere, a relative path: refused, naming it.
    let dir_path = exe.parent().unwrap().to_owned();
    let relative = PathBuf::from("versions/2.0.14");
    for (host_path, name, says) in [
        (&dir_path, "claude", "not a regular file"),
        (&exe, "../claude", "plain file name"),
        (&exe, ".hidden", "plain file name"),
        (&relative, "claude", "absolute"),
    ] {
        let err = compile_on(
            &CageRequest {
                program: Some(ProgramBind {
                    host: host_path,
                    name,
                }),
                ..request(&fx.root, &policy, &argv)
            },
            &host(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(says) && err.contains(&host_path.display().to_string()),
            "{err}"
        );
    }
}

/// The cage's argv as text, for comparing windows of it.
fn args_text(cage: &CompiledCage) -> Vec<String> {
    cage.args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}
