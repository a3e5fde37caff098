//! The group-committing writer of a store instance's hash chain, shared by both backends.
//!
//! `append` queues the event (a bounded queue: when it is full, callers wait for room) and waits
//! for its answer. One background task per store instance takes everything queued, up to
//! [`MAX_BATCH`], links it onto the chain (`portcullis_core::audit::chain`), writes it in one
//! transaction (registering the chain with its first batch), commits, and only then answers every
//! waiter with its sequence number. Concurrent appends therefore cost one commit between them, and
//! no request holds a lock across an await. If the commit fails, every waiter gets the error and
//! the chain's head does not move; since a failure may have come after the database committed
//! (a lost connection), the next batch first reads the chain's head back from the database.
//!
//! The task is started by the first append, on the runtime that makes it, and ends when the store
//! instance is dropped (its queue closes). Should it end early (its runtime shut down), the next
//! append starts another on the same chain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use portcullis_core::audit::SecurityEvent;
use portcullis_core::audit::chain::{self, ChainHead, ChainLink};
use portcullis_core::store::StoreError;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// The most events committed in one transaction.
pub(crate) const MAX_BATCH: usize = 256;

/// How many appends may wait for the writer before further ones wait for room.
const QUEUE: usize = 4096;

/// A chain to register with its first events.
#[derive(Debug, Clone)]
pub(crate) struct NewChain {
    pub(crate) chain_id: Uuid,
    pub(crate) started_at: OffsetDateTime,
    pub(crate) host: String,
}

/// An event with its place in the chain, ready to insert.
pub(crate) type ChainedEvent = (SecurityEvent, ChainLink);

/// A backend's side of the writer.
#[async_trait::async_trait]
pub(crate) trait ChainSink: Send + Sync + 'static {
    /// In one transaction: registers `chain` if given (and not registered yet), inserts `rows`,
    /// commits. Returns each row's sequence number, in the order of `rows`.
    async fn commit(
        &self,
        chain: Option<&NewChain>,
        rows: &[ChainedEvent],
    ) -> Result<Vec<i64>, StoreError>;

    /// The committed head of `chain_id`, `None` when it has no events.
    async fn head(&self, chain_id: Uuid) -> Result<Option<ChainHead>, StoreError>;
}

/// What the writer knows of its chain.
#[derive(Debug, Clone, Copy)]
struct ChainState {
    /// The committed head.
    head: ChainHead,
    /// Whether the chain is in the chains table.
    registered: bool,
    /// Whether a commit's outcome is unknown (it failed, or its task ended during it): the head
    /// must be read back from the database before the next batch.
    uncertain: bool,
}

struct Job {
    event: SecurityEvent,
    reply: oneshot::Sender<Result<i64, StoreError>>,
}

/// The writer of one store instance's chain. Clones share the chain and the task.
#[derive(Clone)]
pub(crate) struct ChainWriter {
    chain_id: Uuid,
    host: Arc<str>,
    sink: Arc<dyn ChainSink>,
    state: Arc<Mutex<ChainState>>,
    /// The queue of the running task; `None` before the first append.
    queue: Arc<Mutex<Option<mpsc::Sender<Job>>>>,
}

impl std::fmt::Debug for ChainWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainWriter")
            .field("chain_id", &self.chain_id)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// The failure of a batch, handed to each of its waiters.
#[derive(Debug, thiserror::Error)]
#[error("the security events could not be committed: {0}")]
struct BatchFailed(String);

/// The writer task is gone and took the answer with it.
#[derive(Debug, thiserror::Error)]
#[error("the security-event writer stopped")]
struct WriterStopped;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ChainWriter {
    /// A writer of a new chain onto `sink`.
    pub(crate) fn new(sink: Arc<dyn ChainSink>) -> Self {
        let chain_id = Uuid::new_v4();
        Self {
            chain_id,
            host: host_label().into(),
            sink,
            state: Arc::new(Mutex::new(ChainState {
                head: ChainHead::genesis(chain_id),
                registered: false,
                uncertain: false,
            })),
            queue: Arc::new(Mutex::new(None)),
        }
    }

    /// The committed head, once the chain has events.
    pub(crate) fn head(&self) -> Option<ChainHead> {
        let state = *lock(&self.state);
        (state.head.chain_seq > 0).then_some(state.head)
    }

    /// Appends `event` and waits until it is committed.
    pub(crate) async fn append(&self, event: &SecurityEvent) -> Result<i64, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            event: event.clone(),
            reply,
        };
        self.queue()
            .send(job)
            .await
            .map_err(|_| StoreError::Backend(Box::new(WriterStopped)))?;
        answer
            .await
            .map_err(|_| StoreError::Backend(Box::new(WriterStopped)))?
    }

    /// The running task's queue, starting the task if there is none.
    fn queue(&self) -> mpsc::Sender<Job> {
        let mut queue = lock(&self.queue);
        if let Some(sender) = queue.as_ref().filter(|s| !s.is_closed()) {
            return sender.clone();
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(
            receiver,
            self.sink.clone(),
            self.state.clone(),
            NewChain {
                chain_id: self.chain_id,
                started_at: OffsetDateTime::UNIX_EPOCH,
                host: self.host.to_string(),
            },
        ));
        *queue = Some(sender.clone());
        sender
    }
}

/// The task: batches until the queue closes. It holds neither the queue's sender nor the writer,
/// so that dropping the store ends it.
async fn run(
    mut receiver: mpsc::Receiver<Job>,
    sink: Arc<dyn ChainSink>,
    state: Arc<Mutex<ChainState>>,
    chain: NewChain,
) {
    while let Some(first) = receiver.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        commit(sink.as_ref(), &state, &chain, jobs).await;
    }
}

/// Links, commits and answers one batch.
async fn commit(sink: &dyn ChainSink, state: &Mutex<ChainState>, chain: &NewChain, jobs: Vec<Job>) {
    let mut current = *lock(state);
    if current.uncertain {
        match sink.head(chain.chain_id).await {
            Ok(head) => {
                current = ChainState {
                    head: head.unwrap_or_else(|| ChainHead::genesis(chain.chain_id)),
                    registered: current.registered || head.is_some(),
                    uncertain: false,
                };
                *lock(state) = current;
            }
            Err(error) => return fail(jobs, &error),
        }
    }
    let mut head = current.head;
    let rows: Vec<ChainedEvent> = jobs
        .iter()
        .map(|job| {
            let event = chain::storable(&job.event);
            let link = head.link(&event);
            head = link.head();
            (event, link)
        })
        .collect();
    let register = match rows.first() {
        Some((first, _)) if !current.registered => Some(NewChain {
            started_at: first.occurred_at,
            ..chain.clone()
        }),
        _ => None,
    };
    // Until the answer is in, the outcome is unknown: a task dropped meanwhile leaves it so.
    lock(state).uncertain = true;
    let committed = match sink.commit(register.as_ref(), &rows).await {
        Ok(seqs) if seqs.len() == rows.len() => seqs,
        Ok(_) => {
            let error =
                StoreError::Corrupt("security_events: the insert did not return every row".into());
            return fail(jobs, &error);
        }
        Err(error) => return fail(jobs, &error),
    };
    *lock(state) = ChainState {
        head,
        registered: true,
        uncertain: false,
    };
    for (job, seq) in jobs.into_iter().zip(committed) {
        // A waiter that gave up (its request was cancelled) needs no answer: the event stands.
        let _ = job.reply.send(Ok(seq));
    }
}

fn fail(jobs: Vec<Job>, error: &StoreError) {
    let message = portcullis_core::error::with_causes(error);
    tracing::error!(error = %message, events = jobs.len(), "security events not committed");
    for job in jobs {
        let _ = job.reply.send(Err(StoreError::Backend(Box::new(BatchFailed(
            message.clone(),
        )))));
    }
}

/// Maps the sequence numbers an insert returned, by chain position, back onto `rows`' order.
pub(crate) fn in_row_order(
    rows: &[ChainedEvent],
    returned: Vec<(i64, i64)>,
) -> Result<Vec<i64>, StoreError> {
    let by_position: HashMap<i64, i64> = returned
        .into_iter()
        .map(|(seq, chain_seq)| (chain_seq, seq))
        .collect();
    rows.iter()
        .map(|(_, link)| {
            by_position.get(&link.chain_seq).copied().ok_or_else(|| {
                StoreError::Corrupt("security_events: the insert did not return every row".into())
            })
        })
        .collect()
}

/// The host and process a chain is written by, for the chains table: the host name (from
/// `HOSTNAME`, else the kernel's) and the process id.
fn host_label() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{host} pid {}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A sink in memory that can be told to fail, and records batch sizes.
    #[derive(Default)]
    struct Memory {
        rows: Mutex<Vec<ChainedEvent>>,
        chains: Mutex<Vec<NewChain>>,
        batches: Mutex<Vec<usize>>,
        fail: AtomicBool,
        heads_read: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl ChainSink for Memory {
        async fn commit(
            &self,
            chain: Option<&NewChain>,
            rows: &[ChainedEvent],
        ) -> Result<Vec<i64>, StoreError> {
            // Let other appends queue up meanwhile, as a database round trip would.
            tokio::task::yield_now().await;
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("the database is down".into()));
            }
            if let Some(chain) = chain {
                lock(&self.chains).push(chain.clone());
            }
            lock(&self.batches).push(rows.len());
            let mut stored = lock(&self.rows);
            let first = i64::try_from(stored.len()).unwrap() + 1;
            stored.extend_from_slice(rows);
            Ok((first..).take(rows.len()).collect())
        }

        async fn head(&self, _chain_id: Uuid) -> Result<Option<ChainHead>, StoreError> {
            self.heads_read.fetch_add(1, Ordering::SeqCst);
            Ok(lock(&self.rows).last().map(|(_, link)| link.head()))
        }
    }

    fn event(n: usize) -> SecurityEvent {
        SecurityEvent::new(
            OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            "system",
            "test.event",
            Some(n.to_string()),
            serde_json::Map::new(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_are_committed_together_in_one_contiguous_chain() {
        let sink = Arc::new(Memory::default());
        let writer = ChainWriter::new(sink.clone());
        assert_eq!(writer.head(), None);
        let tasks: Vec<_> = (0..500)
            .map(|n| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.append(&event(n)).await.unwrap() })
            })
            .collect();
        let mut seqs = Vec::new();
        for task in tasks {
            seqs.push(task.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=500).collect::<Vec<i64>>());
        let rows = lock(&sink.rows);
        let mut head = ChainHead::genesis(writer.chain_id);
        for (event, link) in rows.iter() {
            assert_eq!(*link, head.link(event));
            head = link.head();
        }
        assert_eq!(writer.head(), Some(head));
        assert_eq!(head.chain_seq, 500);
        // Registered once, with the first batch; batches were shared and bounded.
        assert_eq!(lock(&sink.chains).len(), 1);
        let batches = lock(&sink.batches);
        assert!(batches.len() < 500, "{batches:?}");
        assert!(batches.iter().all(|n| *n <= MAX_BATCH), "{batches:?}");
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_waiter_and_leaves_the_head() {
        let sink = Arc::new(Memory::default());
        let writer = ChainWriter::new(sink.clone());
        writer.append(&event(1)).await.unwrap();
        let head = writer.head().unwrap();
        sink.fail.store(true, Ordering::SeqCst);
        let (two, three) = (event(2), event(3));
        let (a, b) = tokio::join!(writer.append(&two), writer.append(&three));
        assert!(matches!(a, Err(StoreError::Backend(_))));
        assert!(matches!(b, Err(StoreError::Backend(_))));
        assert_eq!(writer.head(), Some(head));
        // Once the database is back, the chain goes on from its committed head, read back first.
        sink.fail.store(false, Ordering::SeqCst);
        assert_eq!(writer.append(&event(4)).await.unwrap(), 2);
        assert_eq!(sink.heads_read.load(Ordering::SeqCst), 1);
        let rows = lock(&sink.rows);
        assert_eq!(rows[1].1.chain_seq, 2);
        assert_eq!(rows[1].1.prev_hash, head.hash);
        assert_eq!(lock(&sink.chains).len(), 1);
    }
}
