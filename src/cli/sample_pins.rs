//! What a sample context pins beside its fields, in a `_open` object — the facts rules read that
//! do not come from the context: `at` (RFC 3339), `client` (a client kind, e.g. `gmail-proxy`),
//! `feeds` (a value per feed name) and `votes` (per option, for a poll's results block). Used by
//! `opentime check` and `opentime render`, which never fetch feeds nor read counts.

use crate::blocks::{Block, Campaign};
use crate::context::ContextFields;
use crate::open::TemplateInput;
use crate::sources::mail_clients::ClientKind;
use std::collections::BTreeMap;

/// What a sample pins beside its context fields (`_open`).
pub(crate) struct SamplePins {
    pub(crate) fields: ContextFields,
    pub(crate) at: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) client: Option<ClientKind>,
    feeds: serde_json::Map<String, serde_json::Value>,
    /// A poll's votes per option (`_open.votes`), for results blocks.
    votes: BTreeMap<String, u64>,
}

impl SamplePins {
    pub(crate) fn take(fields: &ContextFields) -> Result<Self, String> {
        let mut fields = fields.clone();
        let Some(pins) = fields.remove("_open") else {
            return Ok(Self {
                fields,
                at: None,
                client: None,
                feeds: Default::default(),
                votes: BTreeMap::new(),
            });
        };
        let at = match pins.get("at").and_then(|v| v.as_str()) {
            Some(text) => Some(
                chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|e| format!("at: {e}"))?
                    .with_timezone(&chrono::Utc),
            ),
            None => None,
        };
        let client = match pins.get("client").and_then(|v| v.as_str()) {
            Some(name) => Some(
                ClientKind::from_name(name)
                    .ok_or_else(|| format!("client {name:?} is not a client kind"))?,
            ),
            None => None,
        };
        let feeds = pins
            .get("feeds")
            .and_then(|v| v.as_object())
            .cloned()
            .unwrap_or_default();
        let votes = pins
            .get("votes")
            .and_then(|v| v.as_object())
            .map(|votes| {
                votes
                    .iter()
                    .map(|(option, n)| (option.clone(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            fields,
            at,
            client,
            feeds,
            votes,
        })
    }
}

impl SamplePins {
    /// Gives `input` the pinned feed values (`null` for the others) and poll counts.
    pub(crate) fn apply(&self, campaign: &Campaign, block: &Block, input: &mut TemplateInput) {
        if let Some(poll) = block.poll.as_deref().and_then(|p| campaign.poll(p)) {
            input.poll = Some(crate::open::poll_results(poll, &self.votes));
        }
        for name in &block.feeds {
            let value = self.feeds.get(name).cloned().unwrap_or_default();
            input.feeds.insert(name.clone(), value);
        }
    }
}
