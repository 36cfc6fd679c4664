//! `sandbox` compiles a cage policy into bubblewrap argv (design §7). It never decides policy;
//! it compiles what it is given and refuses what would escape. It does not spawn or supervise
//! sessions either: the session broker runs [`CompiledCage::command`] (on a PTY or not) and
//! enforces [`CompiledCage::walltime`].
//!
//! Start-up calls [`self_test`] (refuse to start without a working bwrap unless
//! `--no-sandbox`) and reports [`cgroup_support`] in `kaged status`.

mod compile;
mod host;

pub use compile::{
    CAGE_HOME, CAGE_HOSTNAME, CAGE_PATH, CageError, CageRequest, CompiledCage, compile, compile_on,
    remove_mountpoints,
};
pub use host::{HostSystem, SelfTestError, SystemMount, cgroup_support, self_test};
// The policy and summary types are wire types, defined once in `kaged-api`.
pub use kaged_api::cage::{
    Access, CagePolicy, CageSummary, CgroupLimits, FsGrant, GrantSummary, Limits, Network,
    PortablePath, State,
};
pub use kaged_api::status::{BwrapInfo, CgroupSupport};
