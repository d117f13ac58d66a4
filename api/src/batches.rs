//! Batches for the group-commit writers ([`crate::inserter`], [`crate::event_writer`]).
//! A writer takes everything waiting (up to the batch size) and keeps its turn while it
//! writes a batch that was not full, so one batch is in the database at a time and
//! whatever arrives meanwhile makes the next batch. Only a full batch lets another
//! writer gather at once: there is a backlog, and a second write in flight is what
//! clears it when the database is far away or slow. The price: a batch that waits (on
//! a lock another api's batch holds, on a stalled database) holds back the next until
//! its write ends or is handed off.
//!
//! Why not let writers take turns only for the gathering: on the 2-core machine, with
//! 32 clients, two writers split the requests into batches of about 7 (event deliveries
//! or `/customAction` jobs) and two statements competed for the cores; one batch at a
//! time made batches of 12 and 13 and took 25–40 % more requests per second, with a
//! lower p99 (`docs/performance-analysis.md`, "Intake").

use std::sync::Arc;

use tokio::sync::{mpsc, Mutex, OwnedMutexGuard};

/// The queue the writers share; cloned into each writer task.
pub struct Batches<T> {
    receiver: Arc<Mutex<mpsc::Receiver<T>>>,
    max: usize,
}

impl<T> Clone for Batches<T> {
    fn clone(&self) -> Self {
        Self { receiver: self.receiver.clone(), max: self.max }
    }
}

/// A writer's turn: while the writer holds the turn of a batch that was not full, no
/// other writer gathers. Drop it once the batch's write is done (or handed off).
#[must_use = "the turn must be held while the batch is written"]
pub struct Turn<T>(#[allow(dead_code)] Option<OwnedMutexGuard<mpsc::Receiver<T>>>);

impl<T> Batches<T> {
    /// Batches of at most `max` (at least 1) items from `receiver`.
    pub fn new(receiver: mpsc::Receiver<T>, max: usize) -> Self {
        Self { receiver: Arc::new(Mutex::new(receiver)), max: max.max(1) }
    }

    /// Waits for this writer's turn and for at least one item, then moves every item
    /// waiting (up to the batch size) into `batch`. `None` once the queue is closed
    /// and empty.
    pub async fn next(&self, batch: &mut Vec<T>) -> Option<Turn<T>> {
        let mut receiver = self.receiver.clone().lock_owned().await;
        if receiver.recv_many(batch, self.max).await == 0 {
            return None;
        }
        let full = batch.len() >= self.max;
        Some(Turn(if full { None } else { Some(receiver) }))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    /// Polls `future` once: whether it is ready now.
    fn ready_now<F: Future>(future: F) -> Option<F::Output> {
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn a_batch_that_was_not_full_keeps_the_turn_until_it_is_dropped() {
        let (queue, receiver) = mpsc::channel(16);
        let first = Batches::new(receiver, 4);
        let other = first.clone();
        for n in 0..2 {
            queue.send(n).await.unwrap();
        }
        let mut batch = Vec::new();
        let turn = first.next(&mut batch).await.expect("a batch");
        assert_eq!(batch, [0, 1]);
        queue.send(2).await.unwrap();
        let mut other_batch = Vec::new();
        assert!(ready_now(other.next(&mut other_batch)).is_none(), "another writer gathered during the write");
        assert!(other_batch.is_empty());
        drop(turn);
        let _turn = other.next(&mut other_batch).await.expect("a batch");
        assert_eq!(other_batch, [2]);
    }

    #[tokio::test]
    async fn a_full_batch_lets_another_writer_gather_at_once() {
        let (queue, receiver) = mpsc::channel(16);
        let first = Batches::new(receiver, 2);
        let other = first.clone();
        for n in 0..5 {
            queue.send(n).await.unwrap();
        }
        let mut batch = Vec::new();
        let _turn = first.next(&mut batch).await.expect("a batch");
        assert_eq!(batch, [0, 1]);
        let mut other_batch = Vec::new();
        let turn = ready_now(other.next(&mut other_batch)).expect("the other writer gathers at once");
        assert!(turn.is_some());
        assert_eq!(other_batch, [2, 3]);
    }

    #[tokio::test]
    async fn a_closed_empty_queue_ends_the_writers() {
        let (queue, receiver) = mpsc::channel(4);
        let batches = Batches::new(receiver, 4);
        queue.send(1).await.unwrap();
        drop(queue);
        let mut batch = Vec::new();
        drop(batches.next(&mut batch).await.expect("the item sent before closing"));
        assert_eq!(batch, [1]);
        batch.clear();
        assert!(batches.next(&mut batch).await.is_none());
    }
}
