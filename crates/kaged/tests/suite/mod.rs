mod auth;
mod daemon;
mod detection;
mod sessions;
