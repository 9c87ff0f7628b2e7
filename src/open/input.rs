//! What a render sees, decided in one place, and so its render cache key: `ctx` (only the
//! fields the block reads), `subscriber`, `now` (rounded to the block's time bucket), `query`
//! (a countdown's made canonical), `block`; and, for blocks that declare them
//! (`request = [...]`), the opener's `client`, `location` and `nearest_stores`. A countdown also
//! sees what it needs of the reader (time zone, country) and of the client (Apple's prefetch
//! gets the still of when it ends), but only as its resolved request: the reader's zone is in
//! the key only when it changes the picture. [`RenderInput::decide`] builds it; [`RenderKey`]
//! is hashed from exactly what it holds, and [`RequestDependence`] says what of the request
//! beyond the URL the bytes depend on.

use super::local_time::LocalTime;
use super::opener::Opener;
use crate::blocks::{Block, BlockKind, Campaign};
use crate::cache::RenderKey;
use crate::context::ContextFields;
use crate::countdown::{CountdownError, CountdownRequest, OpenFacts};
use crate::render::Format;
use crate::sources::countries::CountryCode;
use crate::sources::geo_ip::{self, Location, LocationSource, Locators};
use crate::sources::mail_clients::{Client, ClientKind};
use crate::sources::shop_stores::NearbyShopStore;
use crate::sources::Sources;
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
    /// Who fetched (kind, machine flag, evidence), only for blocks with `request = ["client"]`
    /// (left out of the cache key otherwise, so other blocks do not split their cache by client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Client>,
    /// The reader's location, only for blocks with `request = ["location"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// (Boxed: most inputs have none, and they are kept in enums and caches.)
    pub location: Option<Box<Location>>,
    /// A countdown's deadline, language and first-frame flag, resolved once per open
    /// ([`RenderInput::decide`]); `None` for other blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub countdown: Option<CountdownRequest>,
    /// The stores nearest to `location`, nearest first (empty without coordinates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nearest_stores: Vec<NearbyShopStore>,
    /// The reader's local time, only for blocks with `request = ["time"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalTime>,
    /// What the block's feeds returned (`null` for one without a value), by feed name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub feeds: BTreeMap<String, serde_json::Value>,
    /// The live counts of the block's poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<serde_json::Value>,
    /// The variant shown: chosen by the block's rules in [`RenderInput::decide`], or the arm
    /// of its test chosen before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// What a countdown knows of the reader of this fetch. Never stored (a lock keeps what the
    /// first open saw, not who reads now) nor hashed: [`RenderInput::decide`] finds it from the
    /// context and the opener unless a caller set it (a preview, a test), and it reaches the key
    /// only through the resolved request, where it changes the picture.
    #[serde(skip)]
    pub reader: Option<Reader>,
}

/// What a countdown knows of its reader.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reader {
    /// The reader's IANA zone (`location.time_zone`).
    pub time_zone: Option<String>,
    pub country: Option<CountryCode>,
    /// The facts come from (or could come from) the client's address rather than the context:
    /// another address could give other facts.
    pub by_address: bool,
}

impl TemplateInput {
    /// Builds the input for `block`, keeping only the context fields and query parameters it
    /// reads (others never reach the template or split the render key) and rounding `now`
    /// down to its time bucket.
    pub fn for_block(
        block: &Block,
        context: &ContextFields,
        subscriber: Option<&str>,
        now: DateTime<Utc>,
        mut query: BTreeMap<String, String>,
    ) -> Self {
        query.retain(|key, _| block.reads_query_key(key));
        let ctx = context
            .iter()
            .filter(|(field, _)| block.reads_field(field))
            .map(|(field, value)| (field.clone(), value.clone()))
            .collect();
        Self {
            ctx,
            subscriber: subscriber
                .filter(|_| block.reads_context())
                .map(str::to_owned),
            now: bucket_start(block, now),
            query,
            client: None,
            location: None,
            countdown: None,
            nearest_stores: Vec::new(),
            local: None,
            feeds: BTreeMap::new(),
            poll: None,
            variant: None,
            reader: None,
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
            let unknown =
                || Client::of_kind(ClientKind::Unknown, crate::sources::mail_clients::NO_RULE);
            context.insert("client", &self.client.clone().unwrap_or_else(unknown));
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
        if block.reads_time {
            context.insert("local", &self.local);
        }
        if !block.feeds.is_empty() {
            let feeds: BTreeMap<&str, &serde_json::Value> = block
                .feeds
                .iter()
                .map(|name| {
                    let value = self.feeds.get(name).unwrap_or(&serde_json::Value::Null);
                    (name.as_str(), value)
                })
                .collect();
            context.insert("feeds", &feeds);
        }
        if block.poll.is_some() {
            context.insert("poll", &self.poll);
        }
        context.insert("variant", &self.variant);
        context.insert(
            "block",
            &json!({"name": block.name, "width": block.width, "height": block.height}),
        );
        context
    }
}

/// `now` rounded down to the start of `block`'s time bucket (what its renders see as `now`).
pub(super) fn bucket_start(block: &Block, now: DateTime<Utc>) -> DateTime<Utc> {
    let bucket = i64::from(block.time_bucket_secs.max(1));
    let rounded = now.timestamp().div_euclid(bucket) * bucket;
    DateTime::from_timestamp(rounded, 0).unwrap_or(now)
}

/// How many stores `nearest_stores` lists.
pub(super) const NEAREST_STORES: usize = 3;

/// What of the request, beyond the URL, a render's bytes depend on (for `Vary` and for
/// whether a shared block may sit in a shared cache).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestDependence {
    /// The User-Agent changes the bytes: the template reads `client`, or `location` came from
    /// the address (an image proxy's User-Agent turns the address off), or the block is a
    /// countdown (the Word Outlook gets the first frame, Apple's prefetch the still).
    pub user_agent: bool,
    /// The client *address* changes the bytes (location by address, Apple's relay ranges,
    /// scanner networks): no `Vary` can key that.
    pub client_address: bool,
}

/// One render's input and its cache key, decided together so they can never disagree.
pub struct RenderInput {
    pub input: TemplateInput,
    pub key: RenderKey,
    pub depends_on: RequestDependence,
}

impl RenderInput {
    /// Decides what the render of `block` sees from `input` (the context fields it reads or a
    /// lock's stored inputs): a countdown's deadline and language resolved — once — into its
    /// request and canonical query, with `first_frame` for clients that show only a GIF's
    /// first frame and the still of when it ends for clients that keep their copy (bad
    /// `until`, `tz` or `lang` are errors, so the block's fallback). The key then holds exactly
    /// (block version, deadline, language, first-frame flag or still with its zone, the second
    /// of the open), and concurrent opens in one second render once.
    pub fn decide(
        campaign: &Campaign,
        block: &Block,
        format: Format,
        scale: u8,
        mut input: TemplateInput,
        opener: &Opener,
        sources: &Sources,
    ) -> Result<Self, CountdownError> {
        let mut countdown_by_address = false;
        if let Some(spec) = &block.countdown {
            let still_for =
                |kind: ClientKind, machine: bool| spec.on_prefetch.wants_still(kind, machine);
            // The reader is looked up only when the countdown can use them.
            let reader = match input.reader.take() {
                Some(reader) => reader,
                None if spec.may_consult_reader(&input.query)
                    || still_for(opener.client.kind, opener.client.machine) =>
                {
                    reader_of(&input, opener, sources)
                }
                None => Reader::default(),
            };
            let facts = OpenFacts {
                reader_zone: reader.time_zone.as_deref().and_then(|z| z.parse().ok()),
                reader_country: reader.country,
                still: still_for(opener.client.kind, opener.client.machine),
            };
            let resolved = spec.resolve_for(&input.ctx, &input.query, facts)?;
            let mut request = resolved.request;
            if request.ends.is_none() {
                request.first_frame_only |= opener.first_frame_only();
            }
            countdown_by_address = opener.address_decides(still_for)
                || (resolved.consulted_reader && reader.by_address);
            input.query = request.canonical_query();
            input.countdown = Some(request);
        }
        choose_variant(block, &mut input);
        let locators = sources.locators();
        let depends_on =
            RequestDependence::of(block, &input, opener, locators, countdown_by_address);
        // serde_json writes maps in key order, so equal inputs hash equally.
        let canonical = serde_json::to_vec(&input).unwrap_or_default();
        let key = RenderKey::new(
            &campaign.name,
            campaign.version,
            &block.name,
            format,
            scale,
            &canonical,
        );
        Ok(Self {
            input,
            key,
            depends_on,
        })
    }
}

impl RequestDependence {
    fn of(
        block: &Block,
        input: &TemplateInput,
        opener: &Opener,
        locators: Locators<'_>,
        countdown_by_address: bool,
    ) -> Self {
        let locating = locators.geo.is_some() || locators.egress.is_some();
        let location_by_request = (block.reads_location || block.reads_time)
            && locating
            && input
                .location
                .as_ref()
                .is_none_or(|l| l.source != LocationSource::Context);
        // Another address may locate the reader elsewhere when some classification this
        // User-Agent can get is located by address.
        let location_by_address = location_by_request
            && opener
                .reachable
                .any(|kind, machine| locators.can_locate(kind, machine));
        Self {
            user_agent: block.reads_client
                || location_by_request
                || block.kind == BlockKind::Countdown,
            client_address: block.reads_client || location_by_address || countdown_by_address,
        }
    }
}

/// Sets the variant `input` shows: a test's arm chosen before stays (if the block has it), else
/// the block's rules pick one; blocks without variants show none.
pub(super) fn choose_variant(block: &Block, input: &mut TemplateInput) {
    let Some(variants) = &block.variants else {
        input.variant = None;
        return;
    };
    if input
        .variant
        .as_deref()
        .is_some_and(|name| variants.get(name).is_some())
    {
        return;
    }
    input.variant = if variants.is_test() {
        None
    } else {
        Some(
            variants
                .by_rules(&input.to_tera_context(block))
                .name
                .clone(),
        )
    };
}

/// One open of `block` as its template will see it, before [`RenderInput::decide`]: the
/// context `fields` it reads, the subscriber, `now` in its time bucket, the template query,
/// and the opener facts it declares. The server, `opentime render` and `opentime check` all
/// build inputs here.
pub fn from_context(
    block: &Block,
    fields: &ContextFields,
    subscriber: Option<&str>,
    now: DateTime<Utc>,
    query: BTreeMap<String, String>,
    opener: &Opener,
    sources: &Sources,
) -> TemplateInput {
    let mut input = TemplateInput::for_block(block, fields, subscriber, now, query);
    add_opener_facts(&mut input, block, opener, sources);
    input
}

/// Adds to `input` what `block` declared it reads about the open: `client`; `location`
/// (the context's `location` field when the block reads it, else the address through the
/// MaxMind database unless an image proxy or a machine fetched, else Apple's egress list for
/// its relays, else unknown) and the stores nearest to it.
fn add_opener_facts(input: &mut TemplateInput, block: &Block, opener: &Opener, sources: &Sources) {
    if block.reads_client {
        input.client = Some(opener.client.clone());
    }
    if block.reads_time {
        let reader = reader_of(input, opener, sources);
        input.local = Some(LocalTime::at(input.now, reader.time_zone.as_deref()));
    }
    if !block.reads_location {
        return;
    }
    let location = geo_ip::resolve(
        input.ctx.get("location"),
        &opener.client,
        opener.ip,
        sources.locators(),
    );
    input.nearest_stores = location
        .coordinates()
        .map(|(lat, lon)| sources.stores.nearest(lat, lon, NEAREST_STORES))
        .unwrap_or_default();
    input.location = Some(Box::new(location));
}

/// What a countdown knows of the reader of this fetch: the zone and country of their location,
/// found as `location` is (whether or not the block declares it), and whether another address
/// could have found other ones.
fn reader_of(input: &TemplateInput, opener: &Opener, sources: &Sources) -> Reader {
    let locators = sources.locators();
    let location = geo_ip::resolve(
        input.ctx.get("location"),
        &opener.client,
        opener.ip,
        locators,
    );
    let by_address = location.source != LocationSource::Context
        && opener
            .reachable
            .any(|kind, machine| locators.can_locate(kind, machine));
    Reader {
        time_zone: location.time_zone,
        country: location.country,
        by_address,
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
            client: Some(Client::of_kind(ClientKind::GmailProxy, "gmail-image-proxy")),
            nearest_stores: ShopStores::demo().nearest(48.86, 2.34, 2),
            location: Some(Box::new(location)),
            ..TemplateInput::default()
        };
        let json = serde_json::to_string(&with_facts).unwrap();
        let back: TemplateInput = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert_eq!(back.client.map(|c| c.kind), Some(ClientKind::GmailProxy));
        assert_eq!(back.nearest_stores[0].store.id, "par-marais");
    }
}
