//! The `kaged` binary: the CLI edge. It parses flags, reads the environment once, and hands
//! typed settings to the library crates. `anyhow` lives only here.

mod cli;
mod client;
mod cmd;
mod hook;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{AuthCommand, Cli, Command, DslCommand};

fn main() -> ExitCode {
    // Inside a filtered-network cage this binary is the relay to the egress gateway; hidden,
    // and dispatched before anything starts a thread (it forks).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == kaged_sandbox::EGRESS_RELAY_ARG)
    {
        eprintln!("{}", kaged_egress::relay::run(&args[2..]));
        return ExitCode::from(127);
    }
    // Run by an agent CLI's hooks inside its cage: pass the hook to the daemon, print the
    // CLI's answer.
    if args.get(1).is_some_and(|a| a == kaged_api::hook::HOOK_ARG) {
        return hook::run(&args[2..]);
    }
    let cli = Cli::parse();
    if matches!(cli.command, Command::Holder { .. }) {
        // A session's holder: no runtime, no logging, nothing but the holder loop.
        return ExitCode::from(u8::try_from(kaged_session::holder::run()).unwrap_or(1));
    }
    if !matches!(cli.command, Command::Start(_)) {
        // A client command piped into `head` should end quietly like any Unix tool, not
        // panic on a broken pipe. The daemon keeps ignoring SIGPIPE: its sockets report EPIPE.
        // SAFETY: no other thread exists yet, and SIG_DFL installs no handler code.
        let _ = unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            )
        };
        client::warn_if_daemon_insecure(cli.mode.as_deref());
    }
    let result = match cli.command {
        Command::Start(args) => cmd::start::run(cli.mode, args),
        Command::Status(args) => cmd::status::run(cli.mode.as_deref(), args),
        Command::Auth { command } => match command {
            AuthCommand::Nonce => cmd::auth::nonce(cli.mode.as_deref()),
            AuthCommand::Open(args) => cmd::auth::open(cli.mode.as_deref(), args),
            AuthCommand::Revoke => cmd::auth::revoke(cli.mode.as_deref()),
        },
        Command::Dsl { command } => match command {
            DslCommand::Validate { dir, json } => cmd::dsl::validate(dir, json),
        },
        Command::Ps(args) => cmd::ps::run(cli.mode.as_deref(), args),
        Command::Run(args) => cmd::run::run(cli.mode.as_deref(), args),
        Command::Attach(args) => cmd::attach::run(cli.mode.as_deref(), args),
        Command::Logs(args) => cmd::logs::run(cli.mode.as_deref(), args),
        Command::Stop(args) => cmd::stop::run(cli.mode.as_deref(), args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "kaged", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor => cmd::doctor::run(cli.mode.as_deref()),
        Command::Version => cmd::version::run(),
        Command::Holder { .. } => Ok(ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kaged: error: {e:#}");
            if e.downcast_ref::<client::NotRunning>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
