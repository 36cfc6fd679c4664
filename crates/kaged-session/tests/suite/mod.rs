mod broker;
mod fixture;
mod lifecycle;
mod persistence;
mod screen;
