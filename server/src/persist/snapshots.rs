//! The game snapshot writer. See the [parent module](super).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::{with_retry, PersistSettings};
use crate::store::{NewGameSnapshot, SnapshotMeta, Store, StoreError};

/// Snapshots waiting to be written before periodic ones are dropped.
const QUEUE: usize = 1024;

/// One queued snapshot.
struct Job {
    /// What to write.
    snapshot: NewGameSnapshot,
    /// Told the outcome, for snapshots their room waits on.
    done: Option<oneshot::Sender<Result<SnapshotMeta, StoreError>>>,
}

/// Handle to the writer.
#[derive(Clone)]
pub struct SnapshotWriter {
    /// The writer's queue.
    jobs: mpsc::Sender<Job>,
}

impl SnapshotWriter {
    /// Starts the writer task on the current actix system.
    pub fn start(
        store: Arc<dyn Store>,
        settings: PersistSettings,
    ) -> (Self, actix_rt::task::JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let task = actix_rt::spawn(run(store, settings, rx));
        (Self { jobs }, task)
    }

    /// Queues a periodic snapshot; dropped (and logged) if the writer is behind.
    /// Returns where its outcome will arrive, when it was queued.
    pub fn save(
        &self,
        snapshot: NewGameSnapshot,
    ) -> Option<oneshot::Receiver<Result<SnapshotMeta, StoreError>>> {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.jobs.try_send(Job {
            snapshot,
            done: Some(done),
        }) {
            let (game, room) = match &e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => {
                    (j.snapshot.game.clone(), j.snapshot.room.clone())
                }
            };
            warn!(%game, %room, "snapshot writer is behind; periodic snapshot skipped");
            return None;
        }
        Some(rx)
    }

    /// Queues a snapshot and returns where its outcome will arrive.
    pub fn save_and_confirm(
        &self,
        snapshot: NewGameSnapshot,
    ) -> oneshot::Receiver<Result<SnapshotMeta, StoreError>> {
        let (done, rx) = oneshot::channel();
        if let Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) =
            self.jobs.try_send(Job {
                snapshot,
                done: Some(done),
            })
        {
            if let Some(done) = job.done {
                let _ = done.send(Err(StoreError::Unavailable(
                    "snapshot queue full or closed".into(),
                )));
            }
        }
        rx
    }
}

async fn run(store: Arc<dyn Store>, settings: PersistSettings, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.recv().await {
        let snapshot = &job.snapshot;
        let started = std::time::Instant::now();
        let result = with_retry("game snapshot", settings.retry_for, || {
            store.save_game_snapshot(snapshot, settings.snapshot_keep)
        })
        .await;
        crate::metrics::store_write("game_snapshot", started.elapsed(), result.is_ok());
        if result.is_ok() {
            metrics::counter!(crate::metrics::SNAPSHOTS, "kind" => "game").increment(1);
        }
        if let Err(e) = &result {
            error!(cause = %e, game = %snapshot.game, room = %snapshot.room, tick = snapshot.tick, "game snapshot not saved");
        }
        if let Some(done) = job.done {
            let _ = done.send(result);
        }
    }
    info!("game snapshot writer stopped");
}
