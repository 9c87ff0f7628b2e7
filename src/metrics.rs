//! Prometheus metrics, served on `/metrics` in the text format.
//!
//! Labels are bounded sets (route names, status codes, fallback reasons), never ids or URLs.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnonymousLabels {
    pub kind: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FormatLabels {
    pub format: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub fallbacks: Family<ReasonLabels, Counter>,
    pub render_seconds: Family<FormatLabels, Histogram>,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub cache_bytes: Gauge<u64, AtomicU64>,
    /// Bytes of the rasterizer's kept text tiles and kept glyphs (fixed caps, beside the
    /// render cache's).
    pub text_tile_bytes: Gauge<u64, AtomicU64>,
    pub glyph_bytes: Gauge<u64, AtomicU64>,
    pub png_band_bytes: Gauge<u64, AtomicU64>,
    pub store_seconds: Family<OutcomeLabels, Histogram>,
    /// Remote photos replaced by a placeholder, by reason (`timeout`, `host-not-allowed`, …).
    pub image_placeholders: Family<ReasonLabels, Counter>,
    /// What opens got from their feeds: `fresh`, `stale` (the last good value while the feed
    /// fails) or the reason there was none (`timeout`, `status`, `deadline`, …).
    pub feed_values: Family<OutcomeLabels, Counter>,
    /// Events put on the writer's queue.
    pub events_queued: Counter,
    /// Events written to the store.
    pub events_written: Counter,
    /// Events dropped because the queue was full (the store was down for too long).
    pub events_dropped: Counter,
    /// Events the store refused one by one (dropped, never retried), by reason.
    pub events_failed: Family<ReasonLabels, Counter>,
    /// Tracking pixel fetches that name no verified subscriber (`no-subscriber`, `bad-token`):
    /// counted here only, never written as events.
    pub pixel_anonymous: Family<ReasonLabels, Counter>,
    /// Opens and clicks without a verified subscriber (no event written), by kind and reason.
    pub anonymous: Family<AnonymousLabels, Counter>,
    /// Connections the server closed to protect itself, by reason (`address-cap`,
    /// `header-timeout`, `idle-timeout`, `write-timeout`).
    pub connections_closed: Family<ReasonLabels, Counter>,
}

fn render_histogram() -> Histogram {
    // 0.25 ms … ~1 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 13))
}

fn store_histogram() -> Histogram {
    // 0.1 ms … ~200 ms
    Histogram::new(exponential_buckets(0.000_1, 2.0, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("opentime");
        let requests = Family::<RequestLabels, Counter>::default();
        let fallbacks = Family::<ReasonLabels, Counter>::default();
        let render_seconds = Family::<FormatLabels, Histogram>::new_with_constructor(
            render_histogram as fn() -> Histogram,
        );
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let cache_bytes = Gauge::<u64, AtomicU64>::default();
        let store_seconds = Family::<OutcomeLabels, Histogram>::new_with_constructor(
            store_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register("fallbacks", "Fallback answers by reason", fallbacks.clone());
        registry.register(
            "render_seconds",
            "Time to render a block on a cache miss",
            render_seconds.clone(),
        );
        registry.register("render_cache_hits", "Render cache hits", cache_hits.clone());
        registry.register(
            "render_cache_misses",
            "Render cache misses",
            cache_misses.clone(),
        );
        registry.register(
            "render_cache_bytes",
            "Bytes held by the render cache",
            cache_bytes.clone(),
        );
        let text_tile_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "text_tile_cache_bytes",
            "Bytes of texts kept drawn for later renders (capped)",
            text_tile_bytes.clone(),
        );
        let glyph_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "glyph_cache_bytes",
            "Bytes of glyphs kept for plain texts (capped)",
            glyph_bytes.clone(),
        );
        let png_band_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "png_band_cache_bytes",
            "Bytes of PNG rows kept deflated for later renders (capped)",
            png_band_bytes.clone(),
        );
        registry.register(
            "store_lookup_seconds",
            "Context store lookup time by outcome",
            store_seconds.clone(),
        );
        let image_placeholders = Family::<ReasonLabels, Counter>::default();
        let feed_values = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "feed_values",
            "Feed values opens got, by outcome (fresh, stale, or why there was none)",
            feed_values.clone(),
        );
        registry.register(
            "image_placeholders",
            "Product photos shown as a placeholder, by reason",
            image_placeholders.clone(),
        );
        let events_queued = Counter::default();
        let events_written = Counter::default();
        let events_dropped = Counter::default();
        registry.register(
            "events_queued",
            "Open and click events queued for writing",
            events_queued.clone(),
        );
        registry.register(
            "events_written",
            "Open and click events written to the store",
            events_written.clone(),
        );
        registry.register(
            "events_dropped",
            "Open and click events dropped because the queue was full",
            events_dropped.clone(),
        );
        let events_failed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "events_failed",
            "Events the store refused (dropped alone, not retried), by reason",
            events_failed.clone(),
        );
        let pixel_anonymous = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "pixel_anonymous",
            "Tracking pixel fetches without a verified subscriber (no event written), by reason",
            pixel_anonymous.clone(),
        );
        let anonymous = Family::<AnonymousLabels, Counter>::default();
        registry.register(
            "anonymous",
            "Opens and clicks without a verified subscriber (no event written), by kind and reason",
            anonymous.clone(),
        );
        let connections_closed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "connections_closed",
            "Connections closed by the server's connection limits, by reason",
            connections_closed.clone(),
        );
        Self {
            events_failed,
            pixel_anonymous,
            anonymous,
            connections_closed,
            image_placeholders,
            feed_values,
            events_queued,
            events_written,
            events_dropped,
            registry,
            requests,
            fallbacks,
            render_seconds,
            cache_hits,
            cache_misses,
            cache_bytes,
            text_tile_bytes,
            glyph_bytes,
            png_band_bytes,
            store_seconds,
        }
    }

    /// Registers the renderer's count of characters no font has (drawn as boxes), which the
    /// renderer keeps itself.
    pub fn count_missing_characters(&mut self, counter: Counter) {
        self.registry.register(
            "missing_characters",
            "Characters drawn as a missing-glyph box because no font has them",
            counter,
        );
    }

    pub fn feed_value(&self, outcome: &'static str) {
        self.feed_values
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn fallback(&self, reason: &'static str) {
        self.fallbacks.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn event_failed(&self, reason: &'static str) {
        self.events_failed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn pixel_anonymous(&self, reason: &'static str) {
        self.pixel_anonymous
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn anonymous(&self, kind: &'static str, reason: &'static str) {
        self.anonymous
            .get_or_create(&AnonymousLabels { kind, reason })
            .inc();
    }

    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn request(&self, route: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_renderer_s_missing_characters() {
        let mut metrics = Metrics::new();
        let counter = Counter::default();
        metrics.count_missing_characters(counter.clone());
        counter.inc_by(3);
        let text = metrics.encode();
        assert!(
            text.contains("opentime_missing_characters_total 3"),
            "{text}"
        );
    }

    #[test]
    fn encodes_counters_with_labels() {
        let metrics = Metrics::new();
        metrics.fallback("bad-token");
        metrics.fallback("bad-token");
        metrics.request("img", 200);
        let text = metrics.encode();
        assert!(
            text.contains("opentime_fallbacks_total{reason=\"bad-token\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("opentime_http_requests_total{route=\"img\",status=\"200\"} 1"),
            "{text}"
        );
    }
}
