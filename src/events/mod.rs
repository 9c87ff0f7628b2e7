//! Open, pixel and click events: appended to the `events:opens` stream and folded into the
//! subscriber's `email` context field, so every other channel sees the email's activity.
//!
//! Recording never delays an answer: [`EventRecorder::record`] only puts the event on a bounded
//! queue. One writer task drains the queue in batches (one pipelined round trip per batch).
//! Only a full queue drops events, counted in `opentime_events_dropped_total`. At shutdown the
//! server [`EventRecorder::flush`]es the queue within the grace period.
//!
//! Why the writer is built the way it is:
//!
//! - **A bad event fails alone.** A sink reports each event's outcome ([`Written`]): an event
//!   the store refused (a context that is not a hash, a wrong-type stream, out of memory, a
//!   script error) is dropped and counted in `opentime_events_failed_total{reason}`, the others
//!   are written. Retrying such a batch would never succeed: the writer would wedge on it while
//!   the queue fills up and drops real opens.
//! - **Only "don't know" retries.** When the sink cannot tell what happened (the store is
//!   unreachable, the connection dropped mid-batch, a timeout, a store that is loading or
//!   read-only) it returns an error and the writer retries the whole batch with backoff.
//! - **A retry never counts twice.** Every batch gets a [`BatchId`] when it is drained — this
//!   process's writer id and a sequence number that grows by one per batch — and keeps it
//!   through its retries. The writer sends batches strictly one after the other, so a sink
//!   remembers per writer only the highest sequence it applied (Redis keeps it next to the data
//!   it guards; the embedded store writes a batch in one transaction): a batch that was applied
//!   but whose answer was lost is skipped on the retry instead of being written again. Delivery
//!   is therefore effectively once, as long as the retry comes within the sink's memory of the
//!   writer (an hour of that writer's silence, for Redis). Every event also carries a unique
//!   [`Event::id`] in its stream entry, for consumers.

mod email_field;

pub(crate) use email_field::apply as apply_to_email_field;

use crate::metrics::Metrics;
use crate::sources::mail_clients::Client;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The Redis stream every event is appended to.
pub(crate) const STREAM_KEY: &str = "events:opens";
/// Most events written in one round trip.
const BATCH: usize = 256;
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    #[error("event store error: {0}")]
    Backend(String),
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An image block was fetched.
    Open,
    /// The tracking pixel `/open/{campaign}.gif` was fetched.
    Pixel,
    /// A click-through.
    Click,
    /// A poll vote (`block` is the poll's name).
    Vote,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Open => "open",
            EventKind::Pixel => "pixel",
            EventKind::Click => "click",
            EventKind::Vote => "vote",
        }
    }
}

/// A new event id, unique across processes: [`process_id`], then a counter.
fn next_event_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}-{n:x}", process_id())
}

/// A random number drawn once per process: names this process's events and its event writer.
fn process_id() -> u64 {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    *PROCESS.get_or_init(|| {
        // The standard library's hasher keys are random per process (from the OS).
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        hasher.write_u32(std::process::id());
        hasher.finish()
    })
}

/// Names one batch of events through all its retries: the writer that drained it (one per
/// process) and its place in that writer's sequence. A writer sends its batches one after the
/// other, so a batch whose `seq` is not above the last one a sink applied for `writer` was
/// applied already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchId {
    pub writer: u64,
    pub seq: u64,
}

impl BatchId {
    /// The writer as text (a hash field name in Redis).
    pub fn writer_name(&self) -> String {
        format!("{:016x}", self.writer)
    }
}

/// One event, as written to the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique per event (see [`Event::now`]); a sink applies an id at most once, so a batch
    /// written again after a lost answer does not count twice.
    pub id: String,
    pub kind: EventKind,
    pub campaign: String,
    /// Empty for the pixel.
    pub block: String,
    /// Verified subscriber id; `None` for shared blocks (no `email` field update then).
    pub subscriber: Option<String>,
    pub at: DateTime<Utc>,
    /// Client kind of the fetcher (see `crate::open::opener`).
    pub client: &'static str,
    /// Whether a machine fetched rather than a person (a scanner, a link previewer, Apple's
    /// or Gmail's prefetch, a HEAD request): never counted as an open or a click.
    pub machine: bool,
    /// The rule that classified the fetcher (`apple-mpp-user-agent`, `head-request`, …).
    pub evidence: std::sync::Arc<str>,
    /// Clicks: the item index asked for.
    pub item: Option<usize>,
    /// Clicks: `item` when the item's link was used, `default` when the block's default was,
    /// `variant` when the link of the variant the open showed was.
    pub link: Option<&'static str>,
    /// Opens and clicks of a block with variants: the variant shown.
    pub variant: Option<String>,
    /// Votes: the option chosen.
    pub option: Option<String>,
    /// Votes: whether it counted (a first vote, or a change the poll allows).
    pub counted: Option<bool>,
}

impl Event {
    /// The subscriber whose `email` field the event updates, if it has a valid one.
    pub fn subscriber_id(&self) -> Option<crate::context::SubscriberId> {
        self.subscriber
            .as_deref()
            .and_then(|s| crate::context::SubscriberId::parse(s).ok())
    }

    /// An event happening now, fetched by `client` (a machine's fetch or a person's).
    pub fn now(
        kind: EventKind,
        campaign: &str,
        block: &str,
        subscriber: Option<&str>,
        client: &Client,
    ) -> Self {
        Self {
            id: next_event_id(),
            kind,
            campaign: campaign.to_owned(),
            block: block.to_owned(),
            subscriber: subscriber.map(str::to_owned),
            at: Utc::now(),
            client: client.kind.as_str(),
            machine: client.machine,
            evidence: std::sync::Arc::clone(&client.evidence),
            item: None,
            link: None,
            variant: None,
            option: None,
            counted: None,
        }
    }

    /// The stream entry's fields, in a fixed order (documented for consumers). `prefetch`
    /// says the same as `machine` (consumers written before `machine` read it); `id` comes
    /// last.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("type", self.kind.as_str().to_owned()),
            ("campaign", self.campaign.clone()),
            ("block", self.block.clone()),
            ("subscriber", self.subscriber.clone().unwrap_or_default()),
            ("at", self.at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            ("client", self.client.to_owned()),
            ("prefetch", flag(self.machine)),
            ("machine", flag(self.machine)),
            ("evidence", self.evidence.to_string()),
        ];
        if let Some(item) = self.item {
            fields.push(("item", item.to_string()));
        }
        if let Some(link) = self.link {
            fields.push(("link", link.to_owned()));
        }
        if let Some(variant) = &self.variant {
            fields.push(("variant", variant.clone()));
        }
        if let Some(option) = &self.option {
            fields.push(("option", option.clone()));
        }
        if let Some(counted) = self.counted {
            fields.push(("counted", flag(counted)));
        }
        fields.push(("id", self.id.clone()));
        fields
    }
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_owned()
}

/// An event of a batch the store refused: it is dropped, not retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its index in the batch.
    pub index: usize,
    /// Why, as a metric label: a small fixed set (`wrong-type`, `out-of-memory`, …).
    pub reason: &'static str,
}

/// What a sink did with a batch it could write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    /// Events the store refused (each alone; the rest are in).
    pub refused: Vec<Refused>,
    /// Events skipped because their id was applied already (an earlier attempt got through).
    pub duplicates: usize,
}

/// Where the writer task puts batches of events: Redis or the embedded store.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Appends `batch` to the stream (capped near `max_len`) and updates each subscriber's
    /// `email` field. `Ok` says what became of each event: written, refused (dropped), or
    /// already applied. `Err` means the outcome is unknown (the store is unreachable or the
    /// connection dropped mid-batch): the writer then sends the same batch with the same `id`
    /// again, so writing a batch whose id was applied before must change nothing.
    async fn write(
        &self,
        batch: &[Event],
        id: BatchId,
        max_len: u64,
    ) -> Result<Written, EventError>;
}

/// The sending side of the event queue; cheap to call from any request.
pub struct EventRecorder {
    queue: mpsc::Sender<Event>,
    /// Asks the writer to write everything queued so far, then answer (used at shutdown).
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    metrics: Arc<Metrics>,
}

impl EventRecorder {
    /// Starts the writer task for `sink` and returns the recorder feeding it.
    pub fn start(
        sink: Arc<dyn EventSink>,
        capacity: usize,
        max_len: u64,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let (flushes, flush_requests) = mpsc::channel(4);
        let writer = Writer {
            sink,
            max_len,
            metrics: Arc::clone(&metrics),
            batches: AtomicU64::new(0),
        };
        tokio::spawn(writer.run(receiver, flush_requests));
        Self {
            queue,
            flushes,
            metrics,
        }
    }

    /// Waits until every event recorded so far is written, or `limit` passes (the store may be
    /// down); returns whether all were written. Called once the server stops accepting.
    pub async fn flush(&self, limit: Duration) -> bool {
        let (done, written) = oneshot::channel();
        let asked = async { self.flushes.send(done).await.is_ok() && written.await.is_ok() };
        tokio::time::timeout(limit, asked).await.unwrap_or(false)
    }

    /// Queues an event; when the queue is full the event is dropped and counted.
    pub fn record(&self, event: Event) {
        if self.queue.try_send(event).is_err() {
            self.metrics.events_dropped.inc();
        } else {
            self.metrics.events_queued.inc();
        }
    }
}

/// The task that drains the queue into the sink.
struct Writer {
    sink: Arc<dyn EventSink>,
    max_len: u64,
    metrics: Arc<Metrics>,
    /// Batches drained so far: the next batch's [`BatchId::seq`].
    batches: AtomicU64,
}

impl Writer {
    async fn run(
        self,
        mut events: mpsc::Receiver<Event>,
        mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                biased;
                event = events.recv() => match event {
                    Some(first) => {
                        batch.push(first);
                        self.drain_and_write(&mut events, &mut batch).await;
                    }
                    None => return,
                },
                Some(done) = flushes.recv() => {
                    while !events.is_empty() {
                        self.drain_and_write(&mut events, &mut batch).await;
                    }
                    let _ = done.send(());
                }
            }
        }
    }

    /// Fills `batch` from the queue (up to [`BATCH`]) and writes it, retrying until it is in.
    async fn drain_and_write(&self, events: &mut mpsc::Receiver<Event>, batch: &mut Vec<Event>) {
        while batch.len() < BATCH {
            match events.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return;
        }
        let id = BatchId {
            writer: process_id(),
            seq: self.batches.fetch_add(1, Ordering::Relaxed),
        };
        let mut delay = RETRY_FIRST;
        let mut failures = 0u32;
        loop {
            match self.sink.write(batch, id, self.max_len).await {
                Ok(written) => {
                    self.count(batch, &written);
                    if failures > 0 {
                        tracing::info!(events = batch.len(), "event store is back; events written");
                    }
                    break;
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(%error, events = batch.len(), "cannot write events; keeping them queued and retrying");
                    }
                    failures = failures.saturating_add(1);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
        batch.clear();
    }

    /// Counts a written batch: refused events by reason, the rest as written.
    fn count(&self, batch: &[Event], written: &Written) {
        let refused = written.refused.len().min(batch.len());
        self.metrics
            .events_written
            .inc_by((batch.len() - refused) as u64);
        for failure in &written.refused {
            self.metrics.event_failed(failure.reason);
        }
        if let Some(first) = written.refused.first() {
            tracing::warn!(
                refused = refused,
                reason = first.reason,
                campaign = batch.get(first.index).map(|e| e.campaign.as_str()),
                "the event store refused events; they are dropped (the rest are written)"
            );
        }
        if written.duplicates > 0 {
            tracing::info!(
                duplicates = written.duplicates,
                "events already written by an earlier attempt were skipped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Fails its first `failures` writes, then keeps what it is given.
    struct FlakySink {
        failures: Mutex<u32>,
        written: Mutex<Vec<Event>>,
    }

    #[async_trait]
    impl EventSink for FlakySink {
        async fn write(
            &self,
            batch: &[Event],
            _id: BatchId,
            _max_len: u64,
        ) -> Result<Written, EventError> {
            {
                let mut failures = self.failures.lock().unwrap();
                if *failures > 0 {
                    *failures -= 1;
                    return Err(EventError::Unavailable("down".into()));
                }
            }
            let mut refused = Vec::new();
            let mut written = self.written.lock().unwrap();
            for (index, event) in batch.iter().enumerate() {
                if event.campaign == "poison" {
                    refused.push(Refused {
                        index,
                        reason: "wrong-type",
                    });
                } else {
                    written.push(event.clone());
                }
            }
            Ok(Written {
                refused,
                duplicates: 0,
            })
        }
    }

    fn event(n: usize) -> Event {
        Event {
            id: format!("test-{n}"),
            kind: EventKind::Click,
            campaign: "demo".into(),
            block: "cart".into(),
            subscriber: Some(format!("s{n}")),
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            client: "browser",
            machine: false,
            evidence: "browser".into(),
            item: Some(n),
            link: Some("item"),
            variant: None,
            option: None,
            counted: None,
        }
    }

    #[test]
    fn fields_read_as_documented() {
        let fields = event(2).fields();
        assert_eq!(
            fields,
            vec![
                ("type", "click".into()),
                ("campaign", "demo".into()),
                ("block", "cart".into()),
                ("subscriber", "s2".into()),
                ("at", "2023-11-14T22:13:20.000Z".into()),
                ("client", "browser".into()),
                ("prefetch", "0".into()),
                ("machine", "0".into()),
                ("evidence", "browser".into()),
                ("item", "2".into()),
                ("link", "item".into()),
                ("id", "test-2".into()),
            ]
        );
    }

    #[test]
    fn ids_are_unique() {
        let browser = Client::of_kind(crate::sources::mail_clients::ClientKind::Browser, "browser");
        let make = || Event::now(EventKind::Open, "demo", "cart", None, &browser);
        let (a, b) = (make(), make());
        assert_ne!(a.id, b.id);
        assert_eq!(
            a.id.split('-').next(),
            b.id.split('-').next(),
            "same process part"
        );
    }

    #[tokio::test]
    async fn a_refused_event_is_dropped_and_counted_and_the_rest_are_written_once() {
        let sink = Arc::new(FlakySink {
            failures: Mutex::new(0),
            written: Mutex::new(Vec::new()),
        });
        let metrics = Arc::new(Metrics::new());
        let recorder = EventRecorder::start(sink.clone(), 100, 100, Arc::clone(&metrics));
        let mut poisoned = event(1);
        poisoned.campaign = "poison".into();
        recorder.record(event(0));
        recorder.record(poisoned);
        recorder.record(event(2));
        assert!(recorder.flush(Duration::from_secs(5)).await);
        recorder.record(event(3));
        assert!(recorder.flush(Duration::from_secs(5)).await);
        let written: Vec<_> = sink
            .written
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.item)
            .collect();
        assert_eq!(
            written,
            vec![Some(0), Some(2), Some(3)],
            "no wedge, no repeat"
        );
        assert_eq!(metrics.events_written.get(), 3);
        let text = metrics.encode();
        assert!(
            text.contains("opentime_events_failed_total{reason=\"wrong-type\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn flush_waits_for_everything_queued() {
        let sink = Arc::new(FlakySink {
            failures: Mutex::new(1),
            written: Mutex::new(Vec::new()),
        });
        let recorder = EventRecorder::start(sink.clone(), 1000, 100, Arc::new(Metrics::new()));
        for n in 0..600 {
            recorder.record(event(n));
        }
        assert!(recorder.flush(Duration::from_secs(5)).await);
        assert_eq!(sink.written.lock().unwrap().len(), 600);
    }

    #[tokio::test]
    async fn failed_batches_are_retried_and_a_full_queue_drops_and_counts() {
        let sink = Arc::new(FlakySink {
            failures: Mutex::new(2),
            written: Mutex::new(Vec::new()),
        });
        let metrics = Arc::new(Metrics::new());
        let recorder = EventRecorder::start(sink.clone(), 4, 100, Arc::clone(&metrics));
        for n in 0..10 {
            recorder.record(event(n));
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        let written = sink.written.lock().unwrap().clone();
        let dropped = metrics.events_dropped.get();
        assert!(dropped > 0, "a queue of 4 overflows with 10 events");
        assert_eq!(written.len() as u64 + dropped, 10);
        assert_eq!(
            written[0],
            event(0),
            "the failed batch was kept and retried"
        );
    }
}
