//! `sandbox` compiles a cage policy into bubblewrap argv (design §7). It never decides policy;
//! it compiles what it is given and refuses what would escape. It does not spawn or supervise
//! sessions either: the session broker runs [`CompiledCage::command`] (on a PTY or not) and
//! enforces [`CompiledCage::walltime`].
//!
//! Start-up calls [`self_test`] (refuse to start without a working bwrap unless
//! `--no-sandbox`) and [`setup_cgroups`], and reports how limits are enforced in `kaged
//! status`. Whether a cage whose limits cannot be enforced may run is the daemon's decision:
//! the compiler only reports it ([`CgroupLimits::NotEnforced`]).

mod cgroup;
mod compile;
mod host;
mod linked_git;

pub use cgroup::{CageCgroup, CgroupError};
pub use compile::{
    AGENT_BIN_DIR, AGENT_DIR, AGENT_HOOK, AGENT_SOCKET_DIR, CAGE_HOME, CAGE_HOSTNAME, CAGE_PATH,
    CageError, CageRequest, CompiledCage, EGRESS_DIR, EGRESS_GATEWAY_DIR, EGRESS_PORT,
    EGRESS_RELAY, EGRESS_RELAY_ARG, EGRESS_SOCKET, EGRESS_SOCKET_NAME, EgressPlumbing,
    HookPlumbing, ProgramBind, compile, compile_on, remove_mountpoints,
};
pub use host::{HostSystem, SelfTestError, SystemMount, inspect_cgroups, self_test, setup_cgroups};
pub use linked_git::LinkedGit;
// The policy and summary types are wire types, defined once in `kaged-api`.
pub use kaged_api::cage::{
    Access, CagePolicy, CageSummary, CgroupLimits, FsGrant, GrantSummary, LimitEnforcement,
    LimitMechanism, Limits, Network, PortablePath, State,
};
pub use kaged_api::status::{BwrapInfo, CgroupSupport};
