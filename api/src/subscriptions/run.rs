//! Runs a step: checks the settings, reads the catalog, asks Workfront, and writes one
//! plain line per subscription and a summary line.

use std::io::Write;

use docket::catalog::Catalog;
use docket::secret::Secret;

use super::client::{Created, Workfront};
use super::command::{Command, Step, SubscriptionsError};
use super::shape::{intake_url, plan, wanted};

/// Longest `authToken` Workfront takes (under 255 characters).
const MAX_AUTH_TOKEN_CHARS: usize = 254;

/// Runs `command`, writing its report to `out`.
pub async fn run(command: Command, out: &mut impl Write) -> Result<(), SubscriptionsError> {
    let settings = Settings::check(&command)?;
    let intake = intake_url(&settings.public_url);
    let workfront = Workfront::new(&settings.workfront_url, &settings.session).map_err(SubscriptionsError::Settings)?;
    if command.step == Step::List {
        return list(&workfront, &intake, out).await;
    }
    let catalog = Catalog::load(&command.actions)?;
    let wanted = wanted(&catalog, &intake);
    let listed = workfront.list().await?;
    let plan = plan(wanted, &listed, &intake);
    let apply = command.step == Step::Apply;
    let (mut created, mut already_there, mut deleted) = (0, 0, 0);
    // Creates first, so that a changed trigger never goes without a subscription.
    for want in &plan.create {
        let triggers = trigger_names(&want.triggers);
        if !apply {
            writeln!(out, "create {} ({triggers})", want.shape.text())?;
            continue;
        }
        match workfront.create(&want.shape, &settings.auth_token).await? {
            Created::New(id) => {
                created += 1;
                tracing::info!(subscription.id = %id, triggers, "created a Workfront event subscription");
                writeln!(out, "created {id} {} ({triggers})", want.shape.text())?;
            }
            Created::AlreadyThere => {
                already_there += 1;
                writeln!(
                    out,
                    "exists {} ({triggers}): Workfront answered 409, it is already there",
                    want.shape.text()
                )?;
            }
        }
    }
    for (subscription, reason) in &plan.delete {
        if apply {
            workfront.delete(&subscription.id).await?;
            deleted += 1;
            tracing::info!(subscription.id = %subscription.id, reason, "deleted a Workfront event subscription");
        }
        let verb = if apply { "deleted" } else { "delete" };
        writeln!(out, "{verb} {} {}: {reason}", subscription.id, subscription.shape.text())?;
    }
    let elsewhere = plan.elsewhere;
    if apply {
        writeln!(
            out,
            "apply: {created} created, {already_there} already there, {deleted} deleted, {} unchanged; \
             {elsewhere} pointing elsewhere left alone",
            plan.unchanged
        )?;
    } else {
        writeln!(
            out,
            "plan: {} to create, {} to delete, {} unchanged; {elsewhere} pointing elsewhere left alone",
            plan.create.len(),
            plan.delete.len(),
            plan.unchanged
        )?;
    }
    Ok(())
}

async fn list(workfront: &Workfront, intake: &str, out: &mut impl Write) -> Result<(), SubscriptionsError> {
    let listed = workfront.list().await?;
    let mut docket = 0;
    for subscription in &listed {
        let shape = &subscription.shape;
        let mark = if shape.url == intake {
            docket += 1;
            "docket"
        } else {
            "other "
        };
        let (id, obj, event, url, filters) =
            (&subscription.id, &shape.obj_code, &shape.event_type, &shape.url, shape.filters_text());
        writeln!(out, "{mark} {id} {obj} {event} {url} {filters}")?;
    }
    writeln!(out, "list: {} subscriptions, {docket} pointing at Docket ({intake})", listed.len())?;
    Ok(())
}

fn trigger_names(names: &[String]) -> String {
    let noun = if names.len() == 1 { "trigger" } else { "triggers" };
    format!("{noun} {}", names.join(", "))
}

/// The settings a step needs, checked.
struct Settings {
    workfront_url: url::Url,
    session: Secret,
    public_url: url::Url,
    /// The first of DOCKET_EVENT_TOKENS (`list` needs none: then empty).
    auth_token: Secret,
}

impl Settings {
    fn check(command: &Command) -> Result<Self, SubscriptionsError> {
        let bad = |message: String| SubscriptionsError::Settings(message);
        let workfront_url = http_url(
            "WORKFRONT_URL",
            command.workfront_url.as_deref(),
            "the Workfront tenant's base URL, e.g. https://acme.my.workfront.com",
        )?;
        let session = match &command.workfront_session_id {
            Some(session) if !session.expose().is_empty() => session.clone(),
            _ => {
                return Err(bad("WORKFRONT_SESSION_ID is not set: give a System Administrator's Workfront \
                                session id"
                    .into()))
            }
        };
        let public_url = http_url(
            "DOCKET_PUBLIC_URL",
            command.public_url.as_deref(),
            "Docket's public base URL as Workfront reaches it, e.g. https://docket.example.com",
        )?;
        if public_url.query().is_some() || public_url.fragment().is_some() {
            return Err(bad("DOCKET_PUBLIC_URL must not hold a query or a fragment".into()));
        }
        let auth_token = match command.event_tokens.first() {
            Some(token) if !token.expose().is_empty() => token.clone(),
            _ if command.step == Step::List => Secret::new(""),
            _ => {
                return Err(bad("DOCKET_EVENT_TOKENS is not set: the first token is given to Workfront as each \
                                subscription's authToken"
                    .into()))
            }
        };
        let token = auth_token.expose();
        if token.chars().count() > MAX_AUTH_TOKEN_CHARS || token.chars().any(char::is_control) {
            return Err(bad("the first of DOCKET_EVENT_TOKENS must be under 255 characters without control \
                            characters (Workfront's limit for authToken)"
                .into()));
        }
        Ok(Self { workfront_url, session, public_url, auth_token })
    }
}

fn http_url(name: &str, value: Option<&str>, meaning: &str) -> Result<url::Url, SubscriptionsError> {
    let bad = |message: String| SubscriptionsError::Settings(message);
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Err(bad(format!("{name} is not set: {meaning}")));
    };
    let url = url::Url::parse(text).map_err(|e| bad(format!("{name} is not a URL ({e}): {meaning}")))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(bad(format!("{name} must be an http:// or https:// URL with a host: {meaning}")));
    }
    Ok(url)
}
