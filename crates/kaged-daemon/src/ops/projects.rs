//! Projects: load a directory, list, inspect, unload. Loading and unloading are audited.

use kaged_api::{Identity, LoadProject, ProjectList, ProjectView, SessionState, Unloaded};
use kaged_store::{AuditEvent, EventType};
use serde_json::json;

use crate::Daemon;
use crate::error::{OpError, OpResult};
use crate::projects::ProjectError;

impl Daemon {
    pub fn projects(&self) -> ProjectList {
        let local = &self.inner.local;
        ProjectList {
            projects: self
                .inner
                .projects
                .list()
                .iter()
                .map(|p| p.view(local))
                .collect(),
        }
    }

    pub fn project(&self, id: &str) -> OpResult<ProjectView> {
        self.inner
            .projects
            .get(id)
            .map(|p| p.view(&self.inner.local))
            .ok_or_else(|| OpError::not_found("project", id))
    }

    pub async fn load_project(&self, actor: &Identity, req: LoadProject) -> OpResult<ProjectView> {
        let i = &self.inner;
        let may = || self.may_run_uncaged(actor).map_err(|e| e.to_string());
        let p = i
            .projects
            .load(&i.store, &req.path, &actor.user_id, may)
            .await
            .map_err(|e| project_error(e, &req))?;
        i.audit
            .record(
                AuditEvent::new(
                    EventType::ProjectLoaded,
                    Some(&actor.user_id),
                    json!({"root": p.root, "agents": p.project.agents().len(),
                           "tasks": p.project.tasks.len()}),
                )
                .project(&p.id),
            )
            .await;
        Ok(p.view(&i.local))
    }

    /// Refused while the project has running sessions: they would lose their project.
    pub async fn unload_project(&self, actor: &Identity, id: &str) -> OpResult<Unloaded> {
        let i = &self.inner;
        let running = i
            .sessions
            .list(Some(id))
            .into_iter()
            .filter(|s| s.state != SessionState::Exited)
            .count();
        if running > 0 {
            return Err(OpError::Conflict(format!(
                "project {id:?} has {running} running session(s); end them first"
            )));
        }
        let removed = i
            .projects
            .unload(&i.store, id)
            .await
            .map_err(|e| OpError::internal("cannot unload a project", e))?;
        if !removed {
            return Err(OpError::not_found("project", id));
        }
        i.audit
            .record(
                AuditEvent::new(EventType::ProjectUnloaded, Some(&actor.user_id), json!({}))
                    .project(id),
            )
            .await;
        Ok(Unloaded {
            unloaded: id.to_owned(),
        })
    }

    /// At start: every project the registry remembers, then those `local.toml` lists. A
    /// project that no longer loads is reported, not fatal: its files may be mid-edit.
    pub(crate) async fn load_registered_projects(&self) {
        let i = &self.inner;
        match i.projects.reload_all(&i.store).await {
            Ok(failed) => {
                for (root, err) in failed {
                    tracing::warn!("registered project {root} did not load: {err}");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the project registry"),
        }
        for registered in &i.local.projects {
            let canonical = std::fs::canonicalize(&registered.path).ok();
            let loaded = i
                .projects
                .list()
                .iter()
                .any(|p| Some(&p.root) == canonical.as_ref());
            if loaded {
                continue;
            }
            // The operator's own local.toml: its say-so is the operator's.
            let loaded = i
                .projects
                .load(&i.store, &registered.path, "local.toml", || Ok(()));
            if let Err(e) = loaded.await {
                tracing::warn!(
                    "project {} from {} did not load: {e}",
                    registered.path.display(),
                    i.layout.local_file.display()
                );
            }
        }
    }
}

fn project_error(e: ProjectError, req: &LoadProject) -> OpError {
    match e {
        ProjectError::Invalid(diagnostics) => OpError::DslInvalid {
            path: req.path.display().to_string(),
            diagnostics,
        },
        e @ ProjectError::Conflict { .. } => OpError::Conflict(e.to_string()),
        e @ (ProjectError::NotAbsolute { .. } | ProjectError::Root { .. }) => {
            OpError::Invalid(e.to_string())
        }
        ProjectError::Store(e) => OpError::internal("cannot record the project", e),
        ProjectError::Uncaged(why) => OpError::Forbidden(why),
    }
}
