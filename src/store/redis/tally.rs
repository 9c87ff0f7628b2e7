//! Polls and tests in Redis (`crate::tally`): a script decides on the subscriber's keys (the
//! vote with the context's `polls` field, or the arm record), then one `HINCRBY` counts on the
//! campaign's hash. Each command stays in one slot, so it runs the same on a Cluster.

use super::RedisStore;
use crate::context::SubscriberId;
use crate::tally::{
    arm_key, poll_key, test_key, vote_key, ArmMark, ArmRecord, TallyError, TallyStore, Vote,
    VoteOutcome,
};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// KEYS[1] = vote:{SUB}:…, KEYS[2] = ctx:{SUB}; ARGV = option, change ("1"/"0"), campaign,
/// poll. Returns {outcome, previous option}.
const VOTE_SCRIPT: &str = r#"
local previous = redis.call('GET', KEYS[1])
if previous == ARGV[1] then return {'same', previous} end
if previous and ARGV[2] ~= '1' then return {'kept', previous} end
redis.call('SET', KEYS[1], ARGV[1])
local raw = redis.call('HGET', KEYS[2], 'polls')
local polls = {}
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then polls = decoded end
end
if type(polls[ARGV[3]]) ~= 'table' then polls[ARGV[3]] = {} end
polls[ARGV[3]][ARGV[4]] = ARGV[1]
redis.call('HSET', KEYS[2], 'polls', cjson.encode(polls))
if previous then return {'changed', previous} end
return {'counted', ''}
"#;

/// KEYS[1] = the arm record; ARGV = candidate ('' for none), flag ('' for none), TTL seconds,
/// needed flag (''). What `ArmMark::apply` does; returns {arm, 1 when the flag was added} or nil.
const ARM_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
local arm, flags
if current then
  local sep = string.find(current, '|', 1, true)
  if sep then
    arm, flags = string.sub(current, 1, sep - 1), string.sub(current, sep + 1)
  else
    arm, flags = current, ''
  end
else
  if ARGV[1] == '' then return false end
  arm, flags = ARGV[1], ''
end
local added = 0
if ARGV[2] ~= '' and not string.find(flags, ARGV[2], 1, true)
   and (ARGV[4] == '' or string.find(flags, ARGV[4], 1, true)) then
  flags = flags .. ARGV[2]
  added = 1
end
if not current then
  redis.call('SET', KEYS[1], arm .. '|' .. flags, 'EX', ARGV[3])
elseif added == 1 then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then
    redis.call('SET', KEYS[1], arm .. '|' .. flags, 'PX', ttl)
  else
    redis.call('SET', KEYS[1], arm .. '|' .. flags)
  end
end
return {arm, added}
"#;

fn script(cell: &'static OnceLock<redis::Script>, text: &str) -> &'static redis::Script {
    cell.get_or_init(|| redis::Script::new(text))
}

fn redis_error(error: redis::RedisError) -> TallyError {
    TallyError::Backend(error.category().to_string())
}

#[async_trait]
impl TallyStore for RedisStore {
    async fn vote(&self, vote: &Vote<'_>) -> Result<VoteOutcome, TallyError> {
        static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
        let mut connection = self.reads.get()?;
        let (outcome, previous): (String, String) = script(&SCRIPT, VOTE_SCRIPT)
            .key(vote_key(vote.subscriber, vote.campaign, vote.poll))
            .key(vote.subscriber.context_key())
            .arg(vote.option)
            .arg(if vote.change { "1" } else { "0" })
            .arg(vote.campaign)
            .arg(vote.poll)
            .invoke_async(&mut connection)
            .await
            .map_err(redis_error)?;
        let counter = poll_key(vote.campaign, vote.poll);
        let outcome = match outcome.as_str() {
            "counted" => VoteOutcome::Counted,
            "changed" => VoteOutcome::Changed { from: previous },
            "same" => VoteOutcome::Same,
            _ => VoteOutcome::Kept { option: previous },
        };
        let mut pipe = redis::pipe();
        match &outcome {
            VoteOutcome::Counted => {
                pipe.cmd("HINCRBY").arg(&counter).arg(vote.option).arg(1);
            }
            VoteOutcome::Changed { from } => {
                pipe.cmd("HINCRBY").arg(&counter).arg(vote.option).arg(1);
                pipe.cmd("HINCRBY").arg(&counter).arg(from).arg(-1);
            }
            VoteOutcome::Same | VoteOutcome::Kept { .. } => return Ok(outcome),
        }
        let _: Vec<i64> = pipe
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(outcome)
    }

    async fn poll_counts(
        &self,
        campaign: &str,
        poll: &str,
    ) -> Result<BTreeMap<String, u64>, TallyError> {
        self.hash_counts(&poll_key(campaign, poll)).await
    }

    async fn mark_arm(
        &self,
        subscriber: &SubscriberId,
        campaign: &str,
        block: &str,
        mark: ArmMark<'_>,
    ) -> Result<Option<ArmRecord>, TallyError> {
        static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
        let mut connection = self.reads.get()?;
        let flag = |f: Option<char>| f.map(String::from).unwrap_or_default();
        let reply: Option<(String, i64)> = script(&SCRIPT, ARM_SCRIPT)
            .key(arm_key(subscriber, campaign, block))
            .arg(mark.candidate.unwrap_or_default())
            .arg(flag(mark.flag))
            .arg(mark.ttl.as_secs().max(1))
            .arg(flag(mark.needs))
            .invoke_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(reply.map(|(arm, added)| ArmRecord {
            arm,
            flagged_now: added == 1,
        }))
    }

    async fn count(&self, campaign: &str, block: &str, counter: &str) -> Result<(), TallyError> {
        let mut connection = self.reads.get()?;
        let _: i64 = redis::cmd("HINCRBY")
            .arg(test_key(campaign, block))
            .arg(counter)
            .arg(1)
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn test_counts(
        &self,
        campaign: &str,
        block: &str,
    ) -> Result<BTreeMap<String, u64>, TallyError> {
        self.hash_counts(&test_key(campaign, block)).await
    }
}

impl RedisStore {
    /// A hash of counters; negative or unreadable values read as zero.
    async fn hash_counts(&self, key: &str) -> Result<BTreeMap<String, u64>, TallyError> {
        let mut connection = self.reads.get()?;
        let counts: BTreeMap<String, i64> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(counts
            .into_iter()
            .map(|(name, count)| (name, u64::try_from(count).unwrap_or(0)))
            .collect())
    }
}
