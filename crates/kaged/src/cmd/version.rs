//! `kaged version`.

use std::process::ExitCode;

use anyhow::Result;

pub fn run() -> Result<ExitCode> {
    println!("kaged {}", env!("CARGO_PKG_VERSION"));
    Ok(ExitCode::SUCCESS)
}
