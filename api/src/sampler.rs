//! Samples the queue into `queue_samples` every `DOCKET_API_SAMPLE_INTERVAL`: what the
//! dashboard's charts draw, so that no page load counts jobs over hours. With several
//! apis, one samples at a time (the others skip the round); `0s` turns it off.

use std::time::Duration;

use docket::db::{ops, samples, Db};

use crate::state::QUERY_TIMEOUT;

pub fn spawn(db: Db, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sample(&db).await {
                tracing::warn!(error = %e, "could not sample the queue for the dashboard");
            }
        }
    });
}

async fn sample(db: &Db) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
    samples::record(&mut tx).await?;
    tx.commit().await
}
