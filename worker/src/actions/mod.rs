//! The registry of runnable actions, built from the catalog in one function; the
//! explicit outcome every action returns is in [`outcome`].

mod auth;
mod http;
mod outcome;
mod signing;

use std::collections::HashMap;

use docket::catalog::{Action, ActionKind, Catalog};
use docket::db::jobs::ClaimedJob;

use auth::Credentials;
pub use http::HttpAction;
pub use outcome::{ActionOutcome, Lineage};
pub use signing::Signer;

/// Why the registry could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot build the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    #[error("action {action:?}: signing secret {variable} {problem}")]
    Secret { action: String, variable: String, problem: String },
    #[error("action {action:?}: auth variable {variable} {problem}")]
    Auth { action: String, variable: String, problem: String },
}

/// What the worker knows how to run.
enum Runner {
    Noop,
    Http(Box<HttpAction>),
}

/// Every action of the catalog, ready to run.
pub struct Registry {
    entries: HashMap<String, (Action, Runner)>,
    /// Actions whose templates may read an event (a trigger starts them or a chain
    /// they follow): their jobs' event is read before each attempt.
    sees_events: std::collections::HashSet<String>,
}

impl Registry {
    /// Builds the registry, reading signing secrets from the environment. The catalog
    /// has already refused duplicates.
    pub fn from_catalog(catalog: &Catalog) -> Result<Self, RegistryError> {
        let client = http::client().map_err(RegistryError::Http)?;
        let mut entries = HashMap::new();
        let mut token_sources: HashMap<docket::catalog::Auth, Credentials> = HashMap::new();
        for action in catalog.actions() {
            let runner = match &action.kind {
                ActionKind::Noop => Runner::Noop,
                ActionKind::Http(spec) => {
                    let signer = match &spec.signing_secret_env {
                        Some(variable) => Some(Signer::from_env(variable).map_err(|problem| {
                            RegistryError::Secret { action: action.name.clone(), variable: variable.clone(), problem }
                        })?),
                        None => None,
                    };
                    let credentials = match &spec.auth {
                        // One token cache per set of OAuth2 credentials, shared by
                        // every action that uses them.
                        Some(auth) => Some(match token_sources.get(auth) {
                            Some(shared) => Credentials::clone(shared),
                            None => {
                                let credentials =
                                    Credentials::from_env(auth, &client).map_err(|(variable, problem)| {
                                        RegistryError::Auth { action: action.name.clone(), variable, problem }
                                    })?;
                                token_sources.insert(auth.clone(), credentials.clone());
                                credentials
                            }
                        }),
                        None => None,
                    };
                    Runner::Http(Box::new(HttpAction::new(client.clone(), spec, signer, credentials)))
                }
            };
            entries.insert(action.name.clone(), (action.clone(), runner));
        }
        let sees_events = catalog
            .actions()
            .iter()
            .filter(|a| matches!(&a.kind, ActionKind::Http(spec) if spec.request.is_some()))
            .filter(|a| catalog.sees_events(&a.name))
            .map(|a| a.name.clone())
            .collect();
        Ok(Self { entries, sees_events })
    }

    /// The names this worker can run (it claims only those).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn action(&self, name: &str) -> Option<&Action> {
        self.entries.get(name).map(|(action, _)| action)
    }

    /// Whether jobs of `action` read their event before an attempt.
    pub fn sees_events(&self, action: &str) -> bool {
        self.sees_events.contains(action)
    }

    /// Runs the job's action once. The caller applies the timeout and catches panics.
    /// `lineage` is what its templates read as `parent.*` and `event.*`.
    pub async fn run(&self, job: &ClaimedJob, lineage: &Lineage) -> ActionOutcome {
        match self.entries.get(&job.action) {
            None => ActionOutcome::Permanent { error: format!("this worker has no action named '{}'", job.action) },
            Some((_, Runner::Noop)) => ActionOutcome::Succeeded { result: None },
            Some((action, Runner::Http(http))) => http.run(job, lineage, action.timeout).await,
        }
    }
}
