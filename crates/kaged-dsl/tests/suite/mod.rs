mod bombs;
mod corpus;
mod examples;
mod fixture;
mod local;
mod overlay;
mod portability;
mod schema;
