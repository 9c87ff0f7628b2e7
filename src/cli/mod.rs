//! The offline commands: `render`, `check`, `url`, `tokens`, `events` and `report`. (`serve` is
//! [`crate::http`].)

pub(crate) mod check;
pub(crate) mod events;
pub(crate) mod render;
pub(crate) mod report;
mod sample_pins;
pub(crate) mod tokens;
pub(crate) mod url;

use crate::blocks::CampaignError;
use crate::config::ConfigError;
use crate::render::RenderError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Campaign(#[from] CampaignError),
    #[error("{0}")]
    Render(#[from] RenderError),
    #[error("{0}")]
    BlockRender(#[from] crate::open::BlockRenderError),
    #[error("`{0}` is not CAMPAIGN/BLOCK")]
    BlockPath(String),
    #[error("campaign `{campaign}` has no block `{block}`")]
    NoSuchBlock { campaign: String, block: String },
    #[error("{path}: {reason}")]
    Input { path: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("{0} problem(s) found")]
    CheckFailed(usize),
    #[error("{0}")]
    Sources(#[from] crate::sources::SourcesError),
    #[error("{0}")]
    Store(#[from] crate::context::StoreError),
}

/// A connection to the Redis the settings name, for the commands that read it (`events`,
/// `report`); `what` says, in the error, what needs it.
pub(crate) async fn connect_redis(
    redis: &crate::config::RedisArgs,
    what: &str,
) -> Result<crate::store::redis::RedisStore, CliError> {
    use crate::store::redis::{replication::WritePolicy, RedisSettings, RedisStore};
    let target = redis.target()?.ok_or_else(|| {
        CliError::Usage(format!(
            "{what} from Redis: set OPENTIME_REDIS_URL or OPENTIME_REDIS_CLUSTER"
        ))
    })?;
    let streams = redis.streams(&target)?;
    let store = RedisStore::new(RedisSettings {
        target,
        command_timeout: std::time::Duration::from_secs(2),
        streams,
        writes: WritePolicy {
            replicas: 0,
            wait: std::time::Duration::from_millis(1),
        },
    })?;
    store.connect().await?;
    Ok(store)
}

/// Splits `demo/cart` (or `demo/cart.png`) into campaign, block and optional extension.
pub(crate) fn split_block_path(path: &str) -> Result<(&str, &str, Option<&str>), CliError> {
    let (campaign, file) = path
        .split_once('/')
        .ok_or_else(|| CliError::BlockPath(path.to_owned()))?;
    let (block, extension) = match file.rsplit_once('.') {
        Some((block, extension)) => (block, Some(extension)),
        None => (file, None),
    };
    if !crate::blocks::is_valid_name(campaign) || !crate::blocks::is_valid_name(block) {
        return Err(CliError::BlockPath(path.to_owned()));
    }
    Ok((campaign, block, extension))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_block_paths() {
        assert_eq!(
            split_block_path("demo/cart").unwrap(),
            ("demo", "cart", None)
        );
        assert_eq!(
            split_block_path("demo/countdown.gif").unwrap(),
            ("demo", "countdown", Some("gif"))
        );
        assert!(split_block_path("demo").is_err());
        assert!(split_block_path("../x/cart").is_err());
    }
}
