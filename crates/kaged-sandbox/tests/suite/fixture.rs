//! A fake operator machine in a temp dir, and helpers to run real cages in it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kaged_sandbox::{CagePolicy, CageRequest, CompiledCage, SelfTestError, compile, self_test};

/// Set in the re-executed test binary so it does not recurse.
const UNPRIVILEGED_MARK: &str = "SANDBOX_TEST_UNPRIVILEGED";

/// Runs `body` here and, when we are root, again as uid/gid 65534 in a copy of this test
/// binary. Skips only when the kernel cannot give bwrap user namespaces.
pub fn as_root_and_unprivileged(module_test_path: &str, body: impl FnOnce()) {
    match self_test() {
        Ok(_) => {}
        Err(SelfTestError::NoUserNamespaces { reason, .. }) => {
            eprintln!("SKIP: bwrap cannot create user namespaces here: {reason}");
            return;
        }
        Err(e) => panic!("bwrap self-test failed: {e}"),
    }
    body();
    let is_root = nix::unistd::geteuid().is_root();
    if !is_root || std::env::var_os(UNPRIVILEGED_MARK).is_some() {
        return;
    }
    // libtest names tests without the crate name.
    let (_, test_path) = module_test_path
        .split_once("::")
        .expect("module path has a crate prefix");
    // The build tree may not be reachable for `nobody`; a copy in a world-readable temp dir is.
    let dir = tempfile::tempdir().expect("tempdir");
    make_world_accessible(dir.path());
    let exe = dir.path().join("kaged-sandbox-tests");
    std::fs::copy(std::env::current_exe().expect("current_exe"), &exe).expect("copy test binary");
    // A test thread that forks while the copy is still open for writing keeps it "busy" for
    // an instant (ETXTBSY); that is the copy racing, not the test failing.
    let mut attempts = 0;
    let out = loop {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&exe)
            .args(["--exact", test_path, "--nocapture", "--test-threads=1"])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("TMPDIR", "/tmp")
            .env("RUST_BACKTRACE", "1")
            .env(UNPRIVILEGED_MARK, "1")
            .stdin(Stdio::null())
            .output()
            .expect("run setpriv");
        attempts += 1;
        let busy = String::from_utf8_lossy(&out.stderr).contains("Text file busy");
        if !busy || attempts == 10 {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test_path} failed as uid 65534 ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

fn make_world_accessible(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// `<tmp>/home` is the operator's home with an SSH key and kaged's state dir, the project
/// lives at `home/src/proj`, a second project next to it, and the runtime dir with a nonce
/// file at `<tmp>/run/kaged`.
pub struct Machine {
    _tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub root: PathBuf,
    pub runtime: PathBuf,
    pub state: PathBuf,
}

impl Machine {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = std::fs::canonicalize(tmp.path()).expect("canonicalize");
        let home = base.join("home");
        let root = home.join("src/proj");
        let runtime = base.join("run/kaged");
        let state = home.join(".local/share/kaged");
        for dir in [
            &root.join("docs"),
            &runtime,
            &state,
            &home.join(".ssh"),
            &home.join("src/other"),
        ] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE-KEY-MATERIAL").expect("write");
        std::fs::write(runtime.join("nonce"), "NONCE-MATERIAL").expect("write");
        std::fs::write(state.join("kaged.db"), "STATE-MATERIAL").expect("write");
        std::fs::write(home.join("src/other/secret"), "OTHER-PROJECT-MATERIAL").expect("write");
        std::fs::write(root.join("docs/readme"), "project docs").expect("write");
        Self {
            _tmp: tmp,
            home,
            root,
            runtime,
            state,
        }
    }

    /// The daemon's deny list for this machine.
    pub fn deny(&self) -> Vec<PathBuf> {
        vec![
            self.runtime.clone(),
            self.runtime.join("nonce"),
            self.state.clone(),
        ]
    }

    pub fn compile(&self, policy: &CagePolicy, script: &str) -> CompiledCage {
        let argv = ["sh".to_owned(), "-c".to_owned(), script.to_owned()];
        let deny = self.deny();
        let env = [
            ("TERM".to_owned(), "xterm-256color".to_owned()),
            (
                "KAGED_AUTH_SIDECAR_NONCE".to_owned(),
                "SIDECAR-NONCE".to_owned(),
            ),
            ("KAGED_HOME".to_owned(), self.state.display().to_string()),
            ("SSH_AUTH_SOCK".to_owned(), "/run/user/0/ssh".to_owned()),
        ];
        compile(&CageRequest {
            project_root: &self.root,
            policy,
            argv: &argv,
            env_values: &env,
            deny: &deny,
            scratch_dir: None,
            pty: false,
            cwd: None,
            egress: None,
            hook: None,
            linked_git: None,
            program: None,
        })
        .expect("compile cage")
    }

    /// Compiles and runs `script` with `sh -c` in a cage, returning its output.
    pub fn run(&self, policy: &CagePolicy, script: &str) -> Ran {
        run(self.compile(policy, script))
    }
}

pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs a compiled cage to completion (at most 30 s), the way a non-PTY broker would.
pub fn run(cage: CompiledCage) -> Ran {
    let mut child = cage
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cage");
    drop(cage);
    let status =
        wait_at_most(&mut child, Duration::from_secs(30)).expect("cage did not finish in 30 s");
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    Ran {
        status,
        stdout,
        stderr,
    }
}

/// The broker's walltime enforcement in miniature: wait, and SIGKILL bwrap when time is up.
/// Returns the exit status, or `None` if the cage was killed.
pub fn wait_at_most(child: &mut std::process::Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            child.kill().expect("kill cage");
            child.wait().expect("reap cage");
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// PIDs of host processes whose command line is exactly `argv`.
pub fn pids_running(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}
