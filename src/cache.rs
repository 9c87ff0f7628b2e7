//! The render cache: finished answers keyed by everything that decides their bytes.
//!
//! The key hashes the campaign's template version, the block, the format and scale, and the
//! render's input in its canonical form, which `open::input` decides (the context fields the
//! block reads, the subscriber, `now` rounded to the block's time bucket, the query, the
//! opener's facts the block declares). Entries are weighed by their size in bytes against a
//! configured cap, and concurrent misses for one key render once (moka's `try_get_with`).

use crate::render::{Format, Rendered};
use bytes::Bytes;
use moka::future::Cache;
use std::future::Future;
use std::sync::Arc;
use xxhash_rust::xxh3::Xxh3;

/// Identifies one render's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RenderKey(u128);

impl RenderKey {
    pub fn new(
        campaign: &str,
        campaign_version: u64,
        block: &str,
        format: Format,
        scale: u8,
        canonical_input: &[u8],
    ) -> Self {
        let mut hasher = Xxh3::new();
        for part in [campaign, block, format.as_str()] {
            hasher.update(part.as_bytes());
            hasher.update(&[0]);
        }
        hasher.update(&campaign_version.to_le_bytes());
        hasher.update(&[scale]);
        hasher.update(canonical_input);
        Self(hasher.digest128())
    }
}

/// A cached answer with its validator.
#[derive(Debug)]
pub struct CachedRender {
    pub bytes: Bytes,
    pub content_type: &'static str,
    /// Strong ETag, quoted, derived from the bytes.
    pub etag: String,
    /// Set when some remote image slots show a placeholder: the
    /// `X-Opentime-Image-Fallback` value. Such a render is never cached (see `http::headers`).
    pub image_fallback: Option<String>,
    /// Whose render it is (`None` for shared blocks), so erasing a subscriber can drop it.
    pub subscriber: Option<String>,
}

impl CachedRender {
    pub fn new(rendered: Rendered) -> Self {
        let etag = format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(&rendered.bytes));
        Self {
            bytes: rendered.bytes,
            content_type: rendered.content_type,
            etag,
            image_fallback: None,
            subscriber: None,
        }
    }

    /// Marks whose render it is.
    pub fn for_subscriber(mut self, subscriber: Option<String>) -> Self {
        self.subscriber = subscriber;
        self
    }

    /// Marks a render whose remote images were (partly) replaced by placeholders.
    pub fn with_image_fallback(mut self, image_fallback: Option<String>) -> Self {
        self.image_fallback = image_fallback;
        self
    }
}

#[derive(Clone)]
pub struct RenderCache {
    entries: Cache<RenderKey, Arc<CachedRender>>,
}

impl RenderCache {
    /// A cache holding at most `max_bytes` of rendered output.
    pub fn new(max_bytes: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_, value: &Arc<CachedRender>| {
                u32::try_from(value.bytes.len() + 128).unwrap_or(u32::MAX)
            })
            .support_invalidation_closures()
            .build();
        Self { entries }
    }

    /// Drops every cached render of `subscriber` (erasure).
    pub fn forget_subscriber(&self, subscriber: &str) {
        let subscriber = subscriber.to_owned();
        let dropped = self.entries.invalidate_entries_if(move |_, render| {
            render.subscriber.as_deref() == Some(subscriber.as_str())
        });
        if let Err(error) = dropped {
            tracing::error!(%error, "cached renders of an erased subscriber could not be dropped");
        }
    }

    pub async fn get(&self, key: &RenderKey) -> Option<Arc<CachedRender>> {
        self.entries.get(key).await
    }

    /// The cached answer for `key`, or the result of `render` — run once however many callers
    /// miss on the same key at the same time. Errors are not cached. The flag tells whether
    /// this call was a hit: true also for a caller that waited on another caller's render, so
    /// misses count renders, not waiters.
    pub async fn get_or_render<F, E>(
        &self,
        key: RenderKey,
        render: F,
    ) -> Result<(Arc<CachedRender>, bool), Arc<E>>
    where
        F: Future<Output = Result<Arc<CachedRender>, E>>,
        E: Send + Sync + 'static,
    {
        if let Some(hit) = self.entries.get(&key).await {
            return Ok((hit, true));
        }
        let rendered_here = std::sync::atomic::AtomicBool::new(false);
        let render = async {
            rendered_here.store(true, std::sync::atomic::Ordering::Relaxed);
            render.await
        };
        let value = self.entries.try_get_with(key, render).await?;
        Ok((
            value,
            !rendered_here.load(std::sync::atomic::Ordering::Relaxed),
        ))
    }

    /// Bytes held now (pending insertions and evictions applied first).
    pub async fn weighted_size(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A render input's canonical bytes (`open::input` writes them the same way).
    fn input(first_name: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "ctx": {"profile": {"first_name": first_name}},
            "now": "2023-11-14T22:13:20Z",
        }))
        .unwrap()
    }

    #[test]
    fn keys_change_with_every_input() {
        let base = RenderKey::new("demo", 1, "cart", Format::Png, 1, &input("Alice"));
        assert_eq!(
            base,
            RenderKey::new("demo", 1, "cart", Format::Png, 1, &input("Alice"))
        );
        assert_ne!(
            base,
            RenderKey::new("demo", 2, "cart", Format::Png, 1, &input("Alice"))
        );
        assert_ne!(
            base,
            RenderKey::new("demo", 1, "cart", Format::Png, 2, &input("Alice"))
        );
        assert_ne!(
            base,
            RenderKey::new("demo", 1, "cart", Format::Html, 1, &input("Alice"))
        );
        assert_ne!(
            base,
            RenderKey::new("demo", 1, "cart", Format::Png, 1, &input("Alicia"))
        );
        assert_ne!(
            base,
            RenderKey::new("demo", 1, "cart2", Format::Png, 1, &input("Alice"))
        );
    }

    #[tokio::test]
    async fn concurrent_misses_render_once() {
        let cache = RenderCache::new(1 << 20);
        let renders = Arc::new(AtomicUsize::new(0));
        let key = RenderKey::new("demo", 1, "cart", Format::Png, 1, &input("Alice"));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let cache = cache.clone();
                let renders = Arc::clone(&renders);
                tokio::spawn(async move {
                    cache
                        .get_or_render(key, async {
                            renders.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            Ok::<_, std::io::Error>(Arc::new(CachedRender::new(Rendered {
                                bytes: Bytes::from_static(b"png"),
                                content_type: "image/png",
                            })))
                        })
                        .await
                        .map(|(render, hit)| (render.etag.clone(), hit))
                        .unwrap()
                })
            })
            .collect();
        let mut etags = Vec::new();
        for task in tasks {
            etags.push(task.await.unwrap());
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        assert!(etags
            .iter()
            .all(|(e, _)| e == &etags[0].0 && e.starts_with('"')));
        // Callers that waited on another's render count as hits: misses count renders.
        assert_eq!(etags.iter().filter(|(_, hit)| !hit).count(), 1);
    }

    #[tokio::test]
    async fn forgetting_a_subscriber_drops_only_their_renders() {
        let cache = RenderCache::new(1 << 20);
        let render = |subscriber: &'static str| {
            let rendered = Rendered {
                bytes: Bytes::from(subscriber),
                content_type: "image/png",
            };
            async move {
                let render = CachedRender::new(rendered).for_subscriber(Some(subscriber.into()));
                Ok::<_, ()>(Arc::new(render))
            }
        };
        let alice = RenderKey::new("demo", 1, "cart", Format::Png, 1, &input("Alice"));
        let bob = RenderKey::new("demo", 1, "cart", Format::Png, 1, &input("Bob"));
        cache.get_or_render(alice, render("alice")).await.unwrap();
        cache.get_or_render(bob, render("bob")).await.unwrap();
        assert!(cache.get(&alice).await.is_some());
        cache.forget_subscriber("alice");
        assert!(cache.get(&alice).await.is_none(), "alice's render is gone");
        assert!(cache.get(&bob).await.is_some(), "bob's render stays");
    }
}
