mod auth;
mod daemon;
mod detection;
mod projects;
mod sessions;
