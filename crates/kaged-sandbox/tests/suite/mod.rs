mod escape;
pub mod fixture;
mod host;
mod pty;
