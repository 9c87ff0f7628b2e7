//! Who opened, over real TCP with a real `redis-server`: Apple's prefetch (exactly
//! `Mozilla/5.0`, from an address of the test egress list) never locks and never counts as an
//! open, is flagged in the event stream, and gets the still that says when the countdown ends in
//! the reader's zone (placed by the egress list) — never from a shared cache to anyone else; a
//! security scanner's click is redirected but not counted; Outlook for Mac gets every frame and
//! the Word Outlook the first; a HEAD request counts for nothing.

mod common;

use common::*;
use opentime::blocks::Campaign;
use opentime::clock::Clock;
use opentime::gif::decode::{decode, Decoded};
use opentime::open::{Opener, Reader, RenderInput, TemplateInput};
use opentime::render::{Format, Renderer};
use opentime::sources::countries::CountryCode;
use opentime::sources::mail_clients::ClientKind;
use opentime::sources::Sources;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// The moment every server here is pinned at.
const AT: &str = "2026-11-25T14:32:15Z";
/// An address of the test egress list whose readers are in New York.
const RELAY_NEW_YORK: &str = "172.224.226.9";
/// A person's address (not in the egress list, not a scanner network).
const PERSON_ADDRESS: &str = "198.51.100.7";
/// Exchange Online Protection's mail-flow range: Microsoft's Safe Links scanner.
const SAFE_LINKS: &str = "40.107.22.51";
const MAC_OUTLOOK: &str = "MacOutlook/16.46.21021202 (Intelx64 Mac OS X 11.2.2 (Build 20D80))";
const WORD_OUTLOOK: &str =
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.15225; Pro)";
const APPLE_MAIL: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)";

/// The repo's templates plus `reservation`: a locked countdown to the cart's reservation.
fn templates_with_a_reservation() -> tempfile::TempDir {
    let templates = copy_templates();
    let manifest = templates.path().join("demo/blocks.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("manifest");
    text.push_str(
        r#"
[blocks.reservation]
kind = "countdown"
template = "countdown.svg"
width = 600
height = 120
deadline_field = "cart.reserved_until"
lock = "first_open"
fallback = "fallback/countdown.svg"
"#,
    );
    std::fs::write(&manifest, text).expect("manifest");
    templates
}

/// A server on `redis` behind one trusted hop, with the test egress list, at [`AT`].
async fn start_server(
    redis: &RedisServer,
    templates: Option<tempfile::TempDir>,
    egress: bool,
) -> TestServer {
    let mut builder = TestServer::builder()
        .redis(redis)
        .trusted_proxy_hops(1)
        .clock(Clock::manual(utc(AT)))
        .deadline_ms(10_000)
        .store_timeout_ms(2_000);
    if egress {
        builder = builder.apple_egress(apple_egress_fixture());
    }
    if let Some(templates) = templates {
        builder = builder.templates(templates.path()).keep(templates);
    }
    builder.start().await
}

async fn fetch(url: &str, user_agent: &str, address: &str) -> Answer {
    let answer = send(
        client()
            .get(url)
            .header("user-agent", user_agent)
            .header("x-forwarded-for", address),
    )
    .await;
    assert_eq!(answer.status, 200, "{user_agent} from {address}");
    assert_eq!(answer.header("x-opentime-fallback"), None, "{user_agent}");
    answer
}

fn gif(answer: &Answer) -> Decoded {
    decode(&answer.body).expect("a GIF")
}

/// The email field's counter, if any.
fn count(redis: &RedisServer, subscriber: &str, counter: &str) -> Option<u64> {
    redis.hget_json(subscriber, "email")?.get(counter)?.as_u64()
}

async fn wait_for_events(
    redis: &RedisServer,
    n: usize,
) -> Vec<std::collections::HashMap<String, String>> {
    assert!(
        eventually(Duration::from_secs(10), || async {
            redis.events().len() >= n
        })
        .await,
        "{n} events, got {:?}",
        redis.events()
    );
    redis.events()
}

/// The still of `block` for a reader in `zone` (a country's reader), rendered offline from
/// `fields` as Apple's prefetch gets it.
fn still_offline(
    templates: &Path,
    block: &str,
    fields: &serde_json::Value,
    zone: &str,
    country: &str,
) -> Vec<u8> {
    let renderer = Renderer::load(&repo().join("assets")).expect("assets");
    let campaign = Campaign::load(&templates.join("demo"), &renderer).expect("campaign");
    let block = campaign.block(block).expect("block");
    let fields = fields.as_object().cloned().unwrap_or_default();
    let mut input =
        TemplateInput::for_block(block, &fields, Some("alice"), utc(AT), Default::default());
    input.reader = Some(Reader {
        time_zone: Some(zone.to_owned()),
        country: CountryCode::parse(country),
        by_address: false,
    });
    let apple = Opener::offline(ClientKind::AppleMpp);
    let sources = Sources::defaults().expect("sources");
    let decided = RenderInput::decide(&campaign, block, Format::Gif, 1, input, &apple, &sources)
        .expect("a deadline");
    assert!(
        decided.input.countdown.and_then(|c| c.ends).is_some(),
        "a still"
    );
    let rendered =
        opentime::open::render_block(&renderer, &campaign, block, Format::Gif, 1, &decided.input)
            .expect("render");
    gif_canvas(&rendered.bytes)
}

fn gif_canvas(bytes: &[u8]) -> Vec<u8> {
    let decoded = decode(bytes).expect("a GIF");
    assert_eq!(decoded.canvases.len(), 1);
    decoded.canvases[0].clone()
}

#[tokio::test]
async fn apples_prefetch_gets_when_it_ends_in_the_readers_zone_and_counts_for_nothing() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let cart = json!({"reserved_until": "2026-12-24T18:00:00+01:00", "items": []});
    redis.hset("alice", "cart", &cart);
    let templates = templates_with_a_reservation();
    let expected_new_york = still_offline(
        templates.path(),
        "reservation",
        &json!({"cart": cart}),
        "America/New_York",
        "US",
    );
    let expected_berlin = still_offline(
        templates.path(),
        "reservation",
        &json!({"cart": cart}),
        "Europe/Berlin",
        "DE",
    );
    assert!(
        max_diff(&expected_new_york, &expected_berlin) > 100,
        "the zone shows"
    );
    let server = start_server(&redis, Some(templates), true).await;
    let url = server.signed("demo/reservation.gif", "alice");

    // Apple's prefetch at delivery, from a relay whose readers are in New York.
    let prefetch = fetch(&url, APPLE_MPP_USER_AGENT, RELAY_NEW_YORK).await;
    let still = gif(&prefetch);
    assert_eq!(still.canvases.len(), 1, "a still");
    assert!(!still.has_loop_extension);
    assert_eq!(
        max_diff(&still.canvases[0], &expected_new_york),
        0,
        "drawn for New York"
    );
    assert_eq!(prefetch.header("cache-control"), Some("no-cache"));
    assert_eq!(prefetch.header("vary"), Some("User-Agent"));
    assert!(redis.keys("lock:*").is_empty(), "a prefetch never locks");
    let events = wait_for_events(&redis, 1).await;
    assert_eq!(events[0]["client"], "apple-mpp");
    assert_eq!(events[0]["machine"], "1");
    assert_eq!(events[0]["prefetch"], "1");
    assert_eq!(events[0]["evidence"], "apple-mpp-user-agent");
    assert_eq!(
        count(&redis, "alice", "open_count"),
        None,
        "not a person's open"
    );
    assert!(redis.hget_json("alice", "email").unwrap()["last_prefetch"].is_string());

    // The person opens in a browser: the running timer, the lock, one open.
    let open = fetch(&url, PERSON_USER_AGENT, PERSON_ADDRESS).await;
    let animation = gif(&open);
    assert_eq!(animation.canvases.len(), 60);
    assert!(max_diff(&animation.canvases[0], &still.canvases[0]) > 100);
    assert_ne!(open.header("etag"), prefetch.header("etag"));
    assert_eq!(redis.keys("lock:*"), vec!["lock:{alice}:demo:reservation"]);
    wait_for_events(&redis, 2).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            count(&redis, "alice", "open_count") == Some(1)
        })
        .await
    );

    // Apple fetches again (the lock now decides the deadline): still the still, still no open.
    let again = fetch(&url, APPLE_MPP_USER_AGENT, RELAY_NEW_YORK).await;
    assert_eq!(again.body, prefetch.body);
    let events = wait_for_events(&redis, 3).await;
    assert_eq!(events[2]["machine"], "1");
    assert_eq!(count(&redis, "alice", "open_count"), Some(1));
    server.shutdown().await;
}

#[tokio::test]
async fn apple_mail_through_a_relay_is_apples_and_is_placed_by_the_egress_list() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
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
        "{{ client.kind }} {{ client.machine }} {{ client.evidence }} | {{ location.source }} {{ location.city }} {{ location.region }} {{ location.country }} {{ location.country_name }} {{ location.time_zone }}",
    )
    .unwrap();
    let server = start_server(&redis, Some(templates), true).await;
    let url = server.url("/html/probe/whoami.html");
    let relay = fetch(&url, APPLE_MAIL, RELAY_NEW_YORK).await.text();
    assert_eq!(
        relay,
        "apple-mpp true apple-relay-egress | apple-relay New York US-NY US United States America&#x2F;New_York"
    );
    let ipv6 = fetch(&url, APPLE_MPP_USER_AGENT, "2a02:26f7:b3c0:4000::31")
        .await
        .text();
    assert!(
        ipv6.ends_with("| apple-relay Los Angeles US-CA US United States America&#x2F;Los_Angeles"),
        "{ipv6}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_still_never_reaches_another_client_from_a_shared_cache() {
    let redis = RedisServer::start();
    let url_of = |server: &TestServer| {
        server.url("/img/demo/countdown.gif?until=2026-12-24T18:00:00%2B01:00")
    };

    // With the egress list, the picture for a User-Agent Apple's relays also send depends on
    // the address: no shared cache may keep it.
    let server = start_server(&redis, None, true).await;
    let url = url_of(&server);
    let apple = fetch(&url, APPLE_MPP_USER_AGENT, RELAY_NEW_YORK).await;
    assert_eq!(gif(&apple).canvases.len(), 1);
    assert_eq!(apple.header("cache-control"), Some("no-cache"));
    assert_eq!(apple.header("vary"), Some("User-Agent"));
    let apple_mail = fetch(&url, APPLE_MAIL, PERSON_ADDRESS).await;
    assert_eq!(
        gif(&apple_mail).canvases.len(),
        60,
        "a person in Apple Mail"
    );
    assert_eq!(
        apple_mail.header("cache-control"),
        Some("no-cache"),
        "the relay would be Apple's"
    );
    let chrome = fetch(&url, PERSON_USER_AGENT, PERSON_ADDRESS).await;
    assert_eq!(gif(&chrome).canvases.len(), 60);
    assert_eq!(
        chrome.header("cache-control"),
        Some("public, max-age=5, s-maxage=5")
    );
    assert_eq!(chrome.header("vary"), Some("User-Agent"));
    assert_ne!(chrome.header("etag"), apple.header("etag"));
    server.shutdown().await;

    // Without it, only the exact User-Agent is Apple's: `Vary: User-Agent` keys the still apart,
    // so it may be shared (drawn in the block's zone, which it names).
    let server = start_server(&redis, None, false).await;
    let url = url_of(&server);
    let apple = fetch(&url, APPLE_MPP_USER_AGENT, RELAY_NEW_YORK).await;
    assert_eq!(gif(&apple).canvases.len(), 1);
    assert_eq!(
        apple.header("cache-control"),
        Some("public, max-age=5, s-maxage=5")
    );
    assert_eq!(apple.header("vary"), Some("User-Agent"));
    let apple_mail = fetch(&url, APPLE_MAIL, RELAY_NEW_YORK).await;
    assert_eq!(gif(&apple_mail).canvases.len(), 60);
    server.shutdown().await;
}

#[tokio::test]
async fn outlook_for_mac_gets_every_frame_and_the_word_outlook_the_first() {
    let redis = RedisServer::start();
    let server = start_server(&redis, None, true).await;
    let url = server.url("/img/demo/countdown.gif?until=2026-12-24T18:00:00%2B01:00");
    let mac = gif(&fetch(&url, MAC_OUTLOOK, PERSON_ADDRESS).await);
    assert_eq!(mac.canvases.len(), 60, "Outlook for Mac animates");
    assert!(mac.loops_forever);
    let word = fetch(&url, WORD_OUTLOOK, PERSON_ADDRESS).await;
    assert_eq!(word.header("vary"), Some("User-Agent"));
    let word = gif(&word);
    assert_eq!(
        word.canvases.len(),
        1,
        "the Word Outlook shows the first frame only"
    );
    assert_eq!(max_diff(&word.canvases[0], &mac.canvases[0]), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_scanners_click_is_redirected_but_never_counted() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = start_server(&redis, None, true).await;
    let url = server.url(&format!(
        "/click/demo/cart?s=alice&t={}&i=1",
        token("alice")
    ));
    let click = |user_agent: &'static str, address: &'static str| {
        let url = url.clone();
        async move {
            send(
                no_redirects()
                    .get(url)
                    .header("user-agent", user_agent)
                    .header("x-forwarded-for", address),
            )
            .await
        }
    };
    // Safe Links follows the link with a stock Chrome from Exchange Online Protection.
    let scanner = click(PERSON_USER_AGENT, SAFE_LINKS).await;
    assert_eq!(scanner.status, 302);
    assert_eq!(
        scanner.header("location"),
        Some("https://shop.example.com/p/mug-01")
    );
    let preview = click(
        "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/534+ (KHTML, like Gecko) BingPreview/1.0b",
        PERSON_ADDRESS,
    )
    .await;
    assert_eq!(preview.status, 302);
    let events = wait_for_events(&redis, 2).await;
    assert_eq!(
        (
            events[0]["type"].as_str(),
            events[0]["machine"].as_str(),
            events[0]["evidence"].as_str()
        ),
        ("click", "1", "security-scanner-network")
    );
    assert_eq!(events[1]["evidence"], "link-preview");
    assert_eq!(
        count(&redis, "alice", "click_count"),
        None,
        "no person clicked"
    );

    let person = click(PERSON_USER_AGENT, PERSON_ADDRESS).await;
    assert_eq!(person.status, 302);
    assert!(
        eventually(Duration::from_secs(10), || async {
            count(&redis, "alice", "click_count") == Some(1)
        })
        .await
    );
    assert_eq!(redis.events()[2]["machine"], "0");
    server.shutdown().await;
}

#[tokio::test]
async fn a_head_request_counts_for_nothing_and_locks_nothing() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = start_server(&redis, None, true).await;
    let url = server.signed("demo/cart_locked.png", "alice");

    let head = send(
        client()
            .head(&url)
            .header("x-forwarded-for", PERSON_ADDRESS),
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(redis.keys("lock:*").is_empty(), "HEAD never locks");
    let events = wait_for_events(&redis, 1).await;
    assert_eq!(
        (
            events[0]["client"].as_str(),
            events[0]["machine"].as_str(),
            events[0]["evidence"].as_str()
        ),
        ("browser", "1", "head-request")
    );
    assert_eq!(count(&redis, "alice", "open_count"), None);

    // The GET that follows describes the same picture, and is the person's open.
    let get = fetch(&url, PERSON_USER_AGENT, PERSON_ADDRESS).await;
    assert_eq!(get.header("etag"), head.header("etag"));
    assert_eq!(redis.keys("lock:*"), vec!["lock:{alice}:demo:cart_locked"]);
    assert!(
        eventually(Duration::from_secs(10), || async {
            count(&redis, "alice", "open_count") == Some(1)
        })
        .await
    );
    server.shutdown().await;
}
