//! `sandbox` compiles a cage policy into bubblewrap argv (design §7). It never decides policy;
//! it compiles what it is given and refuses what would escape. It does not spawn or supervise
//! sessions either: the session broker runs [`CompiledCage::command`] (on a PTY or not) and
//! enforces [`CompiledCage::walltime`].
//!
//! Start-up calls [`self_test`] (refuse to start without a working bwrap unless
//! `--no-sandbox`) and reports [`cgroup_support`] in `kaged status`.

mod compile;
mod host;
mod policy;

pub use compile::{
    CAGE_HOME, CAGE_HOSTNAME, CAGE_PATH, CageError, CageRequest, CageSummary, CgroupLimits,
    CompiledCage, GrantSummary, compile, compile_on, inherit_only,
};
pub use host::{
    BwrapInfo, CgroupSupport, HostSystem, SelfTestError, SystemMount, cgroup_support, self_test,
};
pub use policy::{Access, CagePolicy, Grant, Limits, Network, StateKind};
