mod auth;
mod cli;
mod daemon;
mod detection;
mod first_run;
mod openapi;
mod projects;
mod sessions;
