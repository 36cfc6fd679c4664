//! What an operation can refuse, each with the error code of design §5. Messages name the
//! offending value and say what to do; internal details are logged, never returned.

use kaged_api::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("no {what} with id {id:?}")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// A conflict about named paths (a dirty checkout, a merge conflict); they travel as
    /// details.
    #[error("{message}")]
    ConflictPaths { message: String, paths: Vec<String> },
    /// Authenticated, but this operator may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A project file that does not parse; the diagnostics travel as details.
    #[error(
        "{path} is not a valid kaged project: {} problem(s); run `kaged dsl validate {path}` for the same list",
        .diagnostics.len()
    )]
    DslInvalid {
        path: String,
        diagnostics: kaged_dsl::Diagnostics,
    },
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Unauthenticated(kaged_auth::AuthError),
    /// Logged in full where it happens; the caller sees only that something broke.
    #[error("internal error; see the daemon log")]
    Internal,
}

impl OpError {
    pub fn code(&self) -> ErrorCode {
        match self {
            OpError::NotFound { .. } => ErrorCode::NotFound,
            OpError::Invalid(_) => ErrorCode::ValidationFailed,
            OpError::Conflict(_) | OpError::ConflictPaths { .. } => ErrorCode::Conflict,
            OpError::Forbidden(_) => ErrorCode::Forbidden,
            OpError::DslInvalid { .. } => ErrorCode::DslInvalid,
            OpError::RateLimited(_) => ErrorCode::RateLimited,
            OpError::Unavailable(_) => ErrorCode::Unavailable,
            OpError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            OpError::Internal => ErrorCode::Internal,
        }
    }

    /// Machine-readable details for the error envelope.
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            OpError::DslInvalid { diagnostics, .. } => {
                Some(serde_json::json!({"diagnostics": diagnostics.0}))
            }
            OpError::ConflictPaths { paths, .. } => Some(serde_json::json!({"paths": paths})),
            _ => None,
        }
    }

    pub(crate) fn not_found(what: &'static str, id: &str) -> OpError {
        OpError::NotFound {
            what,
            id: id.to_owned(),
        }
    }

    /// Logs `err` and hides it from the caller: paths and SQL are not the caller's business.
    pub(crate) fn internal(context: &str, err: impl std::fmt::Display) -> OpError {
        tracing::error!(error = %err, "{context}");
        OpError::Internal
    }
}

impl From<kaged_session::SessionError> for OpError {
    fn from(e: kaged_session::SessionError) -> OpError {
        use kaged_session::SessionError as E;
        match e {
            E::Limit { .. } => OpError::RateLimited(e.to_string()),
            E::EmptyArgv | E::Spawn { .. } => OpError::Invalid(e.to_string()),
            E::NotRunning { .. } => OpError::Conflict(e.to_string()),
            E::ShuttingDown => OpError::Unavailable(e.to_string()),
            E::Pty(_) | E::Io { .. } | E::Dir(_) | E::Control { .. } | E::BadId { .. } => {
                OpError::internal("session operation failed", e)
            }
        }
    }
}

pub type OpResult<T> = Result<T, OpError>;

/// Why the daemon could not start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Dir(#[from] kaged_deploy::DirError),
    #[error("{0}")]
    Lock(String),
    #[error(
        "refusing to bind non-loopback address {bind} (from {source_of}) without an auth sidecar: set auth.mode = \"sidecar\" with KAGED_AUTH_SIDECAR_NONCE or auth.sidecar_nonce_file, bind 127.0.0.1, or set KAGED_INSECURE_BIND=1 if you really know what you are doing (ADR-0007)"
    )]
    UnsafeBind {
        bind: std::net::SocketAddr,
        source_of: String,
    },
    #[error("sandbox self-test failed: {0}")]
    Sandbox(#[from] kaged_sandbox::SelfTestError),
    #[error(transparent)]
    Store(#[from] kaged_store::StoreError),
    #[error(
        "cannot bind {bind}: {source}; if another service holds the port, pick another with --bind or KAGED_BIND"
    )]
    Bind {
        bind: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    AuthSetup(#[from] kaged_auth::AuthSetupError),
    #[error(transparent)]
    Session(#[from] kaged_session::SessionError),
    #[error(transparent)]
    Local(#[from] kaged_dsl::LocalConfigError),
    #[error(transparent)]
    Egress(#[from] kaged_egress::EgressError),
    #[error(transparent)]
    Push(#[from] kaged_push::PushError),
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
