//! What an open may consult besides the subscriber's context: product photos from the shop's
//! image hosts ([`product_photos`]), the reader's location by IP ([`geo_ip`]), the mail-client,
//! image-proxy and scanner rules ([`mail_clients`]) with Apple's relay egress list
//! ([`apple_egress`]), countries and their time zones ([`countries`]) and the shop's physical
//! stores ([`shop_stores`]).
//! Built once at start-up from [`SourcesArgs`]; a bad setting stops start-up with a clear
//! error instead of failing opens later.

pub mod apple_egress;
pub mod countries;
pub mod feeds;
pub mod geo_ip;
pub(crate) mod ip_ranges;
pub mod mail_clients;
pub mod product_photos;
pub mod shop_stores;

use crate::config::SourcesArgs;
use apple_egress::{AppleEgress, EgressError};
use feeds::{FeedConfig, FeedConfigError, Feeds};
use geo_ip::{GeoDb, GeoError, Locators};
use mail_clients::{ClientRules, ClientRulesError};
use product_photos::{ProductPhotoConfig, ProductPhotoConfigError, ProductPhotos};
use shop_stores::{ShopStores, ShopStoresError};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    #[error("OPENTIME_IMAGE_HOSTS: {0}")]
    Photos(#[from] ProductPhotoConfigError),
    #[error("OPENTIME_IMAGE_RESOLVE: `{0}` is not HOST=IP")]
    Resolve(String),
    #[error("OPENTIME_FEED_HOSTS: {0}")]
    Feeds(#[from] FeedConfigError),
    #[error("OPENTIME_FEED_RESOLVE: `{0}` is not HOST=IP")]
    FeedResolve(String),
    #[error("OPENTIME_GEOIP_DB: {0}")]
    Geo(#[from] GeoError),
    #[error("OPENTIME_CLIENTS_FILE: {0}")]
    Clients(#[source] ClientRulesError),
    #[error("OPENTIME_MACHINE_NETWORKS: {0}")]
    MachineNetworks(#[source] ClientRulesError),
    #[error("OPENTIME_APPLE_EGRESS_FILE: {0}")]
    AppleEgress(#[from] EgressError),
    #[error("OPENTIME_STORES: {0}")]
    ShopStores(#[from] ShopStoresError),
}

pub struct Sources {
    /// Fetches, resizes and caches product photos from allow-listed hosts.
    pub photos: ProductPhotos,
    /// Fetches and caches the campaigns' live data feeds from allow-listed hosts.
    pub feeds: Feeds,
    /// Locates readers by IP; `None` when no `.mmdb` is configured.
    pub geo: Option<GeoDb>,
    /// Tells mail clients, image proxies and machines apart.
    pub clients: ClientRules,
    /// Apple's relay egress list; `None` when no file is configured.
    pub apple_egress: Option<Arc<AppleEgress>>,
    /// The shop's stores, for "nearest store" blocks.
    pub stores: ShopStores,
}

impl Sources {
    pub fn from_args(args: &SourcesArgs) -> Result<Self, SourcesError> {
        let image_overrides =
            resolve_overrides(&args.image_resolve).map_err(SourcesError::Resolve)?;
        let feeds = Feeds::new(FeedConfig {
            allowed_hosts: args.feed_hosts.clone(),
            private_hosts: args.feed_private_hosts.clone(),
            resolve_overrides: resolve_overrides(&args.feed_resolve)
                .map_err(SourcesError::FeedResolve)?,
            secrets: args
                .feed_secrets
                .iter()
                .map(|secret| (secret.name.clone(), secret.value.clone()))
                .collect(),
        })?;
        let images = ProductPhotos::new(ProductPhotoConfig {
            allowed_hosts: args.image_hosts.clone(),
            private_hosts: args.image_private_hosts.clone(),
            resolve_overrides: image_overrides,
            connect_timeout: Duration::from_millis(args.image_connect_timeout_ms),
            timeout: Duration::from_millis(args.image_timeout_ms),
            max_bytes: args.image_max_bytes,
            cache_ttl: Duration::from_secs(args.image_cache_ttl_secs),
            failure_ttl: Duration::from_secs(args.image_failure_ttl_secs),
            cache_capacity_bytes: args.image_cache_mb.saturating_mul(1024 * 1024),
            ..ProductPhotoConfig::default()
        })?;
        let geo = args.geoip_db.as_deref().map(GeoDb::open).transpose()?;
        let apple_egress = args
            .apple_egress_file
            .as_deref()
            .map(AppleEgress::load)
            .transpose()?
            .map(Arc::new);
        if let Some(egress) = &apple_egress {
            tracing::info!(
                networks = egress.networks(),
                places = egress.places(),
                "Apple relay egress list loaded"
            );
        }
        let mut machine_networks = args.machine_networks.clone();
        if let Some(path) = &args.machine_networks_file {
            machine_networks.extend(
                mail_clients::read_machine_networks(path).map_err(SourcesError::MachineNetworks)?,
            );
        }
        let clients = ClientRules::load(args.clients_file.as_deref())
            .map_err(SourcesError::Clients)?
            .with_machine_networks(&machine_networks)
            .map_err(SourcesError::MachineNetworks)?
            .with_apple_egress(apple_egress.clone());
        let stores = ShopStores::load_or_demo(args.stores.as_deref())?;
        Ok(Self {
            photos: images,
            feeds,
            geo,
            clients,
            apple_egress,
            stores,
        })
    }

    /// What locates readers by their address: the database and the egress list.
    pub fn locators(&self) -> Locators<'_> {
        Locators {
            geo: self.geo.as_ref(),
            egress: self.apple_egress.as_deref(),
        }
    }

    /// The defaults: no remote host allowed, no database, shipped rules, demo stores.
    pub fn defaults() -> Result<Self, SourcesError> {
        Self::from_args(&SourcesArgs::default())
    }
}

/// `HOST=IP` entries (like curl's `--resolve`) as a map; the bad entry as the error.
fn resolve_overrides(entries: &[String]) -> Result<HashMap<String, Vec<IpAddr>>, String> {
    let mut overrides: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for entry in entries {
        let (host, ip) = entry
            .split_once('=')
            .and_then(|(host, ip)| Some((host.trim(), ip.trim().parse::<IpAddr>().ok()?)))
            .ok_or_else(|| entry.clone())?;
        overrides.entry(host.to_owned()).or_default().push(ip);
    }
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    type Tweak = fn(&mut SourcesArgs);

    #[test]
    fn bad_settings_stop_start_up_with_the_setting_named() {
        let cases: [(Tweak, &str); 8] = [
            (
                |a| a.image_resolve = vec!["cdn.test".into()],
                "OPENTIME_IMAGE_RESOLVE",
            ),
            (
                |a| a.image_hosts = vec!["http://cdn.test/".into()],
                "OPENTIME_IMAGE_HOSTS",
            ),
            (
                |a| a.geoip_db = Some(PathBuf::from("/nonexistent/city.mmdb")),
                "OPENTIME_GEOIP_DB",
            ),
            (
                |a| a.clients_file = Some(PathBuf::from("/nonexistent/clients.toml")),
                "OPENTIME_CLIENTS_FILE",
            ),
            (
                |a| a.stores = Some(PathBuf::from("/nonexistent/stores.json")),
                "OPENTIME_STORES",
            ),
            (
                |a| a.apple_egress_file = Some(PathBuf::from("/nonexistent/egress.csv")),
                "OPENTIME_APPLE_EGRESS_FILE",
            ),
            (
                |a| a.machine_networks = vec!["10.0.0.0/99".into()],
                "OPENTIME_MACHINE_NETWORKS",
            ),
            (
                |a| a.machine_networks_file = Some(PathBuf::from("/nonexistent/nets.txt")),
                "OPENTIME_MACHINE_NETWORKS",
            ),
        ];
        for (tweak, setting) in cases {
            let mut args = SourcesArgs::default();
            tweak(&mut args);
            let error = Sources::from_args(&args).err().expect("an error");
            assert!(error.to_string().starts_with(setting), "{error}");
        }
        let sources = Sources::defaults().unwrap();
        assert_eq!(sources.stores.len(), 6);
        assert!(sources.geo.is_none());
    }
}
