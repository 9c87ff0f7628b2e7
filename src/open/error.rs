//! Why an open could not be rendered. Each error maps to one fallback reason (the
//! `X-Opentime-Fallback` header and the `opentime_fallbacks_total` label); the HTTP layer maps
//! each to its answer in one place (`http::answer`).

use super::query::QueryError;
use crate::blocks::CampaignError;
use crate::context::{StoreError, SubscriberIdError};
use crate::countdown::CountdownError;
use crate::render::RenderError;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("bad query: {0}")]
    BadQuery(#[from] QueryError),
    #[error("no subscriber (`s`) in the URL")]
    MissingSubscriber,
    #[error("bad subscriber id: {0}")]
    BadSubscriber(#[from] SubscriberIdError),
    #[error("missing or wrong token")]
    BadToken,
    #[error("missing or wrong query signature (`sig`)")]
    BadSignature,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("no context stored for this subscriber")]
    NoContext,
    /// A render failed (shared by every open waiting for it, hence kept as text).
    #[error("{detail}")]
    Render {
        reason: &'static str,
        detail: String,
    },
    #[error("render capacity exhausted until the deadline")]
    Overloaded,
    #[error("deadline passed before the render finished")]
    Timeout,
    #[error("countdown: {0}")]
    Countdown(#[from] CountdownError),
    #[error("required feed `{0}` has no value")]
    Feed(String),
}

impl OpenError {
    /// The short reason sent in `X-Opentime-Fallback` and counted in metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            OpenError::BadQuery(_) => "bad-query",
            OpenError::MissingSubscriber => "missing-subscriber",
            OpenError::BadSubscriber(_) => "bad-subscriber",
            OpenError::BadToken => "bad-token",
            OpenError::BadSignature => "bad-signature",
            OpenError::Store(error) => error.reason(),
            OpenError::NoContext => "no-context",
            OpenError::Render { reason, .. } => reason,
            OpenError::Overloaded => "overload",
            OpenError::Timeout => "timeout",
            OpenError::Countdown(error) => error.reason(),
            OpenError::Feed(_) => "feed",
        }
    }

    /// Whether an operator should hear of it (a failing service), rather than a wrong or
    /// forged URL, which is logged at debug level only.
    pub fn is_operational(&self) -> bool {
        matches!(
            self,
            OpenError::Render { .. }
                | OpenError::Store(_)
                | OpenError::Overloaded
                | OpenError::Timeout
                | OpenError::Feed(_)
        )
    }
}

/// Why a block could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum BlockRenderError {
    #[error("template-error: {0}")]
    Template(#[from] CampaignError),
    #[error("unsupported: block `{block}` has no {format} form")]
    Unsupported { block: String, format: &'static str },
    #[error("{0}")]
    Raster(#[from] RenderError),
    #[error("{0}")]
    Countdown(#[from] CountdownError),
}

impl BlockRenderError {
    /// The short reason used in fallback headers and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            BlockRenderError::Template(_) => "template-error",
            BlockRenderError::Unsupported { .. } => "unsupported-format",
            BlockRenderError::Raster(error) => error.reason(),
            BlockRenderError::Countdown(error) => error.reason(),
        }
    }
}
