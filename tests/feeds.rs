//! Live data feeds against a local HTTP server started by each test: the value reaches the
//! template, 50 concurrent opens make one fetch, a slow feed does not hold the open past the
//! feed's deadline, the last good value stands in while the feed fails and then gives way to
//! `null` (or the fallback when the feed is required), and the allow-list and address rules
//! keep feeds off hosts and addresses they may not reach.

mod common;

use common::{eventually, get, RedisServer, TestServer};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// The fake feed API: `/weather` (JSON, or a 500 while failing), `/slow` (answers after 3 s),
/// `/redirect` (to `https://evil.test/target`), and a count of requests per path.
#[derive(Default)]
struct FeedApi {
    hits: Mutex<HashMap<String, usize>>,
    failing: AtomicBool,
    temperature: AtomicI64,
}

impl FeedApi {
    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    async fn answer(&self, request: Request<Incoming>, port: u16) -> Response<Full<bytes::Bytes>> {
        let path = request.uri().path().to_owned();
        *self.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        let json = |value: serde_json::Value| {
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::from(value.to_string()))
                .unwrap()
        };
        match path.as_str() {
            "/weather" if self.failing.load(Ordering::SeqCst) => Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(Full::from("down"))
                .unwrap(),
            "/weather" => json(
                json!({"current": {"temperature_2m": self.temperature.load(Ordering::SeqCst)}}),
            ),
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                json(json!({"late": true}))
            }
            "/redirect" => Response::builder()
                .status(StatusCode::FOUND)
                .header("location", format!("https://evil.test:{port}/target"))
                .body(Full::from(""))
                .unwrap(),
            _ => json(json!({"other": path})),
        }
    }
}

async fn start_feed_api() -> (Arc<FeedApi>, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let api = Arc::new(FeedApi::default());
    api.temperature.store(12, Ordering::SeqCst);
    let served = Arc::clone(&api);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let api = Arc::clone(&served);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let api = Arc::clone(&api);
                    async move { Ok::<_, Infallible>(api.answer(request, port).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (api, port)
}

fn manifest(port: u16) -> String {
    format!(
        r#"
[feeds.weather]
url = "http://feeds.test:{port}/weather?city={{{{ ctx.profile.city | urlencode }}}}"
ttl = 1
stale_ttl = 4

[feeds.weather_required]
url = "http://feeds.test:{port}/weather?city={{{{ ctx.profile.city | urlencode }}}}&required=1"
ttl = 1
stale_ttl = 4
required = true

[feeds.slow]
url = "http://feeds.test:{port}/slow"
deadline_ms = 200

[feeds.private_address]
url = "https://evil.test:{port}/evil"

[feeds.unlisted]
url = "http://127.0.0.1:{port}/unlisted"

[feeds.redirected]
url = "http://feeds.test:{port}/redirect"

[blocks.weather]
kind = "html"
html = "show.html"
reads = ["profile"]
feeds = ["weather"]

[blocks.required]
kind = "html"
html = "show.html"
reads = ["profile"]
feeds = ["weather_required"]

[blocks.slow]
kind = "html"
html = "show.html"
reads = ["profile"]
feeds = ["slow"]

[blocks.guarded]
kind = "html"
html = "show.html"
reads = ["profile"]
feeds = ["private_address", "unlisted", "redirected"]
"#
    )
}

/// Each feed the block reads as `NAME=JSON;`.
const SHOW: &str =
    "{% for name, value in feeds %}{{ name }}={{ value | json_encode() | safe }};{% endfor %}";

async fn start(redis: &RedisServer) -> (TestServer, Arc<FeedApi>, tempfile::TempDir) {
    let (api, port) = start_feed_api().await;
    let dir = tempfile::tempdir().unwrap();
    let campaign = dir.path().join("feeds");
    std::fs::create_dir_all(&campaign).unwrap();
    std::fs::write(campaign.join("blocks.toml"), manifest(port)).unwrap();
    std::fs::write(campaign.join("show.html"), SHOW).unwrap();
    let server = TestServer::builder()
        .redis(redis)
        .templates(dir.path())
        .configure(|args| {
            // `feeds.test` is the operator's internal API (a listed private host, so loopback
            // and plain http are fine for it); `evil.test` is allowed but public-only.
            args.sources.feed_hosts = vec!["evil.test".into()];
            args.sources.feed_private_hosts = vec!["feeds.test".into()];
            args.sources.feed_resolve =
                vec!["feeds.test=127.0.0.1".into(), "evil.test=127.0.0.1".into()];
        })
        .start()
        .await;
    server.wait_until_ready().await;
    (server, api, dir)
}

fn paris(redis: &RedisServer, subscriber: &str) {
    redis.hset(
        subscriber,
        "profile",
        &json!({"first_name": "P", "city": "Paris"}),
    );
}

async fn html(server: &TestServer, block: &str, subscriber: &str) -> (String, Option<String>) {
    let answer = get(&server.signed_html("feeds", block, subscriber)).await;
    assert_eq!(answer.status, 200);
    let fallback = answer.header("x-opentime-fallback").map(str::to_owned);
    (answer.text(), fallback)
}

#[tokio::test]
async fn concurrent_opens_share_one_fetch_then_stale_values_stand_in_until_they_expire() {
    let redis = RedisServer::start();
    let (server, api, _dir) = start(&redis).await;
    for n in 0..50 {
        paris(&redis, &format!("p{n}"));
    }
    let server = Arc::new(server);
    let mut opens = tokio::task::JoinSet::new();
    for n in 0..50 {
        let server = Arc::clone(&server);
        opens.spawn(async move { html(&server, "weather", &format!("p{n}")).await });
    }
    while let Some(done) = opens.join_next().await {
        let (text, fallback) = done.unwrap();
        assert_eq!(fallback, None);
        assert_eq!(text, r#"weather={"current":{"temperature_2m":12}};"#);
    }
    assert_eq!(api.hits("/weather"), 1, "50 concurrent opens, one fetch");
    let metrics = server.metrics().await;
    assert_eq!(
        common::metric(&metrics, r#"opentime_feed_values_total{outcome="fresh"}"#),
        50.0
    );
    assert_eq!(
        html(&server, "required", "p0").await.0,
        r#"weather_required={"current":{"temperature_2m":12}};"#
    );

    // The API fails and the value changes: once the TTL is over, the last good value stands in
    // (the failing API was asked again)...
    api.temperature.store(20, Ordering::SeqCst);
    api.failing.store(true, Ordering::SeqCst);
    let asked = api.hits("/weather");
    let refetched = eventually(Duration::from_secs(3), || async {
        html(&server, "weather", "p1").await;
        api.hits("/weather") > asked
    })
    .await;
    assert!(refetched, "the feed is asked again after its TTL");
    let (stale, fallback) = html(&server, "weather", "p2").await;
    assert_eq!(fallback, None);
    assert_eq!(
        stale, r#"weather={"current":{"temperature_2m":12}};"#,
        "stale while failing"
    );
    let (stale_required, fallback) = html(&server, "required", "p2").await;
    assert_eq!(fallback, None);
    assert!(stale_required.contains("12"), "{stale_required}");

    // ...until the stale TTL is over: then `null`, and the required feed's block falls back.
    let expired = eventually(Duration::from_secs(10), || async {
        html(&server, "weather", "p3").await.0 == "weather=null;"
    })
    .await;
    assert!(expired, "{}", html(&server, "weather", "p3").await.0);
    // The required feed's value was fetched a moment later, so it expires a moment later.
    let fell_back = eventually(Duration::from_secs(5), || async {
        html(&server, "required", "p3").await.1.as_deref() == Some("feed")
    })
    .await;
    assert!(fell_back, "{:?}", html(&server, "required", "p3").await);

    // The API is back: the new value.
    api.failing.store(false, Ordering::SeqCst);
    let back = eventually(Duration::from_secs(10), || async {
        html(&server, "weather", "p4").await.0 == r#"weather={"current":{"temperature_2m":20}};"#
    })
    .await;
    assert!(back);
}

/// A server with one subscriber in Paris.
async fn with_one_reader(
    subscriber: &str,
) -> (RedisServer, TestServer, Arc<FeedApi>, tempfile::TempDir) {
    let redis = RedisServer::start();
    let (server, api, dir) = start(&redis).await;
    paris(&redis, subscriber);
    (redis, server, api, dir)
}

#[tokio::test]
async fn a_slow_feed_is_null_at_its_deadline_and_the_open_goes_on() {
    let (_redis, server, api, _dir) = with_one_reader("sam").await;
    // The open's deadline is 5 s and the API answers after 3 s: had the open waited for it,
    // the template would see its value. It sees `null`: the feed's 200 ms deadline was kept.
    let (text, fallback) = html(&server, "slow", "sam").await;
    assert_eq!(fallback, None);
    assert_eq!(text, "slow=null;");
    assert_eq!(api.hits("/slow"), 1);
    let metrics = server.metrics().await;
    assert_eq!(
        common::metric(
            &metrics,
            r#"opentime_feed_values_total{outcome="deadline"}"#
        ),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn feeds_never_reach_hosts_or_addresses_off_the_allow_list() {
    let (_redis, server, api, _dir) = with_one_reader("eve").await;
    let (text, fallback) = html(&server, "guarded", "eve").await;
    assert_eq!(fallback, None);
    assert_eq!(text, "private_address=null;redirected=null;unlisted=null;");
    // An allowed host on a loopback address, a host not on the list and a redirect to such
    // an address are refused before any connection: only the redirect's first hop is served.
    assert_eq!(api.hits("/evil"), 0);
    assert_eq!(api.hits("/unlisted"), 0);
    assert_eq!(api.hits("/target"), 0);
    assert_eq!(api.hits("/redirect"), 1);
}
