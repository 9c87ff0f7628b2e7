//! Location from the test `.mmdb` fixture, through the client classification and the
//! `X-Forwarded-For` rule, down to the nearest demo store.

mod common;

use std::net::IpAddr;

use opentime::sources::geo_ip::{self, GeoDb, LocationSource};
use opentime::sources::mail_clients::{ClientKind, ClientRules};
use opentime::sources::shop_stores::ShopStores;
use serde_json::json;

const GMAIL_UA: &str =
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
const CHROME_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

fn db() -> GeoDb {
    GeoDb::open(&common::geo_fixture()).expect("fixture database opens")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn addresses_map_to_the_expected_cities() {
    let db = db();
    let berlin = db.lookup(ip("192.0.2.55")).expect("Berlin");
    assert_eq!(berlin.city.as_deref(), Some("Berlin"));
    assert_eq!(berlin.region.as_deref(), Some("Land Berlin"));
    assert_eq!(berlin.country.as_deref(), Some("Germany"));
    assert_eq!(berlin.coordinates(), Some((52.52, 13.405)));
    assert_eq!(berlin.source, LocationSource::Ip);

    let paris = db
        .lookup(ip("::ffff:198.51.100.3"))
        .expect("Paris via mapped IPv6");
    assert_eq!(paris.city.as_deref(), Some("Paris"));
    assert_eq!(paris.region.as_deref(), Some("Île-de-France"));

    let milan = db.lookup(ip("2001:db8:1::42")).expect("Milan over IPv6");
    assert_eq!(milan.city.as_deref(), Some("Milan"));

    assert_eq!(db.lookup(ip("8.8.8.8")), None);
    assert_eq!(db.lookup(ip("127.0.0.1")), None);
}

#[test]
fn a_browser_behind_one_cdn_hop_is_located_by_ip() {
    let db = db();
    let rules = ClientRules::builtin();
    let peer = ip("10.1.2.3"); // the CDN's edge, as the TCP peer
    let client_ip = geo_ip::client_ip(peer, ["198.51.100.200, 203.0.113.9"], 1);
    assert_eq!(client_ip, Some(ip("203.0.113.9")));
    let kind = rules.classify(Some(CHROME_UA), client_ip);
    assert_eq!(kind, ClientKind::Browser);
    let location = geo_ip::resolve(None, kind, client_ip, Some(&db));
    assert_eq!(location.city.as_deref(), Some("Amsterdam"));
    assert_eq!(location.source, LocationSource::Ip);
}

#[test]
fn a_gmail_proxy_user_agent_ignores_the_ip() {
    let db = db();
    let rules = ClientRules::builtin();
    let client_ip = Some(ip("192.0.2.55")); // would be Berlin
    let kind = rules.classify(Some(GMAIL_UA), client_ip);
    assert_eq!(kind, ClientKind::GmailProxy);
    let location = geo_ip::resolve(None, kind, client_ip, Some(&db));
    assert_eq!(location.source, LocationSource::Unknown);
    assert_eq!(location.city, None);
}

#[test]
fn apple_relays_ignore_the_ip() {
    let db = db();
    let kind = ClientRules::builtin().classify(Some("Mozilla/5.0"), Some(ip("17.58.1.1")));
    assert_eq!(kind, ClientKind::AppleMpp);
    assert!(kind.is_machine_prefetch());
    let location = geo_ip::resolve(None, kind, Some(ip("17.58.1.1")), Some(&db));
    assert_eq!(location.source, LocationSource::Unknown);
}

#[test]
fn context_location_beats_the_ip() {
    let db = db();
    let ctx = json!({"city": "Madrid", "country": "ES", "lat": 40.4168, "lon": -3.7038});
    let location = geo_ip::resolve(
        Some(&ctx),
        ClientKind::Browser,
        Some(ip("192.0.2.55")),
        Some(&db),
    );
    assert_eq!(location.city.as_deref(), Some("Madrid"));
    assert_eq!(location.source, LocationSource::Context);
}

#[test]
fn the_store_block_names_the_nearest_store() {
    let db = db();
    let stores = ShopStores::demo();
    for (addr, store_id) in [
        ("192.0.2.1", "ber-mitte"),
        ("198.51.100.1", "par-marais"),
        ("203.0.113.1", "ams-jordaan"),
        ("2001:db8:1::1", "mil-brera"),
    ] {
        let location = geo_ip::resolve(None, ClientKind::Browser, Some(ip(addr)), Some(&db));
        let (lat, lon) = location.coordinates().expect("coordinates");
        let nearest = stores.nearest(lat, lon, 1);
        assert_eq!(nearest[0].store.id, store_id, "{addr}");
        assert!(
            nearest[0].distance_km < 5.0,
            "{addr}: {}",
            nearest[0].distance_km
        );
    }
}

#[test]
fn location_serializes_for_templates() {
    let location = db().lookup(ip("192.0.2.55")).unwrap();
    let value = serde_json::to_value(&location).unwrap();
    assert_eq!(value["city"], "Berlin");
    assert_eq!(value["source"], "ip");
    assert_eq!(value["lat"], 52.52);
}
