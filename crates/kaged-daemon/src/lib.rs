//! `daemon` is kaged's daemon as a type (design §1): it owns the state, the project registry,
//! session planning, the host facts and the audit log, and offers one typed method per
//! operation, each of which writes its own audit rows and events. It never speaks HTTP beyond
//! serving an app it is handed; `kaged-http` maps routes onto these methods.
//!
//! Data flows one way: CLI → `Settings` → [`Daemon::start`] → (HTTP gate → handlers → daemon
//! methods) → sessions and cages.

mod access;
pub mod adapters;
mod agents;
mod audit;
mod backoff;
mod daemon;
mod endpoint;
mod error;
mod hooks;
mod host;
pub mod launcher;
mod listener;
mod lock;
mod ops;
mod owners;
mod program;
mod projects;
mod startup;
mod worktrees;

pub use access::Access;
pub use audit::{Audit, Refusal};
pub use daemon::{Daemon, local_user};
pub use endpoint::Endpoint;
pub use error::{OpError, OpResult, StartError};
pub use host::HostFacts;
pub use ops::{AgentRun, Attached, LaunchAttempt, SeqInput, Terminal, TranscriptSlice, paths};
pub use projects::LoadedProject;
