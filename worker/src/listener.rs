//! Wakes the claim loop when the api announces jobs, and stops running jobs that an
//! operator cancelled (`LISTEN` on both channels), on its own direct connection. After
//! every (re)connect it wakes the loop once, since notifications sent while
//! disconnected are lost (a lost cancel is still seen at the next lease renewal).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use docket::domain::JobId;
use docket::retry::Backoff;

use crate::lease::{AbortReason, Running};

pub async fn listen(url: String, wake: Arc<Notify>, running: Running, stop: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let connected = tokio::select! {
            r = connect(&url) => r,
            _ = stop.cancelled() => return,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?wait, "cannot LISTEN for new jobs; polling meanwhile");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => return,
                }
                continue;
            }
        };
        backoff.reset();
        tracing::info!(channel = docket::JOBS_CHANNEL, "listening for new jobs");
        wake.notify_one();
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) if notification.channel() == docket::CANCEL_CHANNEL => {
                        cancel(&running, notification.payload());
                    }
                    Ok(Some(_)) => wake.notify_one(),
                    Ok(None) => {
                        tracing::warn!("LISTEN connection lost; reconnecting");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                        break;
                    }
                },
                _ = stop.cancelled() => return,
            }
        }
    }
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen_all([docket::JOBS_CHANNEL, docket::CANCEL_CHANNEL]).await?;
    Ok(listener)
}

fn cancel(running: &Running, payload: &str) {
    let Ok(id) = payload.parse::<uuid::Uuid>() else { return };
    let id = JobId(id);
    if let Some(action) = running.abort(id, AbortReason::Cancelled) {
        tracing::info!(job.id = %id, job.action = %action, "cancel requested; aborting the action");
    }
}
