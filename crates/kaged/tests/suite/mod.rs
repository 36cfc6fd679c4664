mod auth;
mod daemon;
mod detection;
