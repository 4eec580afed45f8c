//! The doc update log writer (group commit). See the [parent module](super).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use actix::{Message, Recipient};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

use super::{with_retry, PersistSettings};
use crate::store::{DocUpdateRecord, SnapshotMeta, Store, StoreError};

/// Appends taken into one transaction at most.
const MAX_BATCH: usize = 1024;
/// Queued jobs before rooms wait (the queue is the backpressure on edits).
const QUEUE: usize = 8192;

/// What a doc room hears about its appends.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum DocLogResult {
    /// Every update of this doc up to and including `through_seq` is stored.
    Durable {
        /// Highest stored seq.
        through_seq: i64,
    },
    /// Updates from `from_seq` on could not be stored; later appends of this doc
    /// fail too until the room sends [`DocLog::reset`].
    Failed {
        /// First seq not stored.
        from_seq: i64,
        /// Why.
        reason: String,
    },
}

/// One queued job.
enum Job {
    /// Append one update.
    Append {
        record: DocUpdateRecord,
        notify: Recipient<DocLogResult>,
    },
    /// Fold the log through `through_seq` into a snapshot.
    Compact {
        doc: String,
        through_seq: i64,
        state: Vec<u8>,
        done: oneshot::Sender<Result<SnapshotMeta, StoreError>>,
    },
    /// The room rolled back after a failure: accept its appends again.
    Reset { doc: String },
}

/// Handle to the writer.
#[derive(Clone)]
pub struct DocLog {
    /// The writer's queue.
    jobs: mpsc::Sender<Job>,
}

impl DocLog {
    /// Starts the writer task on the current actix system.
    pub fn start(
        store: Arc<dyn Store>,
        settings: PersistSettings,
    ) -> (Self, actix_rt::task::JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let task = actix_rt::spawn(run(store, settings, rx));
        (Self { jobs }, task)
    }

    /// Queues an update without waiting; false if the queue is full or closed
    /// (the caller treats that like a failed append).
    pub fn try_append(&self, record: DocUpdateRecord, notify: Recipient<DocLogResult>) -> bool {
        self.jobs.try_send(Job::Append { record, notify }).is_ok()
    }

    /// Queues a compaction, ordered after every append queued before it.
    pub fn compact(
        &self,
        doc: String,
        through_seq: i64,
        state: Vec<u8>,
    ) -> oneshot::Receiver<Result<SnapshotMeta, StoreError>> {
        let (done, rx) = oneshot::channel();
        if let Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) =
            self.jobs.try_send(Job::Compact {
                doc,
                through_seq,
                state,
                done,
            })
        {
            if let Job::Compact { done, .. } = job {
                let _ = done.send(Err(StoreError::Unavailable(
                    "doc log queue full or closed".into(),
                )));
            }
        }
        rx
    }

    /// Lets appends of `doc` through again after the room rolled back.
    pub fn reset(&self, doc: String) {
        if self.jobs.try_send(Job::Reset { doc }).is_err() {
            error!("doc log writer queue full or gone: reset lost");
        }
    }
}

async fn run(store: Arc<dyn Store>, settings: PersistSettings, mut rx: mpsc::Receiver<Job>) {
    let mut failed: HashSet<String> = HashSet::new();
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => break,
            },
        };
        match first {
            Job::Append { record, notify } => {
                // Group commit: take further appends for a short window.
                let mut batch = vec![(record, notify)];
                let deadline = tokio::time::Instant::now() + settings.group_commit_window;
                while batch.len() < MAX_BATCH {
                    let job = match rx.try_recv() {
                        Ok(job) => Some(job),
                        Err(_) => tokio::time::timeout_at(deadline, rx.recv())
                            .await
                            .ok()
                            .flatten(),
                    };
                    match job {
                        Some(Job::Append { record, notify }) => batch.push((record, notify)),
                        Some(other) => {
                            next = Some(other);
                            break;
                        }
                        None => break,
                    }
                }
                commit(&store, &settings, &mut failed, batch).await;
            }
            Job::Compact {
                doc,
                through_seq,
                state,
                done,
            } => {
                let started = std::time::Instant::now();
                let result = with_retry("doc compaction", settings.retry_for, || {
                    store.compact_doc(&doc, through_seq, &state, settings.doc_snapshot_keep)
                })
                .await;
                crate::metrics::store_write("doc_compact", started.elapsed(), result.is_ok());
                if result.is_ok() {
                    metrics::counter!(crate::metrics::SNAPSHOTS, "kind" => "doc").increment(1);
                }
                if let Err(e) = &result {
                    error!(cause = %e, %doc, through_seq, "doc compaction failed; the log stays as it is");
                }
                let _ = done.send(result);
            }
            Job::Reset { doc } => {
                failed.remove(&doc);
            }
        }
    }
    info!("doc log writer stopped");
}

/// Commits one group of appends and tells each doc room how it went.
async fn commit(
    store: &Arc<dyn Store>,
    settings: &PersistSettings,
    failed: &mut HashSet<String>,
    batch: Vec<(DocUpdateRecord, Recipient<DocLogResult>)>,
) {
    // Appends of docs already failed are refused without a round trip.
    let (refused, batch): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|(r, _)| failed.contains(&r.doc));
    for (record, notify) in refused {
        notify.do_send(DocLogResult::Failed {
            from_seq: record.seq,
            reason: "an earlier update of this document could not be stored".into(),
        });
    }
    if batch.is_empty() {
        return;
    }
    let records: Vec<DocUpdateRecord> = batch.iter().map(|(r, _)| r.clone()).collect();
    let started = std::time::Instant::now();
    let result = with_retry("doc log append", settings.retry_for, || {
        store.append_doc_updates(&records)
    })
    .await;
    crate::metrics::store_write("doc_append", started.elapsed(), result.is_ok());
    // One notification per doc: the highest seq (success) or the lowest (failure).
    let mut per_doc: BTreeMap<String, (i64, i64, Recipient<DocLogResult>)> = BTreeMap::new();
    for (record, notify) in batch {
        per_doc
            .entry(record.doc.clone())
            .and_modify(|(lo, hi, _)| {
                *lo = (*lo).min(record.seq);
                *hi = (*hi).max(record.seq);
            })
            .or_insert((record.seq, record.seq, notify));
    }
    match result {
        Ok(()) => {
            for (_, (_, hi, notify)) in per_doc {
                notify.do_send(DocLogResult::Durable { through_seq: hi });
            }
        }
        Err(e) => {
            error!(cause = %e, docs = per_doc.len(), updates = records.len(), "doc log append failed");
            for (doc, (lo, _, notify)) in per_doc {
                failed.insert(doc);
                notify.do_send(DocLogResult::Failed {
                    from_seq: lo,
                    reason: e.to_string(),
                });
            }
        }
    }
}
