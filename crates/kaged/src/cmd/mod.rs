//! One file per subcommand.

pub mod auth;
pub mod doctor;
pub mod dsl;
pub mod start;
pub mod status;
pub mod version;
