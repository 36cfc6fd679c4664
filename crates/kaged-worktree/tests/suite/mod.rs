mod bad_input;
mod crash;
pub mod fixture;
mod hooks;
mod lifecycle;
mod merge;
