//! Location and mail-client awareness through the real server: the test `.mmdb` fixture,
//! `X-Forwarded-For` behind one trusted hop, image-proxy User-Agents, the demo `store` block
//! (HTML text and PNG pixels), and `client` for every kind from real User-Agent strings.

mod common;

use common::*;
use opentime::sources::mail_clients::ClientKind;
use serde_json::json;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const GMAIL: &str =
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
const YAHOO: &str = "Mozilla/5.0 (compatible; YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html)";
const OUTLOOK: &str = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.15225; Pro)";
const APPLE_MAIL: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)";
const BERLIN_IP: &str = "192.0.2.55";
const PARIS_IP: &str = "198.51.100.7";

/// A server behind one trusted proxy hop, with the fixture database and `templates`.
async fn located_server(redis: &RedisServer, templates: &std::path::Path) -> TestServer {
    TestServer::builder()
        .redis(redis)
        .templates(templates)
        .geoip_db(geo_fixture())
        .apple_egress(apple_egress_fixture())
        .trusted_proxy_hops(1)
        .deadline_ms(5000)
        .store_timeout_ms(1000)
        .start()
        .await
}

async fn open(url: &str, user_agent: &str, forwarded_for: &str) -> Answer {
    send(
        client()
            .get(url)
            .header("user-agent", user_agent)
            .header("x-forwarded-for", forwarded_for),
    )
    .await
}

#[tokio::test]
async fn the_store_block_names_the_store_nearest_to_the_readers_ip() {
    let redis = RedisServer::start();
    redis.hset("dave", "profile", &json!({"first_name": "Dave"}));
    redis.load_sample("alice", &sample_path("alice"));
    let server = located_server(&redis, &repo().join("templates")).await;
    let dave = server.signed_html("demo", "store", "dave");

    let berlin = open(&dave, CHROME, BERLIN_IP).await;
    assert_eq!(berlin.status, 200);
    let text = String::from_utf8(berlin.body.clone()).unwrap();
    assert!(text.contains("Lindenhaus Berlin Mitte"), "{text}");
    assert!(text.contains("Linienstraße 118"), "{text}");
    assert_eq!(berlin.header("vary"), Some("User-Agent"));
    assert_eq!(berlin.header("cache-control"), Some("no-cache"));

    let paris = String::from_utf8(open(&dave, CHROME, PARIS_IP).await.body).unwrap();
    assert!(paris.contains("Lindenhaus Paris Marais"), "{paris}");

    // Gmail's proxy fetched: its address says nothing about the reader.
    let proxied = String::from_utf8(open(&dave, GMAIL, BERLIN_IP).await.body).unwrap();
    assert!(
        proxied.contains("Dave, find a Lindenhaus near you"),
        "{proxied}"
    );
    assert!(!proxied.contains("Berlin Mitte"));

    // Only the trusted hop counts: a spoofed entry further left is ignored.
    let spoofed = open(&dave, CHROME, &format!("{BERLIN_IP}, {PARIS_IP}")).await;
    assert!(String::from_utf8(spoofed.body)
        .unwrap()
        .contains("Paris Marais"));

    // The subscriber's own location (Paris) beats the IP, and then the answer does not
    // depend on the User-Agent or the address: no Vary.
    let alice = open(
        &server.signed_html("demo", "store", "alice"),
        CHROME,
        BERLIN_IP,
    )
    .await;
    let text = String::from_utf8(alice.body.clone()).unwrap();
    assert!(text.contains("Lindenhaus Paris Marais"), "{text}");
    assert_eq!(alice.header("vary"), None);
    server.shutdown().await;
}

#[tokio::test]
async fn the_store_png_is_the_render_for_the_located_reader() {
    let redis = RedisServer::start();
    redis.hset("dave", "profile", &json!({"first_name": "Dave"}));
    let server = located_server(&redis, &repo().join("templates")).await;
    let url = server.signed("demo/store.png", "dave");
    let served = open(&url, CHROME, BERLIN_IP).await;
    assert_eq!(served.header("x-opentime-fallback"), None);
    let served = served.png();
    assert_eq!(served.dimensions(), (600, 240));

    // The fixture's Berlin record, given as the context's location, renders the same picture.
    let berlin = json!({"city": "Berlin", "region": "Land Berlin", "country": "Germany", "lat": 52.52, "lon": 13.405});
    let expected = render_store(json!({"profile": {"first_name": "Dave"}, "location": berlin}));
    assert_eq!(served, expected);
    let unknown = render_store(json!({"profile": {"first_name": "Dave"}}));
    assert_ne!(served, unknown);
    assert_eq!(open(&url, GMAIL, BERLIN_IP).await.png(), unknown);
    server.shutdown().await;
}

fn render_store(fields: serde_json::Value) -> image::RgbaImage {
    decode_png(&render_offline_opened(
        "demo",
        "store",
        &fields,
        "dave",
        ClientKind::Browser,
    ))
}

#[tokio::test]
async fn templates_see_the_client_kind_of_real_user_agents() {
    let redis = RedisServer::start();
    let templates = tempfile::tempdir().unwrap();
    let probe = templates.path().join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    std::fs::write(
        probe.join("blocks.toml"),
        "[blocks.whoami]\nkind = \"html\"\nhtml = \"whoami.html\"\nreads = []\nrequest = [\"client\", \"location\"]\n",
    )
    .unwrap();
    std::fs::write(
        probe.join("whoami.html"),
        "{{ client.kind }}|{{ client.machine }}|{{ location.source }}|{% if location.city %}{{ location.city }}{% endif %}",
    )
    .unwrap();
    let server = located_server(&redis, templates.path()).await;
    let url = server.url("/html/probe/whoami.html");
    for (user_agent, address, expected) in [
        (GMAIL, BERLIN_IP, "gmail-proxy|false|unknown|"),
        (YAHOO, BERLIN_IP, "yahoo-proxy|false|unknown|"),
        // Apple Mail Privacy Protection: exactly "Mozilla/5.0", from anywhere.
        ("Mozilla/5.0", BERLIN_IP, "apple-mpp|true|unknown|"),
        // Apple Mail's own User-Agent from one of Apple's relay egress addresses: placed where
        // Apple's list says its readers are, never by the relay's address.
        (
            APPLE_MAIL,
            "172.224.224.9",
            "apple-mpp|true|apple-relay|Berlin",
        ),
        (OUTLOOK, BERLIN_IP, "outlook-word|false|ip|Berlin"),
        (
            "MacOutlook/16.61.22050700",
            PARIS_IP,
            "outlook|false|ip|Paris",
        ),
        (CHROME, PARIS_IP, "browser|false|ip|Paris"),
        // The same Apple Mail User-Agent from elsewhere (Apple's own 17.0.0.0/8 included) is a
        // person reading in Apple Mail.
        (APPLE_MAIL, BERLIN_IP, "mail-app|false|ip|Berlin"),
        (APPLE_MAIL, "17.58.1.1", "mail-app|false|unknown|"),
        // A library, and a stock Chrome from a security gateway's network: machines.
        ("curl/8.5.0", BERLIN_IP, "machine|true|unknown|"),
        (CHROME, "40.107.1.9", "machine|true|unknown|"),
    ] {
        let answer = open(&url, user_agent, address).await;
        assert_eq!(answer.status, 200, "{user_agent}");
        assert_eq!(
            String::from_utf8(answer.body.clone()).unwrap(),
            expected,
            "{user_agent}"
        );
        // Shared block, but the answer depends on the User-Agent and the address.
        assert_eq!(answer.header("vary"), Some("User-Agent"), "{user_agent}");
        assert_eq!(
            answer.header("cache-control"),
            Some("no-cache"),
            "{user_agent}"
        );
        assert_eq!(answer.header("last-modified"), None, "{user_agent}");
    }
    let no_user_agent = send(client().get(&url).header("user-agent", "")).await;
    assert!(String::from_utf8(no_user_agent.body)
        .unwrap()
        .starts_with("machine|true|"));
    server.shutdown().await;
}
