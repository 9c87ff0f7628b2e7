//! Live reload: a server-sent event stream that tells open studio pages about every reload
//! of the templates (the file watcher's, or a save's), with the error of each campaign whose
//! last change was refused, so a page redraws within a second of a change on disk.

use super::error_view::ErrorView;
use crate::blocks::Catalog;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::json;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

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
            let value = json!({
                "version": loaded.map(|c| format!("{:016x}", c.version)),
                "refused": refused,
            });
            (name, value)
        })
        .collect();
    json!({"generation": generation, "campaigns": campaigns})
}
