mod auth;
mod cli;
mod daemon;
mod detection;
mod projects;
mod sessions;
