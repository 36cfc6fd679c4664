//! Loaded projects: parsed `.kaged/project.yaml` files by id (their slug), backed by the
//! `projects` table so a restarted daemon loads the same set again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use kaged_api::{AgentView, Cage, Project, ProjectView, TaskView, Timestamp};
use kaged_dsl::{Diagnostics, LocalConfig};
use kaged_store::{ProjectRow, Store, StoreError};

#[derive(Debug, Clone)]
pub struct LoadedProject {
    pub id: String,
    pub root: PathBuf,
    pub project: Project,
    pub loaded_at: Timestamp,
    pub loaded_by: String,
    /// Set only on the copy a worktree session runs in, whose `root` is the worktree: the git
    /// dirs its cage needs besides it.
    pub linked_git: Option<kaged_sandbox::LinkedGit>,
}

impl LoadedProject {
    /// The API's view, with model aliases resolved against this operator's `local.toml`:
    /// what resolves is shown, and what does not is listed.
    pub fn view(&self, local: &LocalConfig) -> ProjectView {
        let (models, unknown_model_aliases) = local.resolve_models_partially(&self.project);
        let agents = self
            .project
            .agents()
            .into_iter()
            .map(|(name, spec)| AgentView {
                name,
                command: spec.command.clone(),
                model: spec.model.clone(),
                caged: !matches!(spec.cage, Cage::Disabled),
                cage: spec.cage.clone(),
                workspace: spec.workspace,
            })
            .collect();
        let tasks = self
            .project
            .tasks
            .iter()
            .map(|(name, t)| TaskView {
                name: name.clone(),
                command: t.command.clone(),
                description: t.description.clone(),
                caged: !matches!(t.cage, Cage::Disabled),
                cage: t.cage.clone(),
                workspace: t.workspace,
            })
            .collect();
        ProjectView {
            id: self.id.clone(),
            name: self.project.project.clone(),
            root: self.root.clone(),
            description: self.project.description.clone(),
            agents,
            tasks,
            models,
            unknown_model_aliases,
            loaded_at: self.loaded_at,
            loaded_by: self.loaded_by.clone(),
            definition: self.project.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{path} is not an absolute path; give the project directory as an absolute path")]
    NotAbsolute { path: PathBuf },
    #[error("{path}: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the project file is invalid ({} problem(s))", .0.len())]
    Invalid(Diagnostics),
    #[error(
        "project id {id:?} is already loaded from {existing}; unload it first or rename one of them"
    )]
    Conflict { id: String, existing: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller may not load a project that runs anything uncaged here.
    #[error("{0}")]
    Uncaged(String),
}

#[derive(Default)]
pub struct Projects {
    map: RwLock<BTreeMap<String, LoadedProject>>,
}

impl Projects {
    pub fn get(&self, id: &str) -> Option<LoadedProject> {
        self.read().get(id).cloned()
    }

    pub fn list(&self) -> Vec<LoadedProject> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, LoadedProject>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, LoadedProject>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Parses and registers the project at `root`. Reloading the same root updates it.
    /// `may_run_uncaged` decides whether a project with a `cage: disabled` agent or task may
    /// be loaded by this caller (`Err` says why not).
    pub async fn load(
        &self,
        store: &Store,
        root: &Path,
        actor: &str,
        may_run_uncaged: impl FnOnce() -> Result<(), String>,
    ) -> Result<LoadedProject, ProjectError> {
        if !root.is_absolute() {
            return Err(ProjectError::NotAbsolute {
                path: root.to_owned(),
            });
        }
        let canonical = std::fs::canonicalize(root).map_err(|source| ProjectError::Root {
            path: root.to_owned(),
            source,
        })?;
        let parse_root = canonical.clone();
        let project = tokio::task::spawn_blocking(move || kaged_dsl::load_project(&parse_root))
            .await
            .map_err(|e| ProjectError::Store(StoreError::Join(e.to_string())))?
            .map_err(ProjectError::Invalid)?;
        let uncaged = project
            .agents()
            .iter()
            .any(|(_, a)| matches!(a.cage, Cage::Disabled))
            || project
                .tasks
                .values()
                .any(|t| matches!(t.cage, Cage::Disabled));
        if uncaged {
            may_run_uncaged().map_err(ProjectError::Uncaged)?;
        }
        let id = project.project.clone();
        if let Some(existing) = self.read().get(&id)
            && existing.root != canonical
        {
            return Err(ProjectError::Conflict {
                id,
                existing: existing.root.clone(),
            });
        }
        let loaded = LoadedProject {
            id: id.clone(),
            root: canonical,
            project,
            loaded_at: Timestamp::now(),
            loaded_by: actor.to_owned(),
            linked_git: None,
        };
        store
            .upsert_project(ProjectRow {
                id: id.clone(),
                root: loaded.root.display().to_string(),
                name: loaded.project.project.clone(),
                loaded_at: loaded.loaded_at,
                loaded_by: actor.to_owned(),
            })
            .await?;
        self.write().insert(id, loaded.clone());
        Ok(loaded)
    }

    pub async fn unload(&self, store: &Store, id: &str) -> Result<bool, ProjectError> {
        let removed = self.write().remove(id).is_some();
        store.remove_project(id.to_owned()).await?;
        Ok(removed)
    }

    /// Loads every registered project again at start-up. A project that no longer parses
    /// stays registered (its files may be mid-edit) but is reported and not served.
    pub async fn reload_all(&self, store: &Store) -> Result<Vec<(String, String)>, ProjectError> {
        let mut failed = Vec::new();
        for row in store.projects().await? {
            // Loaded before, by someone who was allowed to then.
            let again = self.load(store, Path::new(&row.root), &row.loaded_by, || Ok(()));
            if let Err(e) = again.await {
                failed.push((row.root, e.to_string()));
            }
        }
        Ok(failed)
    }
}
