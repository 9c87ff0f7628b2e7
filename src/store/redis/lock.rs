//! Lock-on-open in Redis: `SET key value NX GET EX ttl` decides the first claim in one command
//! and gives the loser the winner's value.

use super::RedisStore;
use crate::lock::{Claim, LockError, LockStore};
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
}
