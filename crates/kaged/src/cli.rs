//! The command line. Every subcommand has a one-line description for `kaged --help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kaged",
    version,
    about = "Supervise AI coding agents and shells in bubblewrap cages, from any browser",
    long_about = "kaged is a self-hosted daemon that runs AI coding agents and shell sessions inside \
                  bubblewrap cages and streams their terminals to your browser.\n\n\
                  Per-user mode (your own UID, ~/.local/share/kaged) and system-wide mode (a `kaged` \
                  user, /var/lib/kaged) use the same binary; `kaged status` tells you which one you \
                  are in and where your data is.",
    after_help = "Exit codes: 0 success; 1 error (the daemon refused the request or could not \
                  be reached; the message says why); 2 usage error; 3 the daemon is not running \
                  (`kaged status` and every command that talks to it)."
)]
pub struct Cli {
    /// Deployment mode: `user` or `system` (default: KAGED_MODE, else detected; see `kaged status`).
    #[arg(long, global = true, value_name = "MODE")]
    pub mode: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the daemon in the foreground (systemd runs this).
    Start(StartArgs),
    /// Show whether the daemon runs, its mode and why, and where its data lives.
    Status(StatusArgs),
    /// Authentication helpers: the sidecar nonce and fresh launch URLs.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Project files: `kaged dsl validate [DIR]` checks a project without a daemon.
    Dsl {
        #[command(subcommand)]
        command: DslCommand,
    },
    /// List sessions: state, project, what runs, owner and age.
    Ps(PsArgs),
    /// Start a session in a loaded project: its shell, a declared agent or task, or `-- ARGV`.
    Run(RunArgs),
    /// Attach this terminal to a session's terminal; detach with Ctrl-].
    Attach(AttachArgs),
    /// Print a session's transcript (every byte it wrote); `-f` follows it live.
    Logs(LogsArgs),
    /// End a session: SIGHUP, then SIGTERM, then SIGKILL to its process group.
    Stop(StopArgs),
    /// Print a completion script for your shell (`kaged completions bash > …`).
    Completions { shell: clap_complete::Shell },
    /// Check this machine for what kaged needs: bwrap, user namespaces, runtime dir, linger, bind.
    Doctor,
    /// Print the version.
    Version,
    /// Internal: keep one session alive across daemon restarts (started by the daemon).
    #[command(hide = true)]
    Holder {
        /// The session it holds (shown by `ps`; the spec on stdin is what counts).
        session: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Read settings from this config.toml instead of the mode's default location.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Listen on this address (default: 127.0.0.1:0 per-user, 127.0.0.1:7777 system-wide).
    #[arg(long, value_name = "ADDR:PORT")]
    pub bind: Option<SocketAddr>,
    /// `loopback`, `sidecar` or `insecure` (default: from the deployment mode).
    #[arg(long, value_name = "MODE")]
    pub auth_mode: Option<String>,
    /// Bypass authentication entirely (ADR-0007). Loud on purpose; still binds 127.0.0.1.
    #[arg(long)]
    pub insecure: bool,
    /// Run sessions without bubblewrap cages (ADR-0009). Loud on purpose.
    #[arg(long)]
    pub no_sandbox: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Print the sidecar nonce to configure your auth sidecar with (daemon's UID only).
    Nonce,
    /// Print a fresh one-time launch URL (loopback mode) and open a browser if one is available.
    Open(OpenArgs),
    /// Sign every browser out (a new cookie key); the next sign-in needs a new launch URL.
    Revoke,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// Only print the URL; do not try to open a browser.
    #[arg(long)]
    pub no_browser: bool,
}

#[derive(Debug, Subcommand)]
pub enum DslCommand {
    /// Check DIR/.kaged/project.yaml (and project.local.yaml): exit 0 valid, 1 invalid, 2 usage.
    Validate {
        /// The project root (default: the current directory).
        dir: Option<PathBuf>,
        /// Print the diagnostics as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Only this project's sessions.
    #[arg(long, short)]
    pub project: Option<String>,
    /// Also list sessions that have ended.
    #[arg(long, short)]
    pub all: bool,
    /// Print machine-readable JSON (a `SessionList`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The project's id (its slug), or its directory (`.` or any path with a `/`), which is
    /// loaded first.
    pub project: String,
    /// `shell` (the default), a declared agent or task by name, or `agent:NAME` / `task:NAME`
    /// when a name is both.
    pub target: Option<String>,
    /// Run this command instead, in the project's cage (after `--`).
    #[arg(last = true, value_name = "ARGV")]
    pub argv: Vec<String>,
    /// Attach to the new session at once.
    #[arg(long, short)]
    pub attach: bool,
    /// Print the new session as JSON (a `SessionInfo`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The session's id, or a unique prefix of it.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The session's id, or a unique prefix of it.
    pub id: String,
    /// Keep printing what the session writes until it ends.
    #[arg(long, short)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The session's id, or a unique prefix of it.
    pub id: String,
    /// Print the session as JSON (a `SessionInfo`).
    #[arg(long)]
    pub json: bool,
}
