//! What a template sees: `ctx`, `subscriber`, `now`, `query` and `block`; and, for blocks
//! that declare them (`request = [...]`), `client`, `location` and `nearest_stores`.

use crate::blocks::Block;
use crate::context::ContextFields;
use crate::sources::geo_ip::Location;
use crate::sources::mail_clients::ClientKind;
use crate::sources::shop_stores::NearbyShopStore;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use std::collections::BTreeMap;

/// The inputs of one render. Together with the template version, they decide the output, so
/// they are also what the render cache key is made of.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TemplateInput {
    /// The context fields the block reads (only those: a template cannot see, and so cannot
    /// depend on, a field its cache key leaves out).
    pub ctx: ContextFields,
    /// The subscriber id; `None` for shared blocks.
    pub subscriber: Option<String>,
    /// The render instant, already rounded down to the block's time bucket.
    pub now: DateTime<Utc>,
    /// Query parameters other than `s`, `t` and `scale`.
    pub query: BTreeMap<String, String>,
    /// The mail client kind, only for blocks with `request = ["client"]` (left out of the
    /// cache key otherwise, so other blocks do not split their cache by client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientKind>,
    /// The reader's location, only for blocks with `request = ["location"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// (Boxed: most inputs have none, and they are kept in enums and caches.)
    pub location: Option<Box<Location>>,
    /// The stores nearest to `location`, nearest first (empty without coordinates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nearest_stores: Vec<NearbyShopStore>,
}

impl TemplateInput {
    /// Builds the input for `block`, keeping only the context fields it reads and rounding
    /// `now` down to its time bucket.
    pub fn for_block(
        block: &Block,
        context: &ContextFields,
        subscriber: Option<&str>,
        now: DateTime<Utc>,
        query: BTreeMap<String, String>,
    ) -> Self {
        let ctx = context
            .iter()
            .filter(|(field, _)| block.reads_field(field))
            .map(|(field, value)| (field.clone(), value.clone()))
            .collect();
        let bucket = i64::from(block.time_bucket_secs);
        let rounded = now.timestamp().div_euclid(bucket) * bucket;
        Self {
            ctx,
            subscriber: subscriber
                .filter(|_| block.reads_context())
                .map(str::to_owned),
            now: DateTime::from_timestamp(rounded, 0).unwrap_or(now),
            query,
            client: None,
            location: None,
            nearest_stores: Vec::new(),
        }
    }

    pub fn to_tera_context(&self, block: &Block) -> tera::Context {
        let mut context = tera::Context::new();
        context.insert("ctx", &self.ctx);
        context.insert("subscriber", &self.subscriber);
        context.insert("now", &self.now.to_rfc3339_opts(SecondsFormat::Secs, true));
        context.insert("now_ts", &self.now.timestamp());
        context.insert("query", &self.query);
        if block.reads_client {
            context.insert(
                "client",
                self.client.unwrap_or(ClientKind::Unknown).as_str(),
            );
        }
        if block.reads_location {
            context.insert(
                "location",
                &self
                    .location
                    .as_deref()
                    .cloned()
                    .unwrap_or_else(Location::unknown),
            );
            context.insert("nearest_stores", &self.nearest_stores);
        }
        context.insert(
            "block",
            &json!({"name": block.name, "width": block.width, "height": block.height}),
        );
        context
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::shop_stores::ShopStores;

    /// A lock stores the inputs as JSON and renders from them again: they must read back.
    #[test]
    fn inputs_round_trip_through_json_with_and_without_opener_facts() {
        let plain = TemplateInput::default();
        let json = serde_json::to_string(&plain).unwrap();
        assert!(
            !json.contains("location") && !json.contains("client"),
            "{json}"
        );
        let back: TemplateInput = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);

        let location = Location::from_context(
            &json!({"city": "Paris", "country": "FR", "lat": 48.86, "lon": 2.34}),
        )
        .unwrap();
        let with_facts = TemplateInput {
            client: Some(ClientKind::GmailProxy),
            nearest_stores: ShopStores::demo().nearest(48.86, 2.34, 2),
            location: Some(Box::new(location)),
            ..TemplateInput::default()
        };
        let json = serde_json::to_string(&with_facts).unwrap();
        let back: TemplateInput = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert_eq!(back.client, Some(ClientKind::GmailProxy));
        assert_eq!(back.nearest_stores[0].store.id, "par-marais");
    }
}
