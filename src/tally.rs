//! Counts kept in the store for polls and tests, and what each subscriber did in them.
//!
//! Keys (the braces are Redis Cluster hash tags):
//! - `vote:{SUB}:{campaign}:{poll}` — the subscriber's option (their slot, beside `ctx:{SUB}`,
//!   whose `polls` field gets the vote in the same script);
//! - `poll:{CAMPAIGN}:{poll}` — a hash of option → votes (the campaign's slot);
//! - `lock:{SUB}:{campaign}:{block}:arm` — the test arm the subscriber sees, with what was
//!   counted for them (`h`: a human open, `c`: a click), so a reopen shows the same arm and
//!   nobody counts twice; under `lock:`, so erasing a subscriber's locks erases it too;
//! - `abtest:{CAMPAIGN}:{block}` — a hash of `ARM:opens` / `ARM:clicks` (the campaign's slot).
//!
//! A vote or a count is decided on the subscriber's key (atomic), then added to the campaign's
//! counter (one `HINCRBY`, atomic): exact under any concurrency, and no command touches two
//! slots. A renderer that dies between the two steps loses that one count.

use crate::context::{StoreError, SubscriberId};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TallyError {
    #[error("tally store: {0}")]
    Store(#[from] StoreError),
    #[error("tally store: {0}")]
    Backend(String),
}

pub(crate) fn vote_key(subscriber: &SubscriberId, campaign: &str, poll: &str) -> String {
    format!("vote:{{{}}}:{campaign}:{poll}", subscriber.as_str())
}

pub(crate) fn poll_key(campaign: &str, poll: &str) -> String {
    format!("poll:{{{campaign}}}:{poll}")
}

pub(crate) fn arm_key(subscriber: &SubscriberId, campaign: &str, block: &str) -> String {
    format!("lock:{{{}}}:{campaign}:{block}:arm", subscriber.as_str())
}

pub(crate) fn test_key(campaign: &str, block: &str) -> String {
    format!("abtest:{{{campaign}}}:{block}")
}

/// One subscriber's vote.
#[derive(Debug, Clone)]
pub struct Vote<'a> {
    pub subscriber: &'a SubscriberId,
    pub campaign: &'a str,
    pub poll: &'a str,
    pub option: &'a str,
    /// Whether a vote may replace an earlier one.
    pub change: bool,
}

/// What became of a vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteOutcome {
    /// The subscriber's first vote: counted.
    Counted,
    /// Replaced an earlier vote: moved from that option to this one.
    Changed { from: String },
    /// The same option again: nothing changes.
    Same,
    /// The poll keeps first votes: this one is not counted.
    Kept { option: String },
}

/// A change to a subscriber's arm record: claim `candidate` when none is recorded, and add
/// `flag` (only when `needs` is there already).
#[derive(Debug, Clone, Copy)]
pub struct ArmMark<'a> {
    pub candidate: Option<&'a str>,
    pub flag: Option<char>,
    pub needs: Option<char>,
    pub ttl: Duration,
}

/// The flag of a counted human open.
pub(crate) const HUMAN_OPEN: char = 'h';
/// The flag of a counted click.
pub(crate) const CLICKED: char = 'c';

/// A subscriber's arm, and whether the mark's flag was added now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmRecord {
    pub arm: String,
    pub flagged_now: bool,
}

impl ArmMark<'_> {
    /// Applies the mark to the stored value (`ARM|FLAGS`): the record, and the value to store
    /// when it changed. The Redis script does the same in Lua.
    pub fn apply(&self, current: Option<&str>) -> Option<(ArmRecord, Option<String>)> {
        let (arm, flags, new) = match current {
            Some(value) => {
                let (arm, flags) = value.split_once('|').unwrap_or((value, ""));
                (arm.to_owned(), flags.to_owned(), false)
            }
            None => (self.candidate?.to_owned(), String::new(), true),
        };
        let add = self.flag.filter(|flag| {
            !flags.contains(*flag) && self.needs.is_none_or(|needs| flags.contains(needs))
        });
        let flags = match add {
            Some(flag) => format!("{flags}{flag}"),
            None => flags,
        };
        let write = (new || add.is_some()).then(|| format!("{arm}|{flags}"));
        Some((
            ArmRecord {
                arm,
                flagged_now: add.is_some(),
            },
            write,
        ))
    }
}

/// Where votes and test counts live (Redis or the embedded store).
#[async_trait]
pub trait TallyStore: Send + Sync {
    /// Records a vote (and the `polls` field of the subscriber's context) and counts it.
    async fn vote(&self, vote: &Vote<'_>) -> Result<VoteOutcome, TallyError>;
    /// A poll's votes per option (options nobody chose are missing).
    async fn poll_counts(
        &self,
        campaign: &str,
        poll: &str,
    ) -> Result<BTreeMap<String, u64>, TallyError>;
    /// Applies `mark` to the subscriber's arm record of a test block; `None` when there is no
    /// record and no candidate.
    async fn mark_arm(
        &self,
        subscriber: &SubscriberId,
        campaign: &str,
        block: &str,
        mark: ArmMark<'_>,
    ) -> Result<Option<ArmRecord>, TallyError>;
    /// Adds one to a test counter (`ARM:opens`, `ARM:clicks`).
    async fn count(&self, campaign: &str, block: &str, counter: &str) -> Result<(), TallyError>;
    /// A test block's counters.
    async fn test_counts(
        &self,
        campaign: &str,
        block: &str,
    ) -> Result<BTreeMap<String, u64>, TallyError>;
}

pub(crate) type SharedTallies = Arc<dyn TallyStore>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_records_count_each_thing_once() {
        let ttl = Duration::from_secs(60);
        let claim = |human: bool| ArmMark {
            candidate: Some("b"),
            flag: human.then_some(HUMAN_OPEN),
            needs: None,
            ttl,
        };
        // A machine's fetch claims the arm without counting; the person's open counts once.
        let (record, stored) = claim(false).apply(None).unwrap();
        assert_eq!((record.arm.as_str(), record.flagged_now), ("b", false));
        let stored = stored.unwrap();
        assert_eq!(stored, "b|");
        let (record, stored) = claim(true).apply(Some(&stored)).unwrap();
        assert!(record.flagged_now);
        let stored = stored.unwrap();
        let (record, again) = ArmMark {
            candidate: Some("a"),
            ..claim(true)
        }
        .apply(Some(&stored))
        .unwrap();
        assert_eq!(
            (record.arm.as_str(), record.flagged_now, again),
            ("b", false, None)
        );
        // A click counts once, and only after a counted human open.
        let click = ArmMark {
            candidate: None,
            flag: Some(CLICKED),
            needs: Some(HUMAN_OPEN),
            ttl,
        };
        assert!(!click.apply(Some("b|")).unwrap().0.flagged_now);
        let (record, stored) = click.apply(Some("b|h")).unwrap();
        assert!(record.flagged_now);
        assert!(!click.apply(stored.as_deref()).unwrap().0.flagged_now);
        assert_eq!(click.apply(None), None);
    }
}
