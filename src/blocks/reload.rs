//! Hot reload: a file watcher on the templates directory reloads a campaign within a second
//! of a change. A campaign that fails to load keeps its last good version and the error is
//! logged as `file:line:column: reason`.

use super::Catalog;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Changes arriving within this window are reloaded together (editors write in several steps).
const SETTLE: Duration = Duration::from_millis(150);

/// Keeps the watcher alive; dropping it stops hot reload.
pub struct TemplateWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl TemplateWatcher {
    /// Starts watching the catalog's root; must be called inside a Tokio runtime.
    pub fn start(catalog: Arc<Catalog>) -> notify::Result<Self> {
        let root = catalog
            .root()
            .canonicalize()
            .unwrap_or_else(|_| catalog.root().to_owned());
        let (changes, mut changed) = mpsc::unbounded_channel::<String>();
        let watch_root = root.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if event.kind.is_access() {
                    return;
                }
                for path in &event.paths {
                    if let Some(campaign) = campaign_of(&watch_root, path) {
                        let _ = changes.send(campaign);
                    }
                }
            })?;
        watcher.watch(&root, RecursiveMode::Recursive)?;

        tokio::spawn(async move {
            while let Some(first) = changed.recv().await {
                let mut pending = BTreeSet::from([first]);
                // Let a burst of writes settle, then reload each campaign once.
                while let Ok(Some(name)) = tokio::time::timeout(SETTLE, changed.recv()).await {
                    pending.insert(name);
                }
                for name in pending {
                    let catalog = Arc::clone(&catalog);
                    let result =
                        tokio::task::spawn_blocking(move || catalog.reload(&name).map(|_| name))
                            .await;
                    match result {
                        Ok(Ok(name)) => tracing::info!(campaign = %name, "templates reloaded"),
                        Ok(Err(error)) => {
                            tracing::error!(%error, "template change rejected; still serving the last good version")
                        }
                        Err(error) => tracing::error!(%error, "template reload task failed"),
                    }
                }
            }
        });
        Ok(Self { _watcher: watcher })
    }
}

/// The campaign directory (first component under the root) a changed path belongs to.
fn campaign_of(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let first = relative.components().next()?;
    let name = first.as_os_str().to_str()?;
    super::is_valid_name(name).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_paths_to_campaigns() {
        let root = Path::new("/t");
        assert_eq!(
            campaign_of(root, Path::new("/t/demo/cart.svg")).as_deref(),
            Some("demo")
        );
        assert_eq!(
            campaign_of(root, Path::new("/t/demo")).as_deref(),
            Some("demo")
        );
        assert_eq!(campaign_of(root, Path::new("/elsewhere/x")), None);
        assert_eq!(campaign_of(root, Path::new("/t/.hidden/x")), None);
    }
}
