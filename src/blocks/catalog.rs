//! Every loaded campaign, swappable one campaign at a time while requests read it. Each
//! reload, good or refused, is announced (a generation number others can watch), and the
//! error of a campaign whose last reload was refused is kept until a reload succeeds.

use super::campaign::{Campaign, CampaignError, MANIFEST_FILE};
use super::manifest::Block;
use crate::render::Renderer;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

type Campaigns = BTreeMap<String, Arc<Campaign>>;

pub struct Catalog {
    root: PathBuf,
    renderer: Arc<Renderer>,
    campaigns: ArcSwap<Campaigns>,
    /// Why each campaign's last reload was refused (the last good version still serves).
    refused: Mutex<BTreeMap<String, String>>,
    /// Bumped after every reload, good or refused.
    reloads: watch::Sender<u64>,
}

impl Catalog {
    /// Loads every campaign under `root` (each directory holding a `blocks.toml`). Campaigns
    /// that fail to load are left out and their errors returned, so one bad campaign does not
    /// take the others down.
    pub fn load(root: &Path, renderer: Arc<Renderer>) -> (Self, Vec<CampaignError>) {
        let catalog = Self {
            root: root.to_owned(),
            renderer,
            campaigns: ArcSwap::from_pointee(Campaigns::new()),
            refused: Mutex::new(BTreeMap::new()),
            reloads: watch::Sender::new(0),
        };
        let mut errors = Vec::new();
        for name in catalog.campaign_dirs() {
            if let Err(error) = catalog.reload(&name) {
                errors.push(error);
            }
        }
        (catalog, errors)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn renderer(&self) -> &Arc<Renderer> {
        &self.renderer
    }

    /// Names of the directories under the root that hold a manifest, sorted.
    pub fn campaign_dirs(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join(MANIFEST_FILE).is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|name| super::is_valid_name(name))
            .collect();
        names.sort();
        names
    }

    /// (Re)loads one campaign from disk. On error the last good version stays in service.
    /// A campaign whose directory is gone is removed.
    pub fn reload(&self, name: &str) -> Result<(), CampaignError> {
        let result = self.load_campaign(name);
        if let Ok(mut refused) = self.refused.lock() {
            match &result {
                Ok(()) => refused.remove(name),
                Err(error) => refused.insert(name.to_owned(), error.to_string()),
            };
        }
        self.reloads.send_modify(|generation| *generation += 1);
        result
    }

    /// A receiver that sees the generation change after every reload.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Why the last reload of `name` was refused, while its last good version serves.
    pub fn refused(&self, name: &str) -> Option<String> {
        self.refused.lock().ok()?.get(name).cloned()
    }

    fn load_campaign(&self, name: &str) -> Result<(), CampaignError> {
        let dir = self.root.join(name);
        if !dir.join(MANIFEST_FILE).is_file() {
            self.campaigns.rcu(|current| {
                let mut next = Campaigns::clone(current);
                next.remove(name);
                next
            });
            return Ok(());
        }
        let previous = self.campaign(name);
        let campaign = Arc::new(Campaign::load_after(
            &dir,
            &self.renderer,
            previous.as_deref(),
        )?);
        self.campaigns.rcu(|current| {
            let mut next = Campaigns::clone(current);
            next.insert(name.to_owned(), Arc::clone(&campaign));
            next
        });
        Ok(())
    }

    pub fn campaign(&self, name: &str) -> Option<Arc<Campaign>> {
        self.campaigns.load().get(name).cloned()
    }

    pub fn campaigns(&self) -> Vec<Arc<Campaign>> {
        self.campaigns.load().values().cloned().collect()
    }

    /// The campaign and block a request names, if both exist.
    pub fn find(&self, campaign: &str, block: &str) -> Option<(Arc<Campaign>, Arc<Block>)> {
        let campaign = self.campaign(campaign)?;
        let block = Arc::clone(campaign.block(block)?);
        Some((campaign, block))
    }
}
