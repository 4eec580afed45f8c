//! Persistence tasks: everything between rooms and the [`Store`]. Rooms never
//! await the database; they hand work to two background writers and hear back
//! through actor messages or oneshot channels.
//!
//! - [`doc_log`]: the doc update log writer. Appends arriving within the group
//!   commit window share one transaction; each doc room is told how far its log
//!   is durable (it relays updates only then) or that an append failed (it rolls
//!   the unstored updates back and closes their senders with 1011). Compactions
//!   go through the same queue, so they are ordered after the appends they cover.
//! - [`snapshots`]: the game snapshot writer; periodic snapshots are dropped when
//!   the queue is full (a slow database delays persistence, never a tick), final
//!   ones (eviction, shutdown) are awaited by their room.
//!
//! Both retry transient store errors with backoff for at most `retry_for`.

pub mod doc_log;
pub mod snapshots;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::warn;

use crate::store::{SnapshotMeta, Store, StoreError};

/// Settings of the persistence tasks.
#[derive(Debug, Clone)]
pub struct PersistSettings {
    /// How long one write is retried on transient errors before it fails.
    pub retry_for: Duration,
    /// Appends arriving within this window after the first share a transaction.
    pub group_commit_window: Duration,
    /// Game snapshots kept per room (older ones are pruned).
    pub snapshot_keep: usize,
    /// Doc snapshots kept per doc.
    pub doc_snapshot_keep: usize,
}

/// Handle to the store and its writers, shared by every room.
pub struct Persistence {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The doc update log writer.
    pub doc_log: doc_log::DocLog,
    /// The game snapshot writer.
    pub snapshots: snapshots::SnapshotWriter,
    /// Settings.
    pub settings: PersistSettings,
}

impl Persistence {
    /// Starts the writers on the current actix system and returns the handle plus
    /// a future that completes once both writers have drained (after every
    /// handle is dropped).
    pub fn start(
        store: Arc<dyn Store>,
        settings: PersistSettings,
    ) -> (Arc<Self>, impl Future<Output = ()>) {
        let (doc_log, doc_task) = doc_log::DocLog::start(store.clone(), settings.clone());
        let (snapshots, snap_task) =
            snapshots::SnapshotWriter::start(store.clone(), settings.clone());
        let persistence = Arc::new(Self {
            store,
            doc_log,
            snapshots,
            settings,
        });
        let drained = async move {
            let _ = doc_task.await;
            let _ = snap_task.await;
        };
        (persistence, drained)
    }
}

/// Runs `op` until it succeeds, fails for good, or transient failures have lasted
/// `retry_for` (backoff 25 ms doubling to 1 s).
pub async fn with_retry<T, F, Fut>(
    what: &str,
    retry_for: Duration,
    mut op: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(25);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && started.elapsed() + backoff < retry_for => {
                warn!(cause = %e, what, retry_in_ms = backoff.as_millis() as u64, "store write failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A room's most recent stored snapshot (game snapshot or doc compaction), as
/// its room last heard: what operators see in room listings without a query per
/// room. Shared with the futures that wait on the writers.
#[derive(Debug, Clone, Default)]
pub struct LastSnapshot(Arc<Mutex<Option<SnapshotMeta>>>);

impl LastSnapshot {
    /// Records a stored snapshot (an older one than the latest known is ignored).
    pub fn record(&self, meta: &SnapshotMeta) {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_ref().is_none_or(|l| l.id <= meta.id) {
            *last = Some(meta.clone());
        }
    }

    /// The latest stored snapshot, if any.
    pub fn get(&self) -> Option<SnapshotMeta> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits for a writer's answer, records the snapshot if it was stored, and
    /// returns the outcome (as a message on failure).
    pub fn watch(
        &self,
        answer: oneshot::Receiver<Result<SnapshotMeta, StoreError>>,
    ) -> impl Future<Output = Result<SnapshotMeta, String>> + 'static {
        let this = self.clone();
        async move {
            match answer.await {
                Ok(Ok(meta)) => {
                    this.record(&meta);
                    Ok(meta)
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the persistence writer is gone".to_owned()),
            }
        }
    }
}
