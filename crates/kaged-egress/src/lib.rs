//! `egress` is a filtered-network cage's only way out (design §7): the per-cage HTTP proxy
//! the daemon runs on the host ([`Gateway`]), the relay kaged's binary becomes inside the cage
//! ([`relay::run`]), and the rule that no cage reaches a non-public address
//! ([`classify`]). It enforces the policy it is given; which cage gets which policy, and what
//! is audited, is the daemon's.

pub mod classify;
mod gateway;
mod policy;
mod providers;
pub mod relay;
mod tunnel;

pub use classify::{AddrClass, classify};
pub use gateway::{CageIds, EgressError, Gateway};
pub use policy::{Policy, Refusal};
pub use providers::{KeyHeader, ProviderRoute, Providers, Secret, dummy_key, tls_config};
