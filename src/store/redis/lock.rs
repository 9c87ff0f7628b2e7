//! Lock-on-open in Redis: a small Lua script reads the key and, when it is absent, sets it
//! with its TTL — one atomic step, so the first claim wins and the loser gets the winner's
//! value (what `SET key value NX GET EX ttl` does).
//!
//! Why a script and not `SET … NX GET`: `NX` together with `GET` needs Redis ≥ 7.0; older
//! servers answer it with a syntax error, and lock-on-open then silently never locks. The
//! script runs the same on every Redis since 2.6, so no version check is needed for locks
//! (`mod.rs` still logs the server's version at start-up).
//!
//! Erasing a subscriber's locks scans for `lock:{SUB}:*`. On a Cluster every such key is in
//! the subscriber's slot, so the `SCAN` runs on the master that holds that slot only.

use super::slots::slot;
use super::RedisStore;
use crate::context::SubscriberId;
use crate::lock::{lock_prefix, Claim, LockError, LockStore};
use async_trait::async_trait;
use std::sync::OnceLock;
use std::time::Duration;

/// KEYS[1] = the lock; ARGV = value, TTL in seconds. Returns the current value when the key
/// is locked already, else sets it and returns nil.
const CLAIM_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"#;

fn claim_script() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(CLAIM_SCRIPT))
}

fn redis_error(error: redis::RedisError) -> LockError {
    LockError::Backend(error.category().to_string())
}

#[async_trait]
impl LockStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<String>, LockError> {
        let mut connection = self.reads.get()?;
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut connection)
            .await
            .map_err(redis_error)
    }

    async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<Claim, LockError> {
        let mut connection = self.reads.get()?;
        // EVALSHA, loading the script on NOSCRIPT: one round trip once it is cached.
        let previous: Option<String> = claim_script()
            .key(key)
            .arg(value)
            .arg(ttl.as_secs().max(1))
            .invoke_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(match previous {
            None => Claim::Won,
            Some(theirs) => Claim::Lost(theirs),
        })
    }

    async fn remove_all_of(&self, subscriber: &SubscriberId) -> Result<u64, LockError> {
        // The erasure's connection: the `WAIT` after the context's removal covers these too.
        let mut connection = self.writes.get()?;
        let prefix = lock_prefix(subscriber);
        let pattern = format!("{}*", glob_escape(&prefix));
        let slot = slot(&prefix);
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500);
            let reply = connection.on_slot(&scan, slot).await.map_err(redis_error)?;
            let (next, keys): (u64, Vec<String>) =
                redis::from_redis_value(reply).map_err(|e| redis_error(e.into()))?;
            if !keys.is_empty() {
                let count: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await
                    .map_err(redis_error)?;
                removed += count;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

/// `text` as a Redis glob pattern that matches only itself (subscriber ids may hold `*`, `?`,
/// `[` or a backslash).
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::super::testkit::TestRedis;
    use super::*;

    #[test]
    fn glob_patterns_match_only_the_subscriber() {
        assert_eq!(glob_escape("lock:{a*b}:"), "lock:{a\\*b}:");
        assert_eq!(glob_escape("lock:{x?[y]\\}:"), "lock:{x\\?\\[y\\]\\\\}:");
    }

    #[tokio::test]
    // A glob character in the id: the SCAN pattern must match it literally.
    async fn erasing_a_subscriber_removes_only_their_locks() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        crate::lock::conformance::erasing_removes_only_their_locks(&store, "a*ce").await;
    }

    #[tokio::test]
    async fn the_first_claim_wins_and_the_loser_gets_its_value() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        let key = "lock:{alice}:demo:cart";
        let ttl = Duration::from_secs(600);

        assert_eq!(store.get(key).await.unwrap(), None);
        assert_eq!(store.claim(key, "first", ttl).await.unwrap(), Claim::Won);
        assert_eq!(
            store.claim(key, "second", ttl).await.unwrap(),
            Claim::Lost("first".into())
        );
        assert_eq!(store.get(key).await.unwrap(), Some("first".into()));
        let left: i64 = redis::cmd("TTL")
            .arg(key)
            .query(&mut redis.connection())
            .unwrap();
        assert!(left > 590 && left <= 600, "TTL {left}");

        // Simultaneous claims: exactly one wins, every loser sees the winner's value.
        let store = std::sync::Arc::new(store);
        let key = "lock:{bob}:demo:cart";
        let mut claims = tokio::task::JoinSet::new();
        for n in 0..8 {
            let store = std::sync::Arc::clone(&store);
            claims
                .spawn(async move { (n, store.claim(key, &format!("v{n}"), ttl).await.unwrap()) });
        }
        let outcomes = claims.join_all().await;
        let winners: Vec<_> = outcomes.iter().filter(|(_, c)| *c == Claim::Won).collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        let winner = format!("v{}", winners[0].0);
        for (_, claim) in &outcomes {
            if let Claim::Lost(theirs) = claim {
                assert_eq!(theirs, &winner);
            }
        }
        // A sub-second TTL still expires (rounded up to 1 s, as before).
        assert_eq!(
            store
                .claim("lock:{carol}:demo:cart", "x", Duration::from_millis(10))
                .await
                .unwrap(),
            Claim::Won
        );
    }
}
