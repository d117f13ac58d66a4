//! The command line of `docket-api workfront-subscriptions` and its errors.

use std::path::PathBuf;

use docket::catalog::CatalogError;
use docket::secret::Secret;

use super::client::WorkfrontError;

/// The first argument of `docket-api` that selects this command.
pub const COMMAND: &str = "workfront-subscriptions";

/// Keeps Workfront's event subscriptions in step with the catalog's `[[trigger]]`s.
#[derive(Debug, clap::Parser)]
#[command(name = "docket-api workfront-subscriptions", version)]
pub struct Command {
    /// `list`: every subscription of the tenant, Docket's marked; `plan`: what `apply`
    /// would create and delete (changes nothing); `apply`: do it.
    #[arg(value_enum)]
    pub step: Step,

    /// The action catalog (TOML): one subscription per `[[trigger]]`.
    #[arg(long, env = "DOCKET_ACTIONS", default_value = "./actions.toml")]
    pub actions: PathBuf,

    /// The Workfront tenant's base URL, e.g. https://acme.my.workfront.com. Required.
    #[arg(long, env = "WORKFRONT_URL")]
    pub workfront_url: Option<String>,

    /// A Workfront session id of a System Administrator, sent as the `sessionID`
    /// header. Required; never printed.
    #[arg(long, env = "WORKFRONT_SESSION_ID", hide_env_values = true)]
    pub workfront_session_id: Option<Secret>,

    /// Docket's public base URL as Workfront reaches it; deliveries go to
    /// `{this}/workfront/events`. Required.
    #[arg(long, env = "DOCKET_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Comma-separated tokens Docket's intake accepts; the first is each new
    /// subscription's `authToken`. Required by `plan` and `apply`; never printed.
    #[arg(long, env = "DOCKET_EVENT_TOKENS", value_delimiter = ',', hide_env_values = true)]
    pub event_tokens: Vec<Secret>,
}

/// What the command does; only `apply` changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    List,
    Plan,
    Apply,
}

/// Why the command failed; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionsError {
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Workfront(#[from] WorkfrontError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl SubscriptionsError {
    /// 2 for bad settings or catalog, 1 for a Workfront failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Settings(_) | Self::Catalog(_) => 2,
            Self::Workfront(_) | Self::Output(_) => 1,
        }
    }
}
