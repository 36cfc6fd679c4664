//! Escape tests (design §7): from inside a default cage, every one of these must fail.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::time::Duration;

use kaged_api::cage::Walltime;
use kaged_sandbox::{Access, CagePolicy, FsGrant, Limits, Network, PortablePath};
use pretty_assertions::assert_eq;

use super::fixture::{Machine, pids_running, wait_at_most};

fn grants(list: &[(&str, Access)]) -> CagePolicy {
    CagePolicy {
        fs: list
            .iter()
            .map(|(path, access)| FsGrant {
                path: PortablePath::parse(path).unwrap(),
                access: *access,
            })
            .collect(),
        ..CagePolicy::default()
    }
}

cage_test! {
    fn operators_ssh_key_is_not_visible() {
        let m = Machine::new();
        let key = m.home.join(".ssh/id_ed25519");
        let ran = m.run(
            &CagePolicy::default(),
            &format!("cat {key}; echo; ls -A {home}", key = key.display(), home = m.home.display()),
        );
        assert!(!ran.stdout.contains("PRIVATE-KEY-MATERIAL"), "{ran}");
        assert!(ran.stderr.contains("No such file or directory"), "{ran}");
        // Only the path leading to the project exists inside the cage.
        assert_eq!(ran.stdout.trim(), "src", "{ran}");
    }
}

cage_test! {
    fn nonce_files_and_state_dir_are_not_visible() {
        let m = Machine::new();
        let ran = m.run(
            &CagePolicy::default(),
            &format!(
                "cat {}/nonce; cat {}/kaged.db; ls {}",
                m.runtime.display(),
                m.state.display(),
                m.runtime.display()
            ),
        );
        assert!(!ran.stdout.contains("NONCE-MATERIAL"), "{ran}");
        assert!(!ran.stdout.contains("STATE-MATERIAL"), "{ran}");
        assert_eq!(ran.stderr.matches("No such file or directory").count(), 3, "{ran}");
    }
}

cage_test! {
    fn denied_dir_under_a_read_only_grant_is_masked() {
        let m = Machine::new();
        // The operator loaded their whole home as a read-only project: the state dir inside it
        // must still be hidden.
        let policy = grants(&[("project:/", Access::Ro)]);
        let argv = ["sh".to_owned(), "-c".to_owned(), format!(
            "cat {}/kaged.db; ls -A {}; cat {}/.ssh/id_ed25519",
            m.state.display(),
            m.state.display(),
            m.home.display()
        )];
        let deny = m.deny();
        let cage = kaged_sandbox::compile(&kaged_sandbox::CageRequest {
            project_root: &m.home,
            policy: &policy,
            argv: &argv,
            env_values: &[],
            deny: &deny,
            scratch_dir: None,
            pty: false,
            cwd: None,
            egress: None,
            hook: None,
            linked_git: None,
            program: None,
        })
        .unwrap();
        assert_eq!(cage.summary.masked, vec![m.state.clone()]);
        let ran = super::fixture::run(cage);
        assert!(!ran.stdout.contains("STATE-MATERIAL"), "{ran}");
        assert!(ran.stderr.contains("kaged.db: No such file or directory"), "{ran}");
        // The positive control: the rest of the read-only grant is visible.
        assert_eq!(ran.stdout.trim(), "PRIVATE-KEY-MATERIAL", "{ran}");
    }
}

cage_test! {
    fn files_outside_the_granted_paths_are_not_visible() {
        let m = Machine::new();
        std::fs::create_dir(m.root.join("src")).unwrap();
        std::fs::write(m.root.join("src/main.rs"), "fn main() {}").unwrap();
        let policy = grants(&[("project:/src", Access::Rw)]);
        let ran = m.run(
            &policy,
            &format!(
                "cat {root}/src/main.rs; echo; cat {root}/docs/readme; cat {other}/secret; cat /root/.bashrc",
                root = m.root.display(),
                other = m.home.join("src/other").display()
            ),
        );
        assert_eq!(ran.stdout.trim(), "fn main() {}", "{ran}");
        assert_eq!(ran.stderr.matches("No such file or directory").count(), 3, "{ran}");
    }
}

cage_test! {
    fn read_only_grant_cannot_be_written() {
        let m = Machine::new();
        let policy = grants(&[("project:/", Access::Rw), ("project:/docs", Access::Ro)]);
        let ran = m.run(&policy, "echo changed > docs/readme; echo created > docs/new; echo ok > writable");
        assert!(ran.stderr.contains("Read-only file system"), "{ran}");
        assert_eq!(std::fs::read_to_string(m.root.join("docs/readme")).unwrap(), "project docs");
        assert!(!m.root.join("docs/new").exists());
        // The positive control: the writable grant is writable, on the host.
        assert_eq!(std::fs::read_to_string(m.root.join("writable")).unwrap(), "ok\n");
    }
}

cage_test! {
    fn swapping_a_symlink_after_compile_does_not_redirect_the_mount() {
        let m = Machine::new();
        let data = m.root.join("data");
        let script = format!("cat {d}/inside; echo; cat {d}/secret", d = data.display());
        let swap_after_compile = |policy: &CagePolicy| {
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(data.join("inside"), "original").unwrap();
            let cage = m.compile(policy, &script);
            // The attack: between compile and spawn, the granted directory becomes a symlink
            // to the other project.
            std::fs::rename(&data, m.root.join("data.orig")).unwrap();
            symlink(m.home.join("src/other"), &data).unwrap();
            let ran = super::fixture::run(cage);
            std::fs::remove_file(&data).unwrap();
            std::fs::remove_dir_all(m.root.join("data.orig")).unwrap();
            ran
        };

        // The mount still shows what was checked at compile time.
        let ran = swap_after_compile(&grants(&[("project:/data", Access::Ro)]));
        assert_eq!(ran.stdout.trim(), "original", "{ran}");
        assert!(ran.stderr.contains("secret: No such file or directory"), "{ran}");

        // With the parent granted too, the swapped symlink is visible as the mount point and
        // bwrap refuses to mount through it: the cage fails closed.
        let ran = swap_after_compile(&grants(&[("project:/", Access::Rw), ("project:/data", Access::Ro)]));
        assert!(!ran.stdout.contains("OTHER-PROJECT-MATERIAL"), "{ran}");
        assert!(!ran.status.success(), "{ran}");
        assert!(ran.stderr.contains("Can't bind mount"), "{ran}");
    }
}

cage_test! {
    fn network_none_cannot_reach_a_host_listener() {
        let m = Machine::new();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = format!("bash --norc -c 'echo hi > /dev/tcp/127.0.0.1/{port}' && echo connected");

        let ran = m.run(&CagePolicy::default(), &script);
        assert!(!ran.stdout.contains("connected"), "{ran}");
        assert!(ran.stderr.contains("Connection refused"), "{ran}");
        assert_eq!(listener.accept().map(|_| ()).unwrap_err().kind(), ErrorKind::WouldBlock);

        // The positive control: the same probe reaches the listener with network host.
        let host = CagePolicy { network: Network::Host, ..CagePolicy::default() };
        let ran = m.run(&host, &script);
        assert_eq!(ran.stdout.trim(), "connected", "{ran}");
        assert!(listener.accept().is_ok());
    }
}

cage_test! {
    fn daemon_process_environ_is_not_readable() {
        let m = Machine::new();
        let pid = std::process::id();
        let ran = m.run(&CagePolicy::default(), &format!("cat /proc/{pid}/environ; ls /proc | grep -c '^[0-9]'"));
        assert!(!ran.status.success() || !ran.stderr.is_empty(), "{ran}");
        assert!(ran.stderr.contains("No such file or directory"), "{ran}");
        // Only the cage's own few processes exist in its PID namespace.
        let visible: u32 = ran.stdout.trim().parse().unwrap();
        assert!(visible < 10, "{ran}");
    }
}

cage_test! {
    fn cage_has_no_new_privs_and_no_capabilities() {
        let m = Machine::new();
        let ran = m.run(&CagePolicy::default(), "grep -E '^(NoNewPrivs|CapEff|CapPrm|CapBnd|CapAmb)' /proc/self/status");
        assert_eq!(
            ran.stdout,
            "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n",
            "{ran}"
        );
    }
}

cage_test! {
    fn environment_holds_only_allowlisted_values_and_no_kaged_secrets() {
        let m = Machine::new();
        let ran = m.run(&CagePolicy::default(), "env | sort");
        assert_eq!(
            ran.stdout,
            "HOME=/home/cage\nPATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin\nPWD=".to_owned()
                + &m.root.display().to_string()
                + "\nTERM=xterm-256color\n",
            "{ran}"
        );
    }
}

cage_test! {
    fn system_directories_are_read_only_and_tmp_and_home_are_private() {
        let m = Machine::new();
        let host_tmp_file = tempfile::NamedTempFile::new_in("/tmp").unwrap();
        let ran = m.run(
            &CagePolicy::default(),
            &format!(
                "for p in /usr/x /etc/x /x /bin/x /proc/x; do touch $p 2>/dev/null && echo wrote $p; done; \
                 touch /tmp/x $HOME/x && echo private-ok; hostname; ls {}",
                host_tmp_file.path().display()
            ),
        );
        assert_eq!(ran.stdout, "private-ok\nkaged-cage\n", "{ran}");
        assert!(ran.stderr.contains("No such file or directory"), "{ran}");
    }
}

cage_test! {
    fn walltime_kill_ends_the_whole_cage() {
        let m = Machine::new();
        let policy = CagePolicy {
            limits: Limits { walltime: Some(Walltime(1)), ..Limits::default() },
            ..CagePolicy::default()
        };
        // A command line unique to this run, so it can be found from outside.
        let marker = format!("{}.{}", 900 + std::process::id() % 99, std::process::id());
        let cage = m.compile(&policy, &format!("exec sleep {marker}"));
        let walltime = cage.walltime.expect("walltime is returned to the broker");
        let mut child = cage.command().spawn().unwrap();
        drop(cage);
        let started = std::time::Instant::now();
        while pids_running(&["sleep", &marker]).is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "the caged sleep never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(wait_at_most(&mut child, walltime), None, "the cage ended before its walltime");
        // --die-with-parent takes the caged process down with bwrap.
        let killed = std::time::Instant::now();
        while !pids_running(&["sleep", &marker]).is_empty() {
            assert!(killed.elapsed() < Duration::from_secs(5), "caged process survived the walltime kill");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

cage_test! {
    fn cage_cannot_create_nested_user_namespaces() {
        let m = Machine::new();
        let cage = m.compile(&CagePolicy::default(), "unshare --user true && echo nested");
        if !cage.summary.nested_userns_disabled {
            eprintln!("SKIP: this bwrap predates --disable-userns");
            return;
        }
        let ran = super::fixture::run(cage);
        assert!(!ran.stdout.contains("nested"), "{ran}");
        assert!(ran.stderr.contains("unshare failed"), "{ran}");
    }
}

cage_test! {
    fn no_descriptor_but_stdio_leaks_into_the_cage() {
        // An inherited O_PATH fd of a read-only grant would let the cage write through it via
        // openat(); so would any fd the daemon holds. bwrap closes the grant fds after mounting
        // and `CompiledCage::command` marks every other one close-on-exec.
        let m = Machine::new();
        let policy = grants(&[("project:/", Access::Rw), ("project:/docs", Access::Ro)]);
        // Opened without O_CLOEXEC on purpose, like a descriptor the daemon inherited.
        let _held = nix::fcntl::open(
            &m.home.join(".ssh/id_ed25519"),
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        // `ls` itself holds fd 3 to read the directory.
        let ran = m.run(&policy, "exec ls -l /proc/self/fd");
        let targets: Vec<&str> = ran
            .stdout
            .lines()
            .filter_map(|l| l.split_once(" -> ").map(|(_, t)| t))
            .collect();
        assert_eq!(targets.len(), 4, "{ran}");
        assert_eq!(targets[0], "/dev/null", "{ran}");
        assert!(targets[3].starts_with("/proc/"), "{ran}");
    }
}

/// Runs git on the host side of the test, never inside a cage and never with hooks.
fn host_git(root: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "user.email=op@example.com",
        ])
        .args(["-c", "user.name=operator", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(root)
        .env("HOME", root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

cage_test! {
    fn a_default_cage_cannot_change_its_policy_or_plant_a_git_hook_but_can_commit() {
        let m = Machine::new();
        std::fs::create_dir_all(m.root.join(".kaged")).unwrap();
        std::fs::write(m.root.join(".kaged/project.yaml"), "version: 1\nproject: proj\n").unwrap();
        host_git(&m.root, &["init", "-q"]);
        host_git(&m.root, &["add", "."]);
        host_git(&m.root, &["commit", "-qm", "start"]);
        let config_before = std::fs::read_to_string(m.root.join(".git/config")).unwrap();
        let ran = m.run(
            &CagePolicy::default(),
            "try() { if (eval \"$2\") 2>/dev/null; then echo \"WROTE $1\"; else echo \"refused $1\"; fi; }
             try policy 'echo \"  cage: disabled\" >> .kaged/project.yaml'
             try overlay 'echo \"primary: {cage: disabled}\" > .kaged/project.local.yaml'
             try kaged-dir 'mv .kaged .kaged-old'
             try config 'printf \"[core]\\n\\tfsmonitor = touch /tmp/pwned\\n\" >> .git/config'
             try hook 'printf \"#!/bin/sh\\ntouch pwned\\n\" > .git/hooks/post-checkout'
             try info 'echo \"* filter=evil\" > .git/info/attributes'
             try git-dir 'mv .git .git-old'
             echo work > work.txt
             git -c user.email=agent@example.com -c user.name=agent add work.txt &&
               git -c user.email=agent@example.com -c user.name=agent commit -qm agent-work &&
               echo COMMITTED",
        );
        for what in ["policy", "overlay", "kaged-dir", "config", "hook", "info", "git-dir"] {
            assert!(ran.stdout.contains(&format!("refused {what}\n")), "{what}: {ran}");
        }
        assert!(ran.stdout.contains("COMMITTED"), "{ran}");
        assert_eq!(
            std::fs::read_to_string(m.root.join(".kaged/project.yaml")).unwrap(),
            "version: 1\nproject: proj\n"
        );
        assert!(!m.root.join(".kaged/project.local.yaml").exists());
        assert_eq!(std::fs::read_to_string(m.root.join(".git/config")).unwrap(), config_before);
        assert!(!m.root.join(".git/hooks/post-checkout").exists());
        assert!(host_git(&m.root, &["log", "--format=%s"]).starts_with("agent-work\n"));
    }
}

cage_test! {
    fn a_project_that_is_no_repository_cannot_get_one_with_hooks() {
        let m = Machine::new();
        std::fs::create_dir_all(m.root.join(".kaged")).unwrap();
        let cage = m.compile(
            &CagePolicy::default(),
            "if git init -q . 2>/dev/null; then echo INITIALISED; else echo refused; fi
             if mkdir .git/hooks 2>/dev/null; then echo HOOKS; fi",
        );
        let mountpoints = cage.mountpoints.clone();
        assert_eq!(mountpoints, vec![m.root.join(".git")]);
        let ran = super::fixture::run(cage);
        assert_eq!(ran.stdout, "refused\n", "{ran}");
        // The empty stand-in bwrap left on the host goes once the cage is gone.
        kaged_sandbox::remove_mountpoints(&mountpoints);
        assert!(!m.root.join(".git").exists());
    }
}
