//! One typed method per operation, one file per resource (pueue-style): each method checks
//! its input, does the work, and writes its own audit rows and events, so finding what an
//! operation records is a directory listing.

mod audit;
mod auth;
mod projects;
mod push;
mod sessions;
mod status;
pub(crate) mod worktrees;

pub use auth::LaunchAttempt;
pub use push::AgentRun;
pub(crate) use sessions::agent_name;
pub use sessions::{Attached, SeqInput, Terminal, TranscriptSlice};
pub use status::paths;
