//! Who may do what with a session. Behind one sidecar, operators are separate people: a
//! session belongs to the operator who started it, others need its owner to share it (read or
//! write), and the admin group named in config sees and steers everything. With a single
//! operator (loopback, insecure) every session is the caller's own, so nothing changes there.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use kaged_api::{AuthMode, DaemonEvent, EgressConnection, Identity, SessionInfo, ShareAccess};

/// What a caller wants to do with a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Read it: listing, details, transcript, watching its terminal.
    See,
    /// Steer it: type, resize, signal, end.
    Drive,
    /// Change who else may see or steer it.
    Share,
}

pub(crate) struct Owners {
    admin_group: Option<String>,
    /// Session id → user id → access. Shares live as long as the daemon: sessions do too.
    shares: Mutex<HashMap<String, BTreeMap<String, ShareAccess>>>,
}

impl Owners {
    pub(crate) fn new(admin_group: Option<String>) -> Owners {
        Owners {
            admin_group,
            shares: Mutex::new(HashMap::new()),
        }
    }

    /// Loopback and insecure identities are the daemon's one operator: nobody else exists for
    /// them to be kept apart from. Behind a sidecar, only the admin group.
    pub(crate) fn is_admin(&self, who: &Identity) -> bool {
        who.mode != AuthMode::Sidecar
            || self
                .admin_group
                .as_ref()
                .is_some_and(|g| who.groups.iter().any(|x| x == g))
    }

    /// Whether `who` may do `need` with the session `session_id` that `owner` started.
    pub(crate) fn allows(&self, who: &Identity, owner: &str, session_id: &str, need: Need) -> bool {
        if who.user_id == owner || self.is_admin(who) {
            return true;
        }
        let share = self
            .lock()
            .get(session_id)
            .and_then(|s| s.get(&who.user_id))
            .copied();
        match need {
            Need::See => share.is_some(),
            Need::Drive => share == Some(ShareAccess::Write),
            Need::Share => false,
        }
    }

    /// Sets (or with `None` removes) one operator's share of a session.
    pub(crate) fn set(&self, session_id: &str, user: &str, access: Option<ShareAccess>) {
        let mut shares = self.lock();
        let entry = shares.entry(session_id.to_owned()).or_default();
        match access {
            Some(a) => {
                entry.insert(user.to_owned(), a);
            }
            None => {
                entry.remove(user);
            }
        }
        if entry.is_empty() {
            shares.remove(session_id);
        }
    }

    /// The operators a session is shared with for writing: they can answer its agent at the
    /// terminal, so they are told when it waits.
    pub(crate) fn drivers(&self, session_id: &str) -> Vec<String> {
        self.lock()
            .get(session_id)
            .map(|s| {
                s.iter()
                    .filter(|(_, a)| **a == ShareAccess::Write)
                    .map(|(u, _)| u.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The session as its callers see it: with whom it is shared.
    pub(crate) fn with_shares(&self, mut info: SessionInfo) -> SessionInfo {
        info.shared_with = self.lock().get(&info.id).cloned().unwrap_or_default();
        info
    }

    /// Whether `who` may see this event: events about a session follow the session.
    pub(crate) fn sees_event(
        &self,
        who: &Identity,
        event: &DaemonEvent,
        owner_of: impl Fn(&str) -> Option<String>,
    ) -> bool {
        match event {
            DaemonEvent::SessionStarted { session }
            | DaemonEvent::SessionExited { session }
            | DaemonEvent::RunStarted { session, .. }
            | DaemonEvent::RunEnded { session, .. } => {
                self.allows(who, &session.actor, &session.id, Need::See)
            }
            DaemonEvent::SessionAttached { session_id, .. }
            | DaemonEvent::AgentState { session_id, .. }
            | DaemonEvent::ApprovalRequested {
                approval: kaged_api::Approval { session_id, .. },
            }
            | DaemonEvent::ApprovalAnswered {
                outcome: kaged_api::ApprovalOutcome { session_id, .. },
            }
            | DaemonEvent::Egress {
                connection: EgressConnection { session_id, .. },
            } => owner_of(session_id)
                .is_some_and(|owner| self.allows(who, &owner, session_id, Need::See)),
            DaemonEvent::Gap { .. } | DaemonEvent::Pong => true,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<String, ShareAccess>>> {
        self.shares.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(user: &str, groups: &[&str]) -> Identity {
        Identity {
            user_id: user.to_owned(),
            email: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            mode: AuthMode::Sidecar,
        }
    }

    #[test]
    fn owners_admins_and_shares_decide_each_need() {
        let o = Owners::new(Some("ops".into()));
        let (alice, bob, carol) = (
            who("alice", &[]),
            who("bob", &["dev"]),
            who("carol", &["ops"]),
        );
        for need in [Need::See, Need::Drive, Need::Share] {
            assert!(o.allows(&alice, "alice", "s1", need), "owner {need:?}");
            assert!(o.allows(&carol, "alice", "s1", need), "admin {need:?}");
            assert!(!o.allows(&bob, "alice", "s1", need), "stranger {need:?}");
        }
        o.set("s1", "bob", Some(ShareAccess::Read));
        assert!(o.allows(&bob, "alice", "s1", Need::See));
        assert!(!o.allows(&bob, "alice", "s1", Need::Drive));
        o.set("s1", "bob", Some(ShareAccess::Write));
        assert!(o.allows(&bob, "alice", "s1", Need::Drive));
        assert!(
            !o.allows(&bob, "alice", "s1", Need::Share),
            "only the owner re-shares"
        );
        assert!(
            !o.allows(&bob, "alice", "s2", Need::See),
            "a share is per session"
        );
        o.set("s1", "bob", None);
        assert!(!o.allows(&bob, "alice", "s1", Need::See));
        // With no admin group configured, nobody behind the sidecar is an admin; the one
        // operator of a loopback daemon always is.
        assert!(!Owners::new(None).is_admin(&carol));
        let local = Identity {
            mode: AuthMode::Loopback,
            ..who("me", &[])
        };
        assert!(Owners::new(None).is_admin(&local));
    }
}
