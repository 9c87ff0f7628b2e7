//! The shop's stores, and which are nearest to the reader.
//!
//! A `stores` JSON file (configurable path; `assets/demo-stores.json` for the demo)
//! lists the stores with coordinates. A store-finder block asks for the `n` nearest to
//! the reader's [`Location`](crate::sources::geo_ip::Location) and shows the distance. Distances are
//! great-circle (haversine) kilometres: good to well under 1 % for "2.4 km away".

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The demo stores shipped with opentime.
const DEMO_STORES: &str = include_str!("../../assets/demo-stores.json");

/// Mean Earth radius (IUGG), in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// One store as written in the stores file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopStore {
    pub id: String,
    pub name: String,
    pub address: String,
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub lat: f64,
    pub lon: f64,
    /// Free text shown as written, e.g. "Mon–Sat 10:00–20:00".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
}

/// A store with its distance from the point asked about; templates see the store's
/// fields plus `distance_km` (and a lock stores them so, see [`NearbyShopStore`]'s `Deserialize`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "FlatNearbyStore")]
pub struct NearbyShopStore {
    #[serde(flatten)]
    pub store: ShopStore,
    pub distance_km: f64,
}

/// The flat form [`NearbyShopStore`] serializes to (`ShopStore` refuses unknown fields, so it cannot
/// be read back through `flatten`).
#[derive(Deserialize)]
struct FlatNearbyStore {
    id: String,
    name: String,
    address: String,
    city: String,
    #[serde(default)]
    country: Option<String>,
    lat: f64,
    lon: f64,
    #[serde(default)]
    hours: Option<String>,
    distance_km: f64,
}

impl From<FlatNearbyStore> for NearbyShopStore {
    fn from(flat: FlatNearbyStore) -> Self {
        Self {
            store: ShopStore {
                id: flat.id,
                name: flat.name,
                address: flat.address,
                city: flat.city,
                country: flat.country,
                lat: flat.lat,
                lon: flat.lon,
                hours: flat.hours,
            },
            distance_km: flat.distance_km,
        }
    }
}

/// Why a stores file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ShopStoresError {
    #[error("cannot read stores file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stores file is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("store {id:?}: {reason}")]
    Invalid { id: String, reason: &'static str },
}

/// The file is either `{"stores": [...]}` or a bare array.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoresFile {
    Wrapped { stores: Vec<ShopStore> },
    Bare(Vec<ShopStore>),
}

/// All stores, validated once at load.
#[derive(Debug, Clone, Default)]
pub struct ShopStores {
    stores: Vec<ShopStore>,
}

impl ShopStores {
    /// The demo stores from `assets/demo-stores.json`.
    pub fn demo() -> Self {
        // The embedded file is part of the build and covered by a unit test.
        Self::from_json_str(DEMO_STORES).expect("embedded assets/demo-stores.json is valid")
    }

    /// The stores at `path` when given, else the demo stores (checked, not assumed, valid).
    pub fn load_or_demo(path: Option<&Path>) -> Result<Self, ShopStoresError> {
        match path {
            Some(path) => Self::load(path),
            None => Self::from_json_str(DEMO_STORES),
        }
    }

    /// Reads and validates a stores file.
    pub fn load(path: &Path) -> Result<Self, ShopStoresError> {
        let text = std::fs::read_to_string(path).map_err(|source| ShopStoresError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text)
    }

    /// Parses and validates stores JSON.
    pub fn from_json_str(text: &str) -> Result<Self, ShopStoresError> {
        let stores = match serde_json::from_str(text)? {
            StoresFile::Wrapped { stores } | StoresFile::Bare(stores) => stores,
        };
        Self::new(stores)
    }

    /// Validates stores: non-empty unique ids, coordinates in range.
    pub fn new(stores: Vec<ShopStore>) -> Result<Self, ShopStoresError> {
        let mut seen = HashSet::new();
        for store in &stores {
            let invalid = |reason| ShopStoresError::Invalid {
                id: store.id.clone(),
                reason,
            };
            if store.id.trim().is_empty() {
                return Err(invalid("empty id"));
            }
            if !seen.insert(store.id.as_str()) {
                return Err(invalid("duplicate id"));
            }
            if !(store.lat.is_finite() && (-90.0..=90.0).contains(&store.lat)) {
                return Err(invalid("lat must be between -90 and 90"));
            }
            if !(store.lon.is_finite() && (-180.0..=180.0).contains(&store.lon)) {
                return Err(invalid("lon must be between -180 and 180"));
            }
        }
        Ok(Self { stores })
    }

    pub fn len(&self) -> usize {
        self.stores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ShopStore> {
        self.stores.iter()
    }

    /// The store with this id.
    pub fn get(&self, id: &str) -> Option<&ShopStore> {
        self.stores.iter().find(|store| store.id == id)
    }

    /// The `n` stores nearest to (`lat`, `lon`), nearest first; ties keep file order.
    /// Empty when the point is not a valid coordinate.
    pub fn nearest(&self, lat: f64, lon: f64, n: usize) -> Vec<NearbyShopStore> {
        if n == 0 || !lat.is_finite() || !lon.is_finite() {
            return Vec::new();
        }
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Vec::new();
        }
        let mut by_distance: Vec<(f64, &ShopStore)> = self
            .stores
            .iter()
            .map(|store| (haversine_km(lat, lon, store.lat, store.lon), store))
            .collect();
        by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
        by_distance
            .into_iter()
            .take(n)
            .map(|(distance_km, store)| NearbyShopStore {
                store: store.clone(),
                distance_km,
            })
            .collect()
    }
}

/// Great-circle distance in kilometres between two points given in degrees.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let d_phi = (lat2 - lat1).to_radians();
    let d_lambda = (lon2 - lon1).to_radians();
    let a = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
    // Clamp: rounding can push `a` a hair above 1 for antipodal points.
    2.0 * EARTH_RADIUS_KM * a.clamp(0.0, 1.0).sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(id: &str, lat: f64, lon: f64) -> ShopStore {
        ShopStore {
            id: id.into(),
            name: format!("ShopStore {id}"),
            address: "1 Test Street".into(),
            city: "Testville".into(),
            country: None,
            lat,
            lon,
            hours: None,
        }
    }

    #[test]
    fn haversine_known_distances() {
        // Paris (Notre-Dame) to Berlin (Brandenburg Gate): about 878 km.
        let d = haversine_km(48.8530, 2.3499, 52.5163, 13.3777);
        assert!((d - 878.0).abs() < 5.0, "{d}");
        assert_eq!(haversine_km(45.0, 9.0, 45.0, 9.0), 0.0);
        // Half the circumference, without NaN.
        let antipodal = haversine_km(0.0, 0.0, 0.0, 180.0);
        assert!((antipodal - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
    }

    #[test]
    fn demo_stores_load_and_are_european() {
        let stores = ShopStores::demo();
        assert_eq!(stores.len(), 6);
        assert!(stores.iter().all(|s| (35.0..72.0).contains(&s.lat)));
        assert!(stores.get("par-marais").is_some());
    }

    #[test]
    fn nearest_orders_by_distance() {
        let stores = ShopStores::demo();
        // Near the Eiffel Tower.
        let near = stores.nearest(48.8584, 2.2945, 3);
        let ids: Vec<&str> = near.iter().map(|s| s.store.id.as_str()).collect();
        // Paris–Amsterdam ≈ 430 km, Paris–Milan ≈ 640 km, Paris–Berlin ≈ 880 km.
        assert_eq!(ids, ["par-marais", "ams-jordaan", "mil-brera"]);
        assert!(near[0].distance_km > 3.0 && near[0].distance_km < 6.0);
        assert!(near
            .windows(2)
            .all(|w| w[0].distance_km <= w[1].distance_km));
        // Asking for more than there are gives all of them.
        assert_eq!(stores.nearest(48.8584, 2.2945, 100).len(), 6);
    }

    #[test]
    fn nearest_with_bad_input_is_empty() {
        let stores = ShopStores::demo();
        assert!(stores.nearest(f64::NAN, 2.0, 3).is_empty());
        assert!(stores.nearest(48.0, f64::INFINITY, 3).is_empty());
        assert!(stores.nearest(123.0, 2.0, 3).is_empty());
        assert!(stores.nearest(48.0, 2.0, 0).is_empty());
        assert!(ShopStores::default().nearest(48.0, 2.0, 3).is_empty());
    }

    #[test]
    fn nearby_store_serializes_flat() {
        let near = ShopStores::new(vec![store("a", 1.0, 1.0)])
            .unwrap()
            .nearest(1.0, 1.0, 1);
        let v = serde_json::to_value(&near[0]).unwrap();
        assert_eq!(v["id"], "a");
        assert_eq!(v["distance_km"], 0.0);
        assert!(v.get("hours").is_none());
    }

    #[test]
    fn bare_array_is_accepted() {
        let stores = ShopStores::from_json_str(
            r#"[{"id":"x","name":"X","address":"A","city":"C","lat":1.5,"lon":2.5}]"#,
        )
        .unwrap();
        assert_eq!(stores.len(), 1);
    }

    #[test]
    fn invalid_files_are_typed_errors() {
        let dup = ShopStores::new(vec![store("a", 1.0, 1.0), store("a", 2.0, 2.0)]);
        assert!(matches!(
            dup,
            Err(ShopStoresError::Invalid {
                reason: "duplicate id",
                ..
            })
        ));
        assert!(matches!(
            ShopStores::new(vec![store("a", 91.0, 1.0)]),
            Err(ShopStoresError::Invalid { .. })
        ));
        assert!(matches!(
            ShopStores::new(vec![store("a", 1.0, f64::NAN)]),
            Err(ShopStoresError::Invalid { .. })
        ));
        assert!(matches!(
            ShopStores::new(vec![store(" ", 1.0, 1.0)]),
            Err(ShopStoresError::Invalid { .. })
        ));
        assert!(matches!(
            ShopStores::from_json_str("{\"stores\": 3}"),
            Err(ShopStoresError::Parse(_))
        ));
        assert!(matches!(
            ShopStores::load(Path::new("/nonexistent/stores.json")),
            Err(ShopStoresError::Read { .. })
        ));
    }
}
