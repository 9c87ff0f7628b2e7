//! Lock-on-open in Redis: `SET key value NX GET EX ttl` decides the first claim in one command
//! and gives the loser the winner's value.

use super::RedisStore;
use crate::context::SubscriberId;
use crate::lock::{lock_prefix, Claim, LockError, LockStore};
use async_trait::async_trait;
use std::time::Duration;

fn redis_error(error: redis::RedisError) -> LockError {
    LockError::Backend(error.category().to_string())
}

#[async_trait]
impl LockStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<String>, LockError> {
        let mut connection = self.connection()?;
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut connection)
            .await
            .map_err(redis_error)
    }

    async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<Claim, LockError> {
        let mut connection = self.connection()?;
        let previous: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("GET")
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(match previous {
            None => Claim::Won,
            Some(theirs) => Claim::Lost(theirs),
        })
    }

    async fn remove_all_of(&self, subscriber: &SubscriberId) -> Result<u64, LockError> {
        let mut connection = self.connection()?;
        let pattern = format!("{}*", glob_escape(&lock_prefix(subscriber)));
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut connection)
                .await
                .map_err(redis_error)?;
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
    use super::*;

    #[test]
    fn glob_patterns_match_only_the_subscriber() {
        assert_eq!(glob_escape("lock:{a*b}:"), "lock:{a\\*b}:");
        assert_eq!(glob_escape("lock:{x?[y]\\}:"), "lock:{x\\?\\[y\\]\\\\}:");
    }
}
