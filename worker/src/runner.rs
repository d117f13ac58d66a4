//! The worker's main loop: claim as many due jobs as there are free slots, run each in
//! its own task, hand results to the completer; wake on NOTIFY, a freed slot, a retry
//! of its own coming due or the poll interval; rescue expired leases; stop gracefully.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use docket::catalog::{Catalog, CatalogError, LimitGroup};
use docket::db::flow::{self, FlowRules};
use docket::db::jobs;
use docket::db::{self, Db, Pooler, SetupError};
use docket::domain::JobState;

use crate::actions::Registry;
use crate::claim_loop::ClaimLoop;
use crate::completer;
use crate::config::{default_worker_id, Config, MAX_PREFETCH, PREFETCH_PER_SLOT};
use crate::due::Due;
use crate::execute::JobContext;
use crate::lease::{self, AbortReason, Running};
use crate::listener;
use crate::upkeep;

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Database(#[from] SetupError),
    #[error(transparent)]
    Registry(#[from] crate::actions::RegistryError),
    #[error("cannot write the catalog's limit groups to the database: {0}")]
    Limits(#[source] sqlx::Error),
    #[error("DOCKET_WORKER_ID must be 1-255 characters without control characters")]
    WorkerId,
    #[error(
        "DOCKET_DB_POOLER=transaction needs DOCKET_LISTEN_DATABASE_URL: a transaction-mode pooler cannot \
         LISTEN, so notifications must come over a direct connection to Postgres"
    )]
    ListenUrl,
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
}

/// A worker, connected and migrated, not yet running.
pub struct Worker {
    db: Db,
    listen_url: String,
    id: String,
    concurrency: usize,
    /// Most claimed jobs waiting for a slot (`DOCKET_WORKER_PREFETCH`).
    prefetch: usize,
    lease: Duration,
    poll_interval: Duration,
    rescue_interval: Duration,
    shutdown_grace: Duration,
    registry: Arc<Registry>,
    /// The catalog's follow-up rules, passed with every statement that ends jobs.
    follow_ups: Arc<jobs::FollowUpRules>,
    /// The catalog's limit groups (claimed through `docket_claim_group`) and what
    /// flow control hears about the ends of attempts.
    limit_groups: Vec<LimitGroup>,
    flow: Arc<FlowRules>,
    /// Taken by the health server when the worker runs.
    health: Option<tokio::net::TcpListener>,
    heartbeat: Duration,
    retention: upkeep::Retention,
}

impl Worker {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let catalog = Catalog::load(&config.actions)?;
        let registry = Registry::from_catalog(&catalog)?;
        let id = config.worker_id.clone().unwrap_or_else(default_worker_id);
        docket::domain::check_text(&id, 255).map_err(|_| StartError::WorkerId)?;
        let settings = config.db.pool_settings(config.db_connections);
        if settings.pooler == Pooler::Transaction && config.listen_database_url.is_none() {
            return Err(StartError::ListenUrl);
        }
        let db = db::connect_and_migrate(config.database_url.expose(), &settings).await?;
        db.run(async |c| flow::configure(c, catalog.limit_groups()).await).await.map_err(StartError::Limits)?;
        let health = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind { addr: config.addr, source })?;
        Ok(Self {
            db,
            listen_url: config.listen_database_url.unwrap_or(config.database_url).expose().to_owned(),
            id,
            concurrency: config.concurrency as usize,
            prefetch: config.prefetch.unwrap_or((PREFETCH_PER_SLOT * config.concurrency).min(MAX_PREFETCH)) as usize,
            lease: config.lease,
            poll_interval: config.poll_interval,
            rescue_interval: config.rescue_interval,
            shutdown_grace: config.shutdown_grace,
            registry: Arc::new(registry),
            follow_ups: Arc::new(jobs::FollowUpRules::from_catalog(&catalog)),
            limit_groups: catalog.limit_groups().to_vec(),
            flow: Arc::new(FlowRules::from_catalog(&catalog)),
            health: Some(health),
            heartbeat: config.heartbeat,
            retention: upkeep::Retention {
                succeeded: config.retention_succeeded,
                failed: config.retention_failed,
                events: config.retention_events,
                interval: config.retention_interval,
            },
        })
    }

    /// Runs until `shutdown` is cancelled, then drains: no new claims, running jobs get
    /// the grace period, whatever still runs after it is released to other workers.
    pub async fn run_until_stopped(mut self, shutdown: CancellationToken) {
        let actions = self.registry.names();
        publish_zero_metrics(&actions, self.concurrency);
        let health_addr =
            self.health.as_ref().and_then(|h| h.local_addr().ok()).map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(worker.id = %self.id, concurrency = self.concurrency, prefetch = self.prefetch, ?actions, health.addr = %health_addr, "docket-worker started");
        let background = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let running = Running::default();
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        let due = Arc::new(Due::default());
        let written = Arc::new(Notify::new());
        let completer = completer::Completer {
            db: self.db.clone(),
            worker_id: self.id.clone(),
            due: due.clone(),
            running: running.clone(),
            lease: self.lease,
            rules: self.follow_ups.clone(),
            flow: self.flow.clone(),
            written: written.clone(),
        };
        let completer = tokio::spawn(completer.record(finished_rx));
        let helpers = self.spawn_helpers(&actions, &wake, &running, &background);

        let shared = Arc::new(JobContext {
            db: self.db.clone(),
            registry: self.registry.clone(),
            running: running.clone(),
            finished: finished_tx,
            slot_freed: Arc::new(Notify::new()),
            pace: Default::default(),
            flow: self.flow.clone(),
            held_back: Default::default(),
        });
        let limited: Vec<&String> = self.limit_groups.iter().flat_map(|g| &g.actions).collect();
        let claims = ClaimLoop {
            db: self.db.clone(),
            worker_id: self.id.clone(),
            lease: self.lease,
            poll_interval: self.poll_interval,
            concurrency: self.concurrency,
            prefetch: self.prefetch,
            plain: actions.iter().filter(|a| !limited.contains(a)).cloned().collect(),
            groups: self.limit_groups.clone(),
            flow: self.flow.clone(),
            shared: shared.clone(),
            wake: wake.clone(),
            due: due.clone(),
            written,
        };
        let jobs_tasks = TaskTracker::new();
        claims.run(&jobs_tasks, &shutdown).await;

        drain(&jobs_tasks, &running, self.shutdown_grace).await;
        drop(shared);
        // Results are written while the lease keeper still renews their leases.
        let _ = completer.await;
        background.cancel();
        helpers.close();
        helpers.wait().await;
        self.db.close().await;
        tracing::info!("docket-worker stopped");
    }
}

impl Worker {
    /// The tasks that run beside the claim loop until `stop`: the listener, the lease
    /// keeper, the health server, heartbeat, pruning and the rescuer.
    fn spawn_helpers(
        &mut self,
        actions: &[String],
        wake: &Arc<Notify>,
        running: &Running,
        stop: &CancellationToken,
    ) -> TaskTracker {
        let helpers = TaskTracker::new();
        helpers.spawn(listener::listen(self.listen_url.clone(), wake.clone(), running.clone(), stop.clone()));
        helpers.spawn(lease::keep_leases(self.db.clone(), self.id.clone(), running.clone(), self.lease, stop.clone()));
        if let Some(health) = self.health.take() {
            helpers.spawn(crate::health::serve(health, self.db.clone(), stop.clone()));
        }
        let me = docket::db::workers::NewWorker {
            id: self.id.clone(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id() as i32,
            version: docket::VERSION.to_owned(),
            actions: actions.to_vec(),
            concurrency: self.concurrency as i32,
        };
        helpers.spawn(upkeep::heartbeat(self.db.clone(), me, self.heartbeat, stop.clone()));
        helpers.spawn(upkeep::prune(self.db.clone(), self.retention, stop.clone()));
        helpers.spawn(rescue_loop(
            self.db.clone(),
            self.follow_ups.clone(),
            self.rescue_interval,
            lease::renewal_period(self.lease) * 2,
            wake.clone(),
            stop.clone(),
        ));
        helpers
    }
}

/// Stops taking jobs: running ones get the grace period; whatever still runs after
/// it is aborted and released to other workers.
async fn drain(jobs_tasks: &TaskTracker, running: &Running, grace: Duration) {
    tracing::info!(running = running.len(), ?grace, "stopping: no new claims");
    jobs_tasks.close();
    if tokio::time::timeout(grace, jobs_tasks.wait()).await.is_err() {
        tracing::warn!(running = running.len(), "grace period over; stopping running jobs and releasing them");
        running.abort_all(AbortReason::Shutdown);
        jobs_tasks.wait().await;
    }
}

/// Takes back jobs whose lease expired, every `interval`, and wakes every worker's
/// claim loop when it did.
///
/// After this worker could not reach the database, it waits `after_outage` (two
/// lease renewals) from the moment the database answers again before it rescues:
/// the outage may have stopped every worker's renewals, and a live owner then gets
/// the time to renew its leases or write its results instead of having its
/// finished jobs taken from it and run again.
async fn rescue_loop(
    db: Db,
    rules: Arc<jobs::FollowUpRules>,
    interval: Duration,
    after_outage: Duration,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut unreachable = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
        if unreachable {
            if db.run(async |c| docket::db::admin::ping(c).await).await.is_err() {
                continue;
            }
            tracing::info!(wait = ?after_outage, "database reachable again; giving lease owners time to renew before rescuing");
            tokio::select! {
                _ = tokio::time::sleep(after_outage) => {}
                _ = stop.cancelled() => return,
            }
            unreachable = false;
        }
        match db::retry_transient(|| db.run(async |c| jobs::rescue_expired(c, 1000, &rules).await)).await {
            Ok(rescued) => {
                metrics::counter!("docket_jobs_rescued_total").increment(rescued.len() as u64);
                for job in &rescued {
                    let next = match job.state {
                        JobState::Failed => "failed (no attempts left)",
                        JobState::Cancelled => "cancelled (an operator had asked it to stop)",
                        _ => "retrying",
                    };
                    tracing::warn!(job.id = %job.id, job.action = %job.action, previous_owner = %job.previous_owner, next, "rescued job with an expired lease");
                }
                if rescued.iter().any(|job| job.state == JobState::Retrying) {
                    // Every worker, not only this one: workers with other catalogs may be
                    // the ones that run these actions.
                    if let Err(e) = db.run(async |c| jobs::notify(c).await).await {
                        tracing::warn!(error = %e, "could not notify workers of rescued jobs");
                    }
                    wake.notify_one();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not rescue expired leases");
                unreachable = !db::is_transient(&e);
            }
        }
    }
}

/// Every series the worker publishes, with its starting value, so that dashboards and
/// `absent()`/`rate()` alerts see them from the first scrape, before any job ran.
fn publish_zero_metrics(actions: &[String], concurrency: usize) {
    docket::metrics::handle();
    docket::metrics::publish_build_info();
    metrics::gauge!("docket_worker_running_jobs").set(0.0);
    metrics::gauge!("docket_worker_queued_jobs").set(0.0);
    metrics::gauge!("docket_worker_concurrency").set(concurrency as f64);
    metrics::counter!("docket_jobs_rescued_total").absolute(0);
    for action in actions {
        for reason in ["concurrency", "rate", "retry_after"] {
            metrics::counter!("docket_action_throttled_total", "action" => action.clone(), "reason" => reason)
                .absolute(0);
        }
        for outcome in docket::domain::AttemptOutcome::ALL {
            metrics::counter!("docket_attempts_total", "action" => action.clone(), "outcome" => outcome.as_str())
                .absolute(0);
        }
    }
}
