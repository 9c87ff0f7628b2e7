//! Live reload: a server-sent event stream that tells open studio pages about every reload
//! of the templates (the file watcher's, or a save's), with the error of each campaign whose
//! last change was refused, so a page redraws within a second of a change on disk.

use super::error_view::ErrorView;
use crate::blocks::{Block, Campaign, Catalog};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::json;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use xxhash_rust::xxh3::Xxh3;

/// A comment line sent this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The body of an event stream: what the stream's task sends, as it sends it.
pub(super) struct EventStream {
    events: mpsc::Receiver<Bytes>,
}

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.events
            .poll_recv(cx)
            .map(|event| event.map(|bytes| Ok(Frame::data(bytes))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Starts a stream of the catalog's reloads: one `reload` event now (the current state) and
/// one after every reload; it ends when the page goes away.
pub(super) fn reload_events(catalog: Arc<Catalog>) -> EventStream {
    let (sender, events) = mpsc::channel(8);
    let mut reloads = catalog.reloads();
    tokio::spawn(async move {
        loop {
            let generation = *reloads.borrow_and_update();
            let event = format!("event: reload\ndata: {}\n\n", state(&catalog, generation));
            if sender.send(Bytes::from(event)).await.is_err() {
                return;
            }
            loop {
                match tokio::time::timeout(KEEP_ALIVE, reloads.changed()).await {
                    Ok(Ok(())) => break,
                    Ok(Err(_)) => return,
                    Err(_) => {
                        if sender
                            .send(Bytes::from_static(b": keep-alive\n\n"))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
    });
    EventStream { events }
}

/// What a block's pictures are made from besides the campaign's shared files (among them
/// `blocks.toml`, hence its settings), hashed: the files it names (templates, fallbacks). A page
/// redraws only the blocks whose fingerprint changed, unless the shared fingerprint changed.
fn block_fingerprint(campaign: &Campaign, block: &Block) -> String {
    let mut hasher = Xxh3::new();
    for file in block_files(block) {
        hasher.update(file.as_bytes());
        hasher.update(&std::fs::read(campaign.dir.join(file)).unwrap_or_default());
    }
    format!("{:016x}", hasher.digest())
}

/// The files a block names in the manifest.
fn block_files(block: &Block) -> impl Iterator<Item = &String> {
    [
        &block.template,
        &block.html_template,
        &block.fallback,
        &block.fallback_html,
    ]
    .into_iter()
    .flatten()
}

/// What every block of a campaign may read, hashed: the samples and every file no block
/// names (templates other templates include or import, images, ...).
fn shared_fingerprint(campaign: &Campaign) -> String {
    let named: std::collections::BTreeSet<&String> =
        campaign.blocks().flat_map(|b| block_files(b)).collect();
    let mut hasher = Xxh3::new();
    let mut stack = vec![campaign.dir.clone()];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(&campaign.dir) {
                let relative = relative.to_string_lossy().into_owned();
                if !named.contains(&relative) {
                    files.push((relative, path));
                }
            }
        }
    }
    files.sort();
    for (name, path) in files {
        hasher.update(name.as_bytes());
        hasher.update(&std::fs::read(path).unwrap_or_default());
    }
    format!("{:016x}", hasher.digest())
}

/// The catalog as a page needs it: the generation, each campaign's version and refused change.
fn state(catalog: &Catalog, generation: u64) -> serde_json::Value {
    let campaigns: serde_json::Map<String, serde_json::Value> = catalog
        .campaign_dirs()
        .into_iter()
        .map(|name| {
            let loaded = catalog.campaign(&name);
            let refused = catalog
                .refused(&name)
                .map(|message| ErrorView::new(&message, &catalog.root().join(&name)));
            let blocks: serde_json::Map<String, serde_json::Value> = loaded
                .iter()
                .flat_map(|campaign| campaign.blocks().map(move |b| (campaign, b)))
                .map(|(campaign, block)| {
                    (
                        block.name.clone(),
                        json!(block_fingerprint(campaign, block)),
                    )
                })
                .collect();
            let value = json!({
                "version": loaded.as_ref().map(|c| format!("{:016x}", c.version)),
                "refused": refused,
                "blocks": blocks,
                "shared": loaded.as_deref().map(shared_fingerprint),
            });
            (name, value)
        })
        .collect();
    json!({"generation": generation, "campaigns": campaigns})
}
