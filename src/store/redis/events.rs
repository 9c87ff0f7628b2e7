//! Events into Redis: one pipeline per batch — `SCRIPT LOAD` once, then per event
//! `XADD events:opens MAXLEN ~ N` and, for a subscriber, `EVALSHA` of a small Lua script that
//! updates `ctx:{SUB}`'s `email` field in place (the same rules as `events/email_field.rs`). The stream
//! and the context hash are separate keys (separate Redis Cluster slots), so they are separate
//! commands. The server gives the writer its own connection, so a batch never queues in front
//! of an open's context lookup.

use super::RedisStore;
use crate::context::StoreError;
use crate::events::{Event, EventError, EventSink, STREAM_KEY};
use async_trait::async_trait;
use chrono::SecondsFormat;
use std::sync::OnceLock;

/// KEYS[1] = ctx:{SUB}; ARGV = kind, at, campaign, prefetch ("1"/"0").
/// A subscriber with no context gets none: an open must not make up a context (the open path
/// would then render instead of serving the `no-context` fallback).
const EMAIL_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local raw = redis.call('HGET', KEYS[1], 'email')
local email = {}
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then email = decoded end
end
local kind, at, campaign, prefetch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if prefetch == '1' then
  email.last_prefetch = at
else
  if kind == 'click' then
    email.last_click = at
    email.click_count = (tonumber(email.click_count) or 0) + 1
  else
    email.last_open = at
    email.open_count = (tonumber(email.open_count) or 0) + 1
  end
  email.last_campaign = campaign
end
redis.call('HSET', KEYS[1], 'email', cjson.encode(email))
return 1
"#;

fn email_script() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(EMAIL_SCRIPT))
}

fn to_event_error(error: redis::RedisError) -> EventError {
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
    {
        EventError::Unavailable(error.category().to_string())
    } else {
        EventError::Backend(error.category().to_string())
    }
}

#[async_trait]
impl EventSink for RedisStore {
    async fn write(&self, batch: &[Event], max_len: u64) -> Result<(), EventError> {
        let mut connection = self.connection().map_err(|e| match e {
            StoreError::Backend(reason) => EventError::Backend(reason),
            other => EventError::Unavailable(other.to_string()),
        })?;
        let script = email_script();
        let mut pipe = redis::pipe();
        pipe.load_script(script).ignore();
        for event in batch {
            let xadd = pipe
                .cmd("XADD")
                .arg(STREAM_KEY)
                .arg("MAXLEN")
                .arg("~")
                .arg(max_len)
                .arg("*");
            for (field, value) in event.fields() {
                xadd.arg(field).arg(value);
            }
            xadd.ignore();
            let Some(subscriber) = event.subscriber_id() else {
                continue;
            };
            let mut invocation = script.key(subscriber.context_key());
            invocation
                .arg(event.kind.as_str())
                .arg(event.at.to_rfc3339_opts(SecondsFormat::Millis, true))
                .arg(&event.campaign)
                .arg(if event.prefetch { "1" } else { "0" });
            pipe.invoke_script(&invocation).ignore();
        }
        pipe.query_async::<()>(&mut connection)
            .await
            .map_err(to_event_error)
    }
}
