//! `deploy/varnish/opentime.vcl` against a real Varnish (opt-in: `OPENTIME_VARNISH_TEST=1`,
//! needs `varnishd`, Debian/Ubuntu package `varnish`). Checks that personalized answers are
//! revalidated with If-None-Match (opentime answers 304, Varnish serves its stored bytes),
//! that a context change shows at once, that shared blocks are served from the cache, that
//! fallbacks are never stored, and that a Surrogate-Key purge empties a campaign; and that
//! `deploy/varnish/fleet.vcl` sends each URL to one renderer of three and keeps answering when
//! one of them stops.

mod common;

use common::*;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn enabled() -> bool {
    std::env::var("OPENTIME_VARNISH_TEST").as_deref() == Ok("1")
}

struct Varnish {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Varnish {
    fn start(backend_port: u16) -> Self {
        let vcl = std::fs::read_to_string(repo().join("deploy/varnish/opentime.vcl")).unwrap();
        let vcl = vcl.replace(".port = \"8080\"", &format!(".port = \"{backend_port}\""));
        Self::start_with(vcl)
    }

    /// `fleet.vcl` in front of three renderers.
    fn start_fleet(ports: [u16; 3]) -> Self {
        let mut vcl = std::fs::read_to_string(repo().join("deploy/varnish/fleet.vcl")).unwrap();
        for (n, port) in ports.iter().enumerate() {
            vcl = vcl.replace(
                &format!(".port = \"{}\"", 8081 + n),
                &format!(".port = \"{port}\""),
            );
        }
        Self::start_with(vcl)
    }

    fn start_with(vcl: String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let vcl_path = dir.path().join("opentime.vcl");
        std::fs::write(&vcl_path, vcl).unwrap();
        std::fs::copy(
            repo().join("deploy/varnish/opentime-rules.vcl"),
            dir.path().join("opentime-rules.vcl"),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("varnishd")
            .args(["-F", "-j", "none", "-s", "malloc,32m"])
            .args([
                "-p",
                "ban_lurker_sleep=0.05",
                "-p",
                "backend_idle_timeout=20",
            ])
            .arg("-n")
            .arg(dir.path().join("work"))
            .args(["-a", &format!("127.0.0.1:{port}")])
            .arg("-f")
            .arg(&vcl_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("varnishd must be installed (apt-get install varnish)");
        Self {
            port,
            child,
            _dir: dir,
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.port)
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        // SIGTERM lets the manager stop its cache child too.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn varnish_revalidates_personalized_blocks_and_caches_shared_ones() {
    if !enabled() {
        eprintln!("skipped: set OPENTIME_VARNISH_TEST=1 to run against a real varnishd");
        return;
    }
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let templates = copy_templates();
    let banner = templates.path().join("cdn");
    std::fs::create_dir_all(&banner).unwrap();
    std::fs::write(
        banner.join("blocks.toml"),
        "[blocks.banner]\nkind = \"image\"\ntemplate = \"banner.svg\"\nwidth = 300\nheight = 100\nreads = []\nmax_age = 60\n",
    )
    .unwrap();
    std::fs::write(
        banner.join("banner.svg"),
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="300" height="100"><rect width="300" height="100" fill="#4f46e5"/></svg>"##,
    )
    .unwrap();
    let server = TestServer::builder()
        .redis(&redis)
        .templates(templates.path())
        .keep(templates)
        .deadline_ms(5000)
        .start()
        .await;
    let varnish = Varnish::start(server.port());
    let ready = eventually(Duration::from_secs(20), || async {
        client()
            .get(varnish.url("/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
    })
    .await;
    assert!(ready, "varnishd did not come up");

    // Personalized: stored, but every open asks opentime (304 while nothing changed).
    let signed = server.signed("demo/cart.png", "alice");
    let path = signed.trim_start_matches(&server.base).to_owned();
    let first = get(&varnish.url(&path)).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("cache-control"), Some("no-cache"));
    let started = Instant::now();
    let second = get(&varnish.url(&path)).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body);
    assert!(started.elapsed() < Duration::from_secs(2));
    let revalidations = "opentime_http_requests_total{route=\"img\",status=\"304\"}";
    assert_eq!(
        metric(&server.metrics().await, revalidations),
        1.0,
        "Varnish revalidated"
    );
    // A mail proxy revalidating through Varnish gets a 304 from Varnish.
    let etag = first.header("etag").unwrap().to_owned();
    let proxy = send(
        client()
            .get(varnish.url(&path))
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(proxy.status, 304);
    // The context changes: the very next open shows it.
    redis.hset("alice", "profile", &json!({"first_name": "Alicia"}));
    let third = get(&varnish.url(&path)).await;
    assert_ne!(third.body, first.body);
    assert_ne!(third.header("etag"), Some(etag.as_str()));

    // Fallbacks are never stored.
    let forged = path.replace("t=", "t=x");
    for _ in 0..2 {
        let fallback = get(&varnish.url(&forged)).await;
        assert_eq!(fallback.header("x-opentime-fallback"), Some("bad-token"));
        assert_eq!(fallback.header("x-cache"), Some("MISS"));
    }
    assert_eq!(
        metric(
            &server.metrics().await,
            "opentime_fallbacks_total{reason=\"bad-token\"}"
        ),
        2.0
    );

    // Shared: served from Varnish until purged by campaign.
    let banner_url = varnish.url("/img/cdn/banner.png");
    assert_eq!(get(&banner_url).await.header("x-cache"), Some("MISS"));
    let hit = get(&banner_url).await;
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.png().dimensions(), (300, 100));
    let purge = send(
        client()
            .request(
                reqwest::Method::from_bytes(b"PURGE").unwrap(),
                varnish.url("/"),
            )
            .header("surrogate-key", "cdn"),
    )
    .await;
    assert_eq!(purge.status, 200);
    assert_eq!(get(&banner_url).await.header("x-cache"), Some("MISS"));

    drop(varnish);
    server.shutdown().await;
}

#[tokio::test]
async fn the_fleet_vcl_sends_each_url_to_one_renderer_and_survives_one_stopping() {
    if !enabled() {
        eprintln!("skipped: set OPENTIME_VARNISH_TEST=1 to run against a real varnishd");
        return;
    }
    let redis = RedisServer::start();
    let subscribers: Vec<String> = (0..12).map(|n| format!("sub-{n}")).collect();
    for subscriber in &subscribers {
        redis.load_sample(subscriber, &sample_path("alice"));
    }
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(
            TestServer::builder()
                .redis(&redis)
                .trusted_proxy_hops(1)
                .max_connections_per_address(0)
                .deadline_ms(5000)
                .start()
                .await,
        );
    }
    let varnish = Varnish::start_fleet([servers[0].port(), servers[1].port(), servers[2].port()]);
    let url = |subscriber: &str| {
        varnish.url(&format!(
            "/img/demo/cart.png?s={subscriber}&t={}",
            token(subscriber)
        ))
    };
    let ready = eventually(Duration::from_secs(20), || async {
        client()
            .get(url("sub-0"))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
    })
    .await;
    assert!(ready, "varnishd did not come up");

    // Each URL is answered by one renderer only (its render cache holds that subscriber).
    let answered = "opentime_http_requests_total{route=\"img\",status=\"200\"}";
    let revalidated = "opentime_http_requests_total{route=\"img\",status=\"304\"}";
    let mut used = std::collections::BTreeSet::new();
    for subscriber in &subscribers {
        let mut before = Vec::new();
        for server in &servers {
            let text = server.metrics().await;
            before.push(metric(&text, answered) + metric(&text, revalidated));
        }
        for _ in 0..4 {
            let open = get(&url(subscriber)).await;
            assert_eq!(open.status, 200);
            assert_eq!(open.header("x-opentime-fallback"), None);
        }
        let mut served = Vec::new();
        for (n, server) in servers.iter().enumerate() {
            let text = server.metrics().await;
            served.push(metric(&text, answered) + metric(&text, revalidated) - before[n]);
        }
        let by: Vec<usize> = (0..3).filter(|n| served[*n] > 0.0).collect();
        assert_eq!(by.len(), 1, "{subscriber}: {served:?}");
        // (an open within the object's 1 ms TTL of the one before is Varnish's own)
        assert!(served[by[0]] <= 4.0, "{subscriber}: {served:?}");
        used.insert(by[0]);
    }
    assert!(
        used.len() >= 2,
        "the URLs are spread over the renderers: {used:?}"
    );

    // One renderer stops: every URL is still answered, none with an error.
    let stopped = servers.remove(0);
    stopped.shutdown().await;
    for subscriber in &subscribers {
        let open = get(&url(subscriber)).await;
        assert_eq!(open.status, 200, "{subscriber}");
        assert_eq!(open.header("x-opentime-fallback"), None, "{subscriber}");
        assert_eq!(open.png().dimensions(), (600, 300));
    }
    drop(varnish);
    for server in servers {
        server.shutdown().await;
    }
}
