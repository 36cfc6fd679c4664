//! One file per subcommand.

pub mod attach;
pub mod auth;
pub mod doctor;
pub mod dsl;
pub mod logs;
pub mod ps;
pub mod run;
pub mod sessions;
pub mod start;
pub mod status;
pub mod stop;
pub mod term;
pub mod version;
