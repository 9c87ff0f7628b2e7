//! Location from the test `.mmdb` fixture (ISO country codes, regions, time zones) and the test
//! Apple egress list, through the client classification and the `X-Forwarded-For` rule, down
//! to the nearest demo store.

mod common;

use std::net::IpAddr;

use opentime::sources::apple_egress::AppleEgress;
use opentime::sources::geo_ip::{self, GeoDb, LocationSource, Locators};
use opentime::sources::mail_clients::{Client, ClientKind, ClientRules};
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

fn egress() -> AppleEgress {
    AppleEgress::load(&common::apple_egress_fixture()).expect("fixture egress list")
}

fn with_db(db: &GeoDb) -> Locators<'_> {
    Locators {
        geo: Some(db),
        egress: None,
    }
}

fn browser() -> Client {
    Client::of_kind(ClientKind::Browser, "browser")
}

#[test]
fn addresses_map_to_the_expected_cities() {
    let db = db();
    let berlin = db.lookup(ip("192.0.2.55")).expect("Berlin");
    assert_eq!(berlin.city.as_deref(), Some("Berlin"));
    assert_eq!(berlin.region.as_deref(), Some("Land Berlin"));
    assert_eq!(berlin.region_code.as_deref(), Some("DE-BE"));
    assert_eq!(berlin.country.map(|c| c.to_string()).as_deref(), Some("DE"));
    assert_eq!(berlin.country_name.as_deref(), Some("Germany"));
    assert_eq!(berlin.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(berlin.coordinates(), Some((52.52, 13.405)));
    assert_eq!(berlin.source, LocationSource::Ip);

    let new_york = db.lookup(ip("2001:db8:2::7")).expect("New York over IPv6");
    assert_eq!(
        new_york.country.map(|c| c.to_string()).as_deref(),
        Some("US")
    );
    assert_eq!(new_york.country_name.as_deref(), Some("United States"));
    assert_eq!(new_york.time_zone.as_deref(), Some("America/New_York"));

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
    let client = rules.classify(Some(CHROME_UA), client_ip);
    assert_eq!(client.kind, ClientKind::Browser);
    let location = geo_ip::resolve(None, &client, client_ip, with_db(&db));
    assert_eq!(location.city.as_deref(), Some("Amsterdam"));
    assert_eq!(location.source, LocationSource::Ip);
}

#[test]
fn a_gmail_proxy_user_agent_ignores_the_ip() {
    let db = db();
    let rules = ClientRules::builtin();
    let client_ip = Some(ip("192.0.2.55")); // would be Berlin
    let client = rules.classify(Some(GMAIL_UA), client_ip);
    assert_eq!(client.kind, ClientKind::GmailProxy);
    let location = geo_ip::resolve(None, &client, client_ip, with_db(&db));
    assert_eq!(location.source, LocationSource::Unknown);
    assert_eq!(location.city, None);
}

#[test]
fn apple_relays_are_placed_by_the_egress_list_never_by_their_address() {
    let db = db();
    let egress = egress();
    let rules = ClientRules::builtin().with_apple_egress(Some(std::sync::Arc::new(egress.clone())));
    let locators = Locators {
        geo: Some(&db),
        egress: Some(&egress),
    };
    // 192.0.2.55 is Berlin in the database, but Apple's exact User-Agent is its relay's.
    let client = rules.classify(Some("Mozilla/5.0"), Some(ip("192.0.2.55")));
    assert_eq!(client.kind, ClientKind::AppleMpp);
    assert!(client.machine);
    let location = geo_ip::resolve(None, &client, Some(ip("192.0.2.55")), locators);
    assert_eq!(
        location.source,
        LocationSource::Unknown,
        "not in the egress list"
    );
    // From an egress address: the place Apple gives, with its time zone.
    let relay = Some(ip("172.224.226.9"));
    let client = rules.classify(Some("Mozilla/5.0"), relay);
    let location = geo_ip::resolve(None, &client, relay, locators);
    assert_eq!(location.source, LocationSource::AppleRelay);
    assert_eq!(location.city.as_deref(), Some("New York"));
    assert_eq!(location.region_code.as_deref(), Some("US-NY"));
    assert_eq!(
        location.country.map(|c| c.to_string()).as_deref(),
        Some("US")
    );
    assert_eq!(location.time_zone.as_deref(), Some("America/New_York"));
    let london = geo_ip::resolve(None, &client, Some(ip("104.28.0.1")), locators);
    assert_eq!(
        london.time_zone.as_deref(),
        Some("Europe/London"),
        "from the country"
    );
    assert_eq!(london.country_name.as_deref(), Some("United Kingdom"));
}

#[test]
fn context_location_beats_the_ip() {
    let db = db();
    let ctx = json!({"city": "Madrid", "country": "ES", "lat": 40.4168, "lon": -3.7038});
    let location = geo_ip::resolve(Some(&ctx), &browser(), Some(ip("192.0.2.55")), with_db(&db));
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
        let location = geo_ip::resolve(None, &browser(), Some(ip(addr)), with_db(&db));
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
    assert_eq!(value["country"], "DE");
    assert_eq!(value["country_name"], "Germany");
    assert_eq!(value["time_zone"], "Europe/Berlin");
}

/// `tz=reader` over HTTP: a local deadline is read in the zone the database gives the reader's
/// address (`location.time_zone`), else in the block's zone; Apple's relay address is never
/// looked up, so its still is drawn in the block's zone (which it names).
#[tokio::test]
async fn a_reader_zone_countdown_is_drawn_in_the_zone_of_the_readers_address() {
    use common::{get, max_diff, send, utc, RedisServer, TestServer, PERSON_USER_AGENT};
    use opentime::gif::decode::decode;

    let redis = RedisServer::start();
    let server = TestServer::builder()
        .redis(&redis)
        .geoip_db(common::geo_fixture())
        .trusted_proxy_hops(1)
        .clock(opentime::clock::Clock::manual(utc("2026-11-25T14:32:15Z")))
        .deadline_ms(10_000)
        .store_timeout_ms(2_000)
        .start()
        .await;
    let url = |query: &str| server.url(&format!("/img/demo/countdown.gif?{query}"));
    let first_frame = |bytes: &[u8]| decode(bytes).expect("a GIF").canvases[0].clone();
    let from = |address: &'static str, user_agent: &'static str| {
        let url = url("until=2026-12-24T18:00&tz=reader");
        async move {
            send(
                common::client()
                    .get(url)
                    .header("user-agent", user_agent)
                    .header("x-forwarded-for", address),
            )
            .await
        }
    };
    // 18:00 in Berlin is 17:00 UTC; in New York 23:00 UTC.
    let berlin_deadline = first_frame(&get(&url("until=2026-12-24T17:00:00Z")).await.body);
    let new_york_deadline = first_frame(&get(&url("until=2026-12-24T23:00:00Z")).await.body);
    assert!(max_diff(&berlin_deadline, &new_york_deadline) > 100);

    let berlin = from("192.0.2.55", PERSON_USER_AGENT).await;
    assert_eq!(berlin.header("x-opentime-fallback"), None);
    assert_eq!(max_diff(&first_frame(&berlin.body), &berlin_deadline), 0);
    // The zone came from the address: no shared cache may keep it for anyone else.
    assert_eq!(berlin.header("cache-control"), Some("no-cache"));
    assert_eq!(berlin.header("vary"), Some("User-Agent"));

    let new_york = from("2001:db8:2::7", PERSON_USER_AGENT).await;
    assert_eq!(
        max_diff(&first_frame(&new_york.body), &new_york_deadline),
        0
    );

    // Not in the database: the block's zone (the demo's is Europe/Berlin).
    let unknown = from("8.8.8.8", PERSON_USER_AGENT).await;
    assert_eq!(max_diff(&first_frame(&unknown.body), &berlin_deadline), 0);

    // Apple's prefetch from an address the database places in New York: the relay's address
    // says nothing about the reader, so the still is the one for an unknown reader.
    let apple_there = from("2001:db8:2::7", "Mozilla/5.0").await;
    let apple_nowhere = from("8.8.8.8", "Mozilla/5.0").await;
    assert_eq!(decode(&apple_there.body).expect("a GIF").canvases.len(), 1);
    assert_eq!(apple_there.body, apple_nowhere.body);
    server.shutdown().await;
}
