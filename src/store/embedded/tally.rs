//! Polls and tests in the embedded store (`crate::tally`): one write transaction decides and
//! counts, so votes and counts are exact; arm records keep no expiry here.

use super::{EmbeddedStore, CONTEXTS};
use crate::context::{ContextFields, StoreError, SubscriberId};
use crate::tally::{
    arm_key, poll_key, test_key, vote_key, ArmMark, ArmRecord, TallyError, TallyStore, Vote,
    VoteOutcome,
};
use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Votes and arm records: key → value.
const RECORDS: TableDefinition<&str, &str> = TableDefinition::new("tally_records");
/// Counters: `KEY\u{0}NAME` → count.
const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("tally_counts");

fn backend<E: std::fmt::Display>(error: E) -> TallyError {
    TallyError::Backend(error.to_string())
}

fn unavailable(reason: String) -> TallyError {
    TallyError::Store(StoreError::Unavailable(reason))
}

fn counter(key: &str, name: &str) -> String {
    format!("{key}\u{0}{name}")
}

/// Adds `delta` to a counter (never below zero).
fn add(txn: &WriteTransaction, key: &str, name: &str, delta: i64) -> Result<(), TallyError> {
    let mut table = txn.open_table(COUNTS).map_err(backend)?;
    let id = counter(key, name);
    let current = table
        .get(id.as_str())
        .map_err(backend)?
        .map_or(0, |v| v.value());
    let next = current.saturating_add_signed(delta);
    table.insert(id.as_str(), next).map_err(backend)?;
    Ok(())
}

/// Writes the vote into the subscriber's `polls` context field.
fn note_vote(txn: &WriteTransaction, vote: &Vote<'_>) -> Result<(), TallyError> {
    let mut contexts = txn.open_table(CONTEXTS).map_err(backend)?;
    let mut fields: ContextFields = contexts
        .get(vote.subscriber.as_str())
        .map_err(backend)?
        .and_then(|bytes| serde_json::from_slice(bytes.value()).ok())
        .unwrap_or_default();
    let polls = fields.entry("polls").or_insert_with(|| json!({}));
    if !polls.is_object() {
        *polls = json!({});
    }
    let campaign = &mut polls[vote.campaign];
    if !campaign.is_object() {
        *campaign = json!({});
    }
    campaign[vote.poll] = Value::String(vote.option.to_owned());
    let bytes = serde_json::to_vec(&fields).map_err(backend)?;
    contexts
        .insert(vote.subscriber.as_str(), bytes.as_slice())
        .map_err(backend)?;
    Ok(())
}

impl EmbeddedStore {
    async fn write_tally<T: Send + 'static>(
        &self,
        work: impl Fn(&WriteTransaction) -> Result<T, TallyError> + Send + 'static,
    ) -> Result<T, TallyError> {
        let slot = Arc::clone(self.slot());
        tokio::task::spawn_blocking(move || {
            slot.run(unavailable, |database| {
                let txn = database.begin_write().map_err(backend)?;
                let out = work(&txn)?;
                txn.commit().map_err(backend)?;
                Ok(out)
            })
        })
        .await
        .map_err(backend)?
    }

    async fn counts(&self, key: String) -> Result<BTreeMap<String, u64>, TallyError> {
        let slot = Arc::clone(self.slot());
        tokio::task::spawn_blocking(move || {
            slot.run(unavailable, |database| {
                let txn = database.begin_read().map_err(backend)?;
                let table = match txn.open_table(COUNTS) {
                    Ok(table) => table,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
                    Err(error) => return Err(backend(error)),
                };
                let prefix = counter(&key, "");
                let mut counts = BTreeMap::new();
                for entry in table.range(prefix.as_str()..).map_err(backend)? {
                    let (id, count) = entry.map_err(backend)?;
                    let Some(name) = id.value().strip_prefix(prefix.as_str()) else {
                        break;
                    };
                    counts.insert(name.to_owned(), count.value());
                }
                Ok(counts)
            })
        })
        .await
        .map_err(backend)?
    }
}

#[async_trait]
impl TallyStore for EmbeddedStore {
    async fn vote(&self, vote: &Vote<'_>) -> Result<VoteOutcome, TallyError> {
        let (subscriber, campaign, poll, option, change) = (
            vote.subscriber.clone(),
            vote.campaign.to_owned(),
            vote.poll.to_owned(),
            vote.option.to_owned(),
            vote.change,
        );
        self.write_tally(move |txn| {
            let vote = Vote {
                subscriber: &subscriber,
                campaign: &campaign,
                poll: &poll,
                option: &option,
                change,
            };
            let key = vote_key(&subscriber, &campaign, &poll);
            let counts = poll_key(&campaign, &poll);
            let previous = {
                let table = txn.open_table(RECORDS).map_err(backend)?;
                let previous = table.get(key.as_str()).map_err(backend)?;
                previous.map(|v| v.value().to_owned())
            };
            let outcome = match previous {
                Some(previous) if previous == option => return Ok(VoteOutcome::Same),
                Some(previous) if !change => return Ok(VoteOutcome::Kept { option: previous }),
                Some(previous) => {
                    add(txn, &counts, &previous, -1)?;
                    VoteOutcome::Changed { from: previous }
                }
                None => VoteOutcome::Counted,
            };
            add(txn, &counts, &option, 1)?;
            txn.open_table(RECORDS)
                .map_err(backend)?
                .insert(key.as_str(), option.as_str())
                .map_err(backend)?;
            note_vote(txn, &vote)?;
            Ok(outcome)
        })
        .await
    }

    async fn poll_counts(
        &self,
        campaign: &str,
        poll: &str,
    ) -> Result<BTreeMap<String, u64>, TallyError> {
        self.counts(poll_key(campaign, poll)).await
    }

    async fn mark_arm(
        &self,
        subscriber: &SubscriberId,
        campaign: &str,
        block: &str,
        mark: ArmMark<'_>,
    ) -> Result<Option<ArmRecord>, TallyError> {
        let key = arm_key(subscriber, campaign, block);
        let candidate = mark.candidate.map(str::to_owned);
        let (flag, needs, ttl) = (mark.flag, mark.needs, mark.ttl);
        self.write_tally(move |txn| {
            let mut table = txn.open_table(RECORDS).map_err(backend)?;
            let current = table
                .get(key.as_str())
                .map_err(backend)?
                .map(|v| v.value().to_owned());
            let mark = ArmMark {
                candidate: candidate.as_deref(),
                flag,
                needs,
                ttl,
            };
            let Some((record, write)) = mark.apply(current.as_deref()) else {
                return Ok(None);
            };
            if let Some(value) = write {
                table
                    .insert(key.as_str(), value.as_str())
                    .map_err(backend)?;
            }
            Ok(Some(record))
        })
        .await
    }

    async fn count(&self, campaign: &str, block: &str, name: &str) -> Result<(), TallyError> {
        let (key, name) = (test_key(campaign, block), name.to_owned());
        self.write_tally(move |txn| add(txn, &key, &name, 1)).await
    }

    async fn test_counts(
        &self,
        campaign: &str,
        block: &str,
    ) -> Result<BTreeMap<String, u64>, TallyError> {
        self.counts(test_key(campaign, block)).await
    }
}
