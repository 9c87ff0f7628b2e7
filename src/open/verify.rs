//! Tokens before context: the subscriber id of an open and its token, checked before anything
//! is read for it. Blocks that read no personal context need neither (a shared block ignores
//! the subscriber).

use super::error::OpenError;
use crate::blocks::Block;
use crate::context::SubscriberId;
use crate::signing::Signer;
use std::collections::BTreeMap;

/// The verified subscriber a block needs: `None` for blocks that read no context.
pub(super) fn subscriber(
    signer: &Signer,
    block: &Block,
    subscriber: Option<&str>,
    token: Option<&str>,
) -> Result<Option<SubscriberId>, OpenError> {
    if !block.reads_context() {
        return Ok(None);
    }
    let raw = subscriber.ok_or(OpenError::MissingSubscriber)?;
    let subscriber = SubscriberId::parse(raw)?;
    if block.token_required && !token.is_some_and(|t| signer.verify(subscriber.as_str(), t)) {
        return Err(OpenError::BadToken);
    }
    Ok(Some(subscriber))
}

/// For a block declared `signed`: whether `query` (the parameters besides `s`, `t` and
/// `scale`) carries a right `sig` for `campaign/block`. `sig` is taken out of `query` either way.
pub(super) fn signed_query(
    signer: &Signer,
    campaign: &str,
    block: &Block,
    query: &mut BTreeMap<String, String>,
) -> Result<(), OpenError> {
    let signature = query.remove("sig");
    if !block.signed_query {
        return Ok(());
    }
    let path = format!("{campaign}/{}", block.name);
    match signature {
        Some(signature) if signer.verify_query(&path, query, &signature) => Ok(()),
        _ => Err(OpenError::BadSignature),
    }
}

/// A subscriber named with a right token, for the tracking pixel: `Some(None)` when no
/// subscriber is named, `None` when the URL is forged (a subscriber without or with a wrong
/// token, or an invalid id).
pub(super) fn named_subscriber(
    signer: &Signer,
    subscriber: Option<&str>,
    token: Option<&str>,
) -> Option<Option<SubscriberId>> {
    match (subscriber, token) {
        (None, _) => Some(None),
        (Some(raw), Some(token)) => SubscriberId::parse(raw)
            .ok()
            .filter(|s| signer.verify(s.as_str(), token))
            .map(Some),
        (Some(_), None) => None,
    }
}

/// Who an open or click is recorded for: events are written only for a verified subscriber;
/// anything else is counted by reason (`opentime_anonymous_total{kind,reason}`), so fetches
/// anyone can repeat cannot fill the event queue.
pub(super) enum Attribution {
    Subscriber(SubscriberId),
    Anonymous(&'static str),
}

/// The attribution of a fetch of `block`: the subscriber the block verified, else (for a shared
/// block, which verifies nothing) a subscriber named with a right token.
pub(super) fn attribution(
    signer: &Signer,
    verified: Option<&SubscriberId>,
    subscriber: Option<&str>,
    token: Option<&str>,
) -> Attribution {
    if let Some(verified) = verified {
        return Attribution::Subscriber(verified.clone());
    }
    match named_subscriber(signer, subscriber, token) {
        Some(Some(subscriber)) => Attribution::Subscriber(subscriber),
        Some(None) => Attribution::Anonymous("no-subscriber"),
        None => Attribution::Anonymous("bad-token"),
    }
}
