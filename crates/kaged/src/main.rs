//! The `kaged` binary: the CLI edge. It parses flags, reads the environment once, and hands
//! typed settings to the library crates. `anyhow` lives only here.

mod cli;
mod client;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{AuthCommand, Cli, Command, DslCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Start(_)) {
        client::warn_if_daemon_insecure(cli.mode.as_deref());
    }
    let result = match cli.command {
        Command::Start(args) => cmd::start::run(cli.mode, args),
        Command::Status(args) => cmd::status::run(cli.mode.as_deref(), args),
        Command::Auth { command } => match command {
            AuthCommand::Nonce => cmd::auth::nonce(cli.mode.as_deref()),
            AuthCommand::Open(args) => cmd::auth::open(cli.mode.as_deref(), args),
        },
        Command::Dsl { command } => match command {
            DslCommand::Validate { dir, json } => cmd::dsl::validate(dir, json),
        },
        Command::Doctor => cmd::doctor::run(cli.mode.as_deref()),
        Command::Version => cmd::version::run(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kaged: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
