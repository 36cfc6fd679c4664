//! Loaded projects: parsed `.kaged/project.yaml` files by id (their slug), backed by the
//! `projects` table so a restarted daemon loads the same set again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use kaged_dsl::{Cage, Diagnostics, Project};
use kaged_store::{ProjectRow, Store, StoreError};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct LoadedProject {
    pub id: String,
    pub root: PathBuf,
    pub project: Project,
    pub loaded_at: String,
    pub loaded_by: String,
}

impl LoadedProject {
    /// The API shape: the project plus what can be started from it, with its model aliases
    /// resolved against this operator's `local.toml`.
    pub fn to_json(&self, local: &kaged_dsl::LocalConfig) -> Value {
        // Partial resolution is useful: show what resolves and list what does not.
        let mut models = BTreeMap::new();
        let mut unknown = Vec::new();
        for (agent, spec) in self.project.agents() {
            let Some(alias) = &spec.model else { continue };
            match local.models.get(alias) {
                Some(id) => {
                    models.insert(alias.clone(), id.clone());
                }
                None => unknown.push(json!({"agent": agent, "alias": alias})),
            }
        }
        let agents: Vec<Value> = self
            .project
            .agents()
            .into_iter()
            .map(|(name, spec)| {
                json!({
                    "name": name,
                    "command": spec.command,
                    "model": spec.model,
                    "caged": !matches!(spec.cage, Cage::Disabled),
                    "cage": spec.cage,
                })
            })
            .collect();
        let tasks: Vec<Value> = self
            .project
            .tasks
            .iter()
            .map(|(name, t)| {
                json!({
                    "name": name,
                    "command": t.command,
                    "description": t.description,
                    "caged": !matches!(t.cage, Cage::Disabled),
                    "cage": t.cage,
                })
            })
            .collect();
        json!({
            "id": self.id,
            "name": self.project.project,
            "root": self.root,
            "description": self.project.description,
            "agents": agents,
            "tasks": tasks,
            "models": models,
            "unknown_model_aliases": unknown,
            "loaded_at": self.loaded_at,
            "loaded_by": self.loaded_by,
            "definition": self.project,
        })
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
}

#[derive(Default)]
pub struct Projects {
    map: RwLock<BTreeMap<String, LoadedProject>>,
}

#[derive(Debug, Serialize)]
pub struct Reloaded {
    pub loaded: Vec<String>,
    pub failed: Vec<(String, String)>,
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
    pub async fn load(
        &self,
        store: &Store,
        root: &Path,
        actor: &str,
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
            loaded_at: kaged_store::now_rfc3339(),
            loaded_by: actor.to_owned(),
        };
        store
            .upsert_project(ProjectRow {
                id: id.clone(),
                root: loaded.root.display().to_string(),
                name: loaded.project.project.clone(),
                loaded_at: loaded.loaded_at.clone(),
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
    pub async fn reload_all(&self, store: &Store) -> Result<Reloaded, ProjectError> {
        let mut out = Reloaded {
            loaded: Vec::new(),
            failed: Vec::new(),
        };
        for row in store.projects().await? {
            match self.load(store, Path::new(&row.root), &row.loaded_by).await {
                Ok(p) => out.loaded.push(p.id),
                Err(e) => out.failed.push((row.root, e.to_string())),
            }
        }
        Ok(out)
    }
}
