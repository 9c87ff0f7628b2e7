//! Countdown blocks over real HTTP: `/img/demo/countdown.gif?until=…` decoded frame by frame,
//! with the server's clock pinned through `opentime::start_with_clock`.
//!
//! Frame k of a GIF rendered at T must equal the first frame (a full render) of the GIF
//! rendered at T + k, and the first frame at T must equal the golden image, whose digits read
//! 02 13 27 45. The load test (`one_render_per_second_under_sustained_load`) runs for ten real
//! seconds and is `#[ignore]`d: `cargo test --test countdown -- --ignored`.

mod common;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use common::{get, max_diff, metric, repo, utc, RedisServer, TestServer};
use opentime::clock::Clock;
use opentime::gif::decode::decode;

/// The golden image's moment and time left: 2 days 13:27:45, minutes roll over at frame 46.
const AT: &str = "2026-11-25T14:32:15Z";
const LEFT: i64 = 2 * 86_400 + 13 * 3_600 + 27 * 60 + 45;

fn z(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A server on its own Redis with the repo's templates and a manual clock at `at`.
async fn server_at(at: DateTime<Utc>) -> (RedisServer, TestServer, Clock) {
    let redis = RedisServer::start();
    let clock = Clock::manual(at);
    let server = TestServer::builder()
        .redis(&redis)
        .clock(clock.clone())
        .start()
        .await;
    (redis, server, clock)
}

fn countdown_url(server: &TestServer, query: &str) -> String {
    server.url(&format!("/img/demo/countdown.gif?{query}"))
}

/// `until` for a deadline `secs` after `AT`, percent-free (Z form).
fn until_after(secs: i64) -> String {
    format!("until={}", z(utc(AT) + Duration::seconds(secs)))
}

#[tokio::test]
async fn sixty_frames_with_delays_loop_and_the_golden_first_frame() {
    let (_redis, server, _clock) = server_at(utc(AT)).await;
    let answer = get(&countdown_url(&server, &until_after(LEFT))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("image/gif"));
    assert_eq!(answer.header("x-opentime-fallback"), None);
    assert_eq!(
        answer.header("cache-control"),
        Some("public, max-age=5, s-maxage=5"),
        "a shared countdown is right for a few seconds"
    );
    assert!(answer.header("etag").is_some());
    assert!(answer.body.len() < 60_000, "{} bytes", answer.body.len());
    let gif = decode(&answer.body).expect("a GIF");
    assert_eq!((gif.width, gif.height), (600, 120));
    assert_eq!(gif.canvases.len(), 60);
    assert!(gif.delays.iter().all(|&d| d == 100), "{:?}", gif.delays);
    assert!(gif.has_loop_extension && gif.loops_forever);
    let golden = image::open(repo().join("tests/golden/demo-countdown-first.png"))
        .expect("golden image")
        .to_rgba8();
    assert!(max_diff(&gif.canvases[0], golden.as_raw()) <= 3);
    server.shutdown().await;
}

#[tokio::test]
async fn frame_k_shows_the_time_left_k_seconds_later() {
    let at = utc(AT);
    let (_redis, server, clock) = server_at(at).await;
    let until = until_after(LEFT);
    let gif = decode(&get(&countdown_url(&server, &until)).await.body).expect("a GIF");
    assert_eq!(gif.canvases.len(), 60);
    let mut first_frames = Vec::new();
    for k in 0..=60 {
        if [1, 9, 10, 11, 45, 46, 47, 59, 60].contains(&k) {
            clock.set(at + Duration::seconds(k));
            let answer = get(&countdown_url(&server, &format!("{until}&first_frame=1"))).await;
            let still = decode(&answer.body).expect("a GIF");
            assert_eq!(still.canvases.len(), 1, "first_frame=1 is a still");
            assert!(!still.has_loop_extension);
            first_frames.push((k as usize, still.canvases[0].clone()));
        }
    }
    for window in first_frames.windows(2) {
        let ((k, full), (next_k, next)) = (&window[0], &window[1]);
        if *k < 60 {
            assert!(
                max_diff(&gif.canvases[*k], full) <= 2,
                "frame {k} equals a full render of LEFT - {k}"
            );
            if *next_k == k + 1 {
                assert!(
                    max_diff(&gif.canvases[*k], next) > 100,
                    "frame {k} is not the next second"
                );
            }
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn expired_is_a_single_frame() {
    let at = utc(AT);
    let (_redis, server, clock) = server_at(at).await;
    let live = decode(&get(&countdown_url(&server, &until_after(3))).await.body).expect("a GIF");
    assert_eq!(live.canvases.len(), 4, "3, 2, 1, 0 and then it holds");
    assert_eq!(live.delays, vec![100, 100, 100, 5_700]);
    assert!(
        !live.has_loop_extension,
        "a finished countdown never starts again"
    );
    for later in [3, 4, 86_400] {
        clock.set(at + Duration::seconds(later));
        let answer = get(&countdown_url(&server, &until_after(3))).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-opentime-fallback"), None);
        let expired = decode(&answer.body).expect("a GIF");
        assert_eq!(expired.canvases.len(), 1);
        assert!(!expired.has_loop_extension);
        assert!(max_diff(&expired.canvases[0], &live.canvases[3]) > 100);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn dst_crossing_deadlines_in_two_time_zones() {
    // New York, fall-back night 2026-11-01: Saturday 12:00 EDT to Sunday 03:00 EST is 16 hours
    // (03:00 EST = 08:00Z), although the wall clock moves 15.
    let at = utc("2026-10-31T16:00:00Z");
    let (_redis, server, clock) = server_at(at).await;
    let local = get(&countdown_url(
        &server,
        "until=2026-11-01T03:00&tz=America/New_York",
    ))
    .await;
    assert_eq!(local.header("x-opentime-fallback"), None);
    let sixteen = get(&countdown_url(&server, "until=2026-11-01T08:00:00Z")).await;
    let fifteen = get(&countdown_url(&server, "until=2026-11-01T07:00:00Z")).await;
    let (local, sixteen, fifteen) = (
        decode(&local.body).expect("a GIF"),
        decode(&sixteen.body).expect("a GIF"),
        decode(&fifteen.body).expect("a GIF"),
    );
    assert_eq!(max_diff(&local.canvases[0], &sixteen.canvases[0]), 0);
    assert!(max_diff(&local.canvases[0], &fifteen.canvases[0]) > 100);
    // Berlin, spring-forward night 2027-03-28, in German: Saturday 12:00 CET to Sunday 12:00
    // CEST is 23 hours (12:00 CEST = 10:00Z).
    clock.set(utc("2027-03-27T11:00:00Z"));
    let local = get(&countdown_url(
        &server,
        "until=2027-03-28%2012:00&tz=Europe/Berlin&lang=de",
    ))
    .await;
    assert_eq!(local.header("x-opentime-fallback"), None);
    let local = decode(&local.body).expect("a GIF");
    let twenty_three = decode(
        &get(&countdown_url(
            &server,
            "until=2027-03-28T10:00:00Z&lang=de",
        ))
        .await
        .body,
    )
    .expect("a GIF");
    let twenty_four = decode(
        &get(&countdown_url(
            &server,
            "until=2027-03-28T11:00:00Z&lang=de",
        ))
        .await
        .body,
    )
    .expect("a GIF");
    let english = decode(
        &get(&countdown_url(&server, "until=2027-03-28T10:00:00Z"))
            .await
            .body,
    )
    .expect("a GIF");
    assert_eq!(max_diff(&local.canvases[0], &twenty_three.canvases[0]), 0);
    assert!(max_diff(&local.canvases[0], &twenty_four.canvases[0]) > 100);
    assert!(
        max_diff(&local.canvases[0], &english.canvases[0]) > 100,
        "German labels differ"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_until_tz_or_lang_gets_the_fallback_and_a_reason() {
    let (_redis, server, _clock) = server_at(utc(AT)).await;
    let fallback = get(&countdown_url(&server, "until=tomorrow")).await;
    let fallback_png = fallback.png();
    assert_eq!(fallback_png.dimensions(), (600, 120));
    for (query, reason) in [
        ("until=tomorrow", "bad-until"),
        ("until=2026-12-01T25:00:00Z", "bad-until"),
        ("until=2026-12-01T00:00&tz=", "bad-tz"),
        ("until=", "bad-until"),
        ("until=2026-12-01T00:00&tz=Mars/Olympus", "bad-tz"),
        ("until=2026-12-01T00:00:00Z&tz=Nowhere", "bad-tz"),
        ("until=2026-12-01T00:00:00Z&lang=xx", "bad-lang"),
        ("lang=tlh", "bad-lang"),
    ] {
        let answer = get(&countdown_url(&server, query)).await;
        assert_eq!(answer.status, 200, "{query}");
        assert_eq!(
            answer.header("x-opentime-fallback"),
            Some(reason),
            "{query}"
        );
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{query}");
        assert_eq!(answer.header("content-type"), Some("image/png"), "{query}");
        assert_eq!(answer.body, fallback.body, "{query}: the block's fallback");
    }
    // Without `until` the block's own deadline counts: a timer, not a fallback.
    let fixed = get(&countdown_url(&server, "")).await;
    assert_eq!(fixed.header("x-opentime-fallback"), None);
    assert_eq!(fixed.header("content-type"), Some("image/gif"));
    server.shutdown().await;
}

#[tokio::test]
async fn fifty_concurrent_opens_in_one_second_render_once() {
    let (_redis, server, _clock) = server_at(utc(AT)).await;
    let url = countdown_url(&server, &format!("{}&utm_source=x", until_after(LEFT)));
    let client = common::client();
    let opens: Vec<_> = (0..50)
        .map(|i| {
            // Other query keys (tracking tags) do not split the cache.
            let url = url.replace("utm_source=x", &format!("utm_source={i}"));
            let client = client.clone();
            tokio::spawn(async move { common::send(client.get(url)).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for open in opens {
        let answer = open.await.expect("request task");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-opentime-fallback"), None);
        bodies.push(answer.body);
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]));
    let metrics = server.metrics().await;
    assert_eq!(
        metric(&metrics, "opentime_render_seconds_count{format=\"gif\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "opentime_render_cache_misses_total"), 1.0);
    assert_eq!(metric(&metrics, "opentime_render_cache_hits_total"), 49.0);
    server.shutdown().await;
}

/// Ten real seconds of 20 opens a second against one deadline, on the system clock: one
/// render per second (one more when a burst straddles a second). Slow, so not in the default
/// run: `cargo test --test countdown -- --ignored`.
#[tokio::test]
#[ignore]
async fn one_render_per_second_under_sustained_load() {
    let redis = RedisServer::start();
    let server = TestServer::builder().redis(&redis).start().await;
    let until = z(Utc::now() + Duration::days(3));
    let url = countdown_url(&server, &format!("until={until}"));
    let client = common::client();
    let started = std::time::Instant::now();
    let mut opens = 0;
    while started.elapsed() < std::time::Duration::from_secs(10) {
        let burst: Vec<_> = (0..20)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move { common::send(client.get(url)).await })
            })
            .collect();
        for open in burst {
            let answer = open.await.expect("request task");
            assert_eq!(answer.header("x-opentime-fallback"), None);
            opens += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64().ceil();
    let metrics = server.metrics().await;
    let renders = metric(&metrics, "opentime_render_seconds_count{format=\"gif\"}");
    println!("{opens} opens in {seconds} s: {renders} renders");
    assert!(opens >= 100);
    assert!(renders <= seconds + 1.0, "{renders} renders in {seconds} s");
    server.shutdown().await;
}

#[tokio::test]
async fn a_countdown_from_the_context_is_personalized() {
    let templates = common::copy_templates();
    let manifest = templates.path().join("demo/blocks.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("manifest");
    text.push_str(
        "\n[blocks.reservation]\nkind = \"countdown\"\ntemplate = \"countdown.svg\"\nwidth = 600\nheight = 120\ndeadline_field = \"cart.reserved_until\"\nframes = 10\nloop = \"once\"\nfallback = \"fallback/countdown.svg\"\n",
    );
    std::fs::write(&manifest, text).expect("write manifest");
    let redis = RedisServer::start();
    let at = utc(AT);
    let server = TestServer::builder()
        .redis(&redis)
        .templates(templates.path())
        .keep(templates)
        .clock(Clock::manual(at))
        .start()
        .await;
    redis.hset(
        "alice",
        "cart",
        &serde_json::json!({"reserved_until": z(at + Duration::minutes(15))}),
    );
    let unsigned = get(&server.url("/img/demo/reservation.gif?s=alice")).await;
    assert_eq!(unsigned.header("x-opentime-fallback"), Some("bad-token"));
    let answer = get(&server.signed("demo/reservation.gif", "alice")).await;
    assert_eq!(answer.header("x-opentime-fallback"), None);
    assert_eq!(answer.header("cache-control"), Some("no-cache"));
    assert!(answer.header("etag").is_some());
    let gif = decode(&answer.body).expect("a GIF");
    assert_eq!(gif.canvases.len(), 10);
    assert!(!gif.has_loop_extension, "loop = \"once\"");
    // The query cannot override a deadline the context gives.
    let other = get(&format!(
        "{}&until={}",
        server.signed("demo/reservation.gif", "alice"),
        z(at + Duration::minutes(5))
    ))
    .await;
    assert_eq!(other.body, answer.body);
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_image_replaces_the_timer_after_the_deadline() {
    let templates = common::copy_templates();
    let manifest = templates.path().join("demo/blocks.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("manifest");
    text.push_str(
        "\n[blocks.ended]\nkind = \"countdown\"\ntemplate = \"countdown.svg\"\nwidth = 600\nheight = 120\nexpired_image = \"fallback/points.svg\"\nfallback = \"fallback/countdown.svg\"\n",
    );
    std::fs::write(&manifest, text).expect("write manifest");
    let redis = RedisServer::start();
    let at = utc(AT);
    let clock = Clock::manual(at);
    let server = TestServer::builder()
        .redis(&redis)
        .templates(templates.path())
        .keep(templates)
        .clock(clock.clone())
        .start()
        .await;
    let url = server.url(&format!("/img/demo/ended.gif?{}", until_after(60)));
    let live = get(&url).await;
    assert_eq!(live.header("content-type"), Some("image/gif"));
    clock.set(at + Duration::seconds(60));
    let ended = get(&url).await;
    assert_eq!(ended.status, 200);
    assert_eq!(ended.header("x-opentime-fallback"), None);
    assert_eq!(ended.header("content-type"), Some("image/png"));
    let fallback = get(&server.url("/img/demo/ended.gif?until=x")).await;
    assert_eq!(ended.png().dimensions(), (600, 120));
    assert_ne!(
        ended.body, fallback.body,
        "the expired image, not the fallback"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn outlook_desktop_gets_the_first_frame_as_a_still() {
    let (_redis, server, _clock) = server_at(utc(AT)).await;
    let url = countdown_url(&server, &until_after(LEFT));
    let animated = get(&url).await;
    assert_eq!(animated.header("vary"), Some("User-Agent"));
    let outlook = common::send(common::client().get(&url).header(
        "user-agent",
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.15225; Pro)",
    ))
    .await;
    assert_eq!(outlook.status, 200);
    assert_eq!(outlook.header("x-opentime-fallback"), None);
    assert_eq!(outlook.header("vary"), Some("User-Agent"));
    assert!(outlook.body.len() < animated.body.len());
    let (still, animated) = (
        decode(&outlook.body).expect("a GIF"),
        decode(&animated.body).expect("a GIF"),
    );
    assert_eq!(still.canvases.len(), 1);
    assert!(!still.has_loop_extension);
    assert_eq!(max_diff(&still.canvases[0], &animated.canvases[0]), 0);
    server.shutdown().await;
}
