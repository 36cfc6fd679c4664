//! The loud stderr blocks of ADR-0007 (`--insecure`) and ADR-0009 (`--no-sandbox`), printed at
//! every start.

use std::net::SocketAddr;

pub(super) fn print_insecure_block(bind: SocketAddr) {
    let exposed = if bind.ip().is_loopback() {
        "Anyone who can reach this loopback address (any local user or process) is the operator."
    } else {
        "This is a NON-LOOPBACK address: anyone on the network who can reach it is the operator."
    };
    eprintln!(
        "\n\
         ################################################################################\n\
         ##  WARNING: kaged started with --insecure (auth.mode = insecure)\n\
         ##  AUTHENTICATION IS BYPASSED. Every request is accepted as `insecure-mode`.\n\
         ##  Bind address: {bind}\n\
         ##  {exposed}\n\
         ##  CSRF checks, the sandbox and the audit log stay on.\n\
         ##  See ADR-0007 (docs/auth.md): restrict network access yourself.\n\
         ################################################################################\n"
    );
}

pub(super) fn print_no_sandbox_block(bind: SocketAddr) {
    eprintln!(
        "\n\
         ################################################################################\n\
         ##  WARNING: kaged started with --no-sandbox\n\
         ##  Sessions run WITHOUT bubblewrap cages, with the daemon's full rights.\n\
         ##  Bind address: {bind}\n\
         ##  See ADR-0009: cages are the default; this is an explicit escape hatch.\n\
         ################################################################################\n"
    );
}
