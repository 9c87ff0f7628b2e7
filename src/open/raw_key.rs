//! The render key of a *plain* block — one whose render depends only on the context fields it
//! reads, the subscriber, the time bucket and its query parameters (no countdown, no `client`,
//! `location` or local time from the request, no variants, feeds or poll, no lock) — hashed
//! from the fields' stored text. A cache hit
//! on such a block therefore parses, clones and serializes no JSON: the open reads the hash,
//! hashes what the block reads of it, and serves the bytes. A miss parses only the fields the
//! block reads ([`parse_read_fields`]).
//!
//! Two contexts that differ only in how their JSON is written get different keys: each renders
//! once, to the same picture. Nothing else can share a key: every part is length-prefixed.

use crate::blocks::{Block, Campaign};
use crate::cache::RenderKey;
use crate::context::{parse_field_value, ContextFields, RawContextFields};
use crate::render::Format;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Whether `block`'s render key can be taken from the stored text of its fields.
pub(super) fn applies(block: &Block) -> bool {
    block.countdown.is_none()
        && !block.reads_client
        && !block.reads_location
        && !block.reads_time
        && block.variants.is_none()
        && block.feeds.is_empty()
        && block.poll.is_none()
        && block.lock_ttl.is_none()
}

/// The key of one render of a plain block: the same parts as the canonical input's key
/// (`input.rs`), taken from the stored text. `query` holds only the parameters the block
/// reads; `now` is already rounded down to the block's time bucket.
pub(super) fn key(
    campaign: &Campaign,
    block: &Block,
    (format, scale): (Format, u8),
    subscriber: Option<&str>,
    now: DateTime<Utc>,
    query: &BTreeMap<String, String>,
    fields: &RawContextFields,
) -> RenderKey {
    let mut read: Vec<&(String, String)> = fields
        .iter()
        .filter(|(field, _)| block.reads_field(field))
        .collect();
    read.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut parts = Vec::with_capacity(
        64 + read
            .iter()
            .map(|(field, value)| field.len() + value.len() + 16)
            .sum::<usize>(),
    );
    let mut put = |bytes: &[u8]| {
        parts.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        parts.extend_from_slice(bytes);
    };
    put(b"stored-text");
    put(subscriber.unwrap_or_default().as_bytes());
    put(&now.timestamp().to_le_bytes());
    put(&(query.len() as u64).to_le_bytes());
    for (name, value) in query {
        put(name.as_bytes());
        put(value.as_bytes());
    }
    for (field, value) in read {
        put(field.as_bytes());
        put(value.as_bytes());
    }
    RenderKey::new(
        &campaign.name,
        campaign.version,
        &block.name,
        format,
        scale,
        &parts,
    )
}

/// The fields `block` reads, parsed (the others are never parsed).
pub(super) fn parse_read_fields(block: &Block, fields: &RawContextFields) -> ContextFields {
    fields
        .iter()
        .filter(|(field, _)| block.reads_field(field))
        .map(|(field, value)| (field.clone(), parse_field_value(value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Renderer;
    use std::path::Path;
    use std::sync::Arc;

    fn demo() -> (Campaign, Arc<Block>) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let renderer = Renderer::load(&root.join("assets")).expect("assets");
        let campaign = Campaign::load(&root.join("templates/demo"), &renderer).expect("demo");
        let block = Arc::clone(campaign.block("cart").expect("demo cart"));
        (campaign, block)
    }

    fn fields(pairs: &[(&str, &str)]) -> RawContextFields {
        pairs
            .iter()
            .map(|(f, v)| ((*f).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_key_follows_what_the_block_reads_and_nothing_else() {
        let (campaign, block) = demo();
        assert!(applies(&block));
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let query = BTreeMap::new();
        let key_of = |raw: &RawContextFields, subscriber: &str| {
            key(
                &campaign,
                &block,
                (Format::Png, 1),
                Some(subscriber),
                now,
                &query,
                raw,
            )
        };
        let base = fields(&[("profile", r#"{"first_name":"Alice"}"#), ("cart", "{}")]);
        let reordered = fields(&[("cart", "{}"), ("profile", r#"{"first_name":"Alice"}"#)]);
        let with_email = fields(&[
            ("profile", r#"{"first_name":"Alice"}"#),
            ("cart", "{}"),
            ("email", r#"{"open_count":3}"#),
        ]);
        let other_name = fields(&[("profile", r#"{"first_name":"Bob"}"#), ("cart", "{}")]);
        // A value that ends where the next begins must not read as the same parts.
        let shifted = fields(&[("profile", r#"{"first_name":"Alice"}cart"#), ("cart", "")]);
        assert_eq!(key_of(&base, "alice"), key_of(&reordered, "alice"));
        assert_eq!(
            key_of(&base, "alice"),
            key_of(&with_email, "alice"),
            "a field the block does not read is not in the key"
        );
        assert_ne!(key_of(&base, "alice"), key_of(&other_name, "alice"));
        assert_ne!(key_of(&base, "alice"), key_of(&shifted, "alice"));
        assert_ne!(key_of(&base, "alice"), key_of(&base, "bob"));
        let later = now + chrono::Duration::seconds(i64::from(block.time_bucket_secs));
        assert_ne!(
            key_of(&base, "alice"),
            key(
                &campaign,
                &block,
                (Format::Png, 1),
                Some("alice"),
                later,
                &query,
                &base
            )
        );
        assert_ne!(
            key_of(&base, "alice"),
            key(
                &campaign,
                &block,
                (Format::Png, 2),
                Some("alice"),
                now,
                &query,
                &base
            )
        );
    }

    #[test]
    fn only_the_fields_read_are_parsed() {
        let (_, block) = demo();
        let parsed = parse_read_fields(
            &block,
            &fields(&[
                ("profile", r#"{"a":1}"#),
                ("email", "not json"),
                ("cart", "x"),
            ]),
        );
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed["profile"]["a"], 1);
        assert_eq!(parsed["cart"], "x", "text that is not JSON stays text");
    }
}
