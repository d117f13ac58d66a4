//! `docket-api workfront-subscriptions list|plan|apply`: Workfront's event
//! subscriptions follow the catalog. Docket wants one subscription per `[[trigger]]`,
//! pointing at its intake (`{DOCKET_PUBLIC_URL}/workfront/events`); `plan` compares that
//! with what the tenant holds, `apply` creates what is missing and deletes Docket's
//! subscriptions that no trigger wants.
//!
//! Invariant: a subscription whose `url` is not Docket's intake URL is never touched.

pub mod client;
mod command;
mod run;
mod shape;

pub use client::{Created, Workfront, WorkfrontError};
pub use command::{Command, Step, SubscriptionsError, COMMAND};
pub use run::run;
pub use shape::{intake_url, plan, wanted, FilterShape, Listed, Plan, Shape, Wanted, INTAKE_PATH};

#[cfg(test)]
mod tests;
