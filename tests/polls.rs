//! Polls over HTTP with a real Redis: 1,000 subscribers voting at once are counted exactly, a
//! second vote counts only where the poll lets a vote be changed, the voter lands on the
//! thank-you link, the vote reaches the subscriber's context and the event stream, and the
//! results block's HTML (the live campaign's own template) shows the counts and shares.

mod common;

use common::{eventually, get, no_redirects, send, token, RedisServer, TestServer};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const OPTIONS: [&str; 3] = ["running", "yoga", "cycling"];

const MANIFEST: &str = r#"
[polls.sport]
options = ["running", "yoga", "cycling"]
labels = { running = "Running", yoga = "Yoga", cycling = "Cycling" }
thank_you = "https://shop.example.com/thanks?vote={option}"
link_hosts = ["shop.example.com"]

[polls.mood]
options = ["happy", "meh"]
thank_you = "https://shop.example.com/thanks"
link_hosts = ["shop.example.com"]
change = true

[blocks.results]
kind = "html"
html = "sport_results.html"
reads = []
poll = "sport"
"#;

/// A templates folder with the `vote` campaign: the two polls and the live campaign's own
/// results template.
fn campaign() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let campaign = dir.path().join("vote");
    std::fs::create_dir_all(&campaign).unwrap();
    std::fs::write(campaign.join("blocks.toml"), MANIFEST).unwrap();
    std::fs::copy(
        common::repo().join("templates/live/sport_results.html"),
        campaign.join("sport_results.html"),
    )
    .unwrap();
    dir
}

async fn start(redis: &RedisServer) -> (TestServer, tempfile::TempDir) {
    let dir = campaign();
    let server = TestServer::builder()
        .redis(redis)
        .templates(dir.path())
        .start()
        .await;
    server.wait_until_ready().await;
    (server, dir)
}

fn vote_url(server: &TestServer, poll: &str, option: &str, subscriber: &str) -> String {
    format!(
        "{}/vote/vote/{poll}/{option}?s={subscriber}&t={}",
        server.base,
        token(subscriber)
    )
}

/// The value of `name="…"` right after `from` in `html`.
fn attribute<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
    let end = html[start..].find('"').expect("closing quote") + start;
    &html[start..end]
}

/// Option → (votes, share), and the total, read from the results block's HTML.
fn results(html: &str) -> (BTreeMap<String, (u64, u64)>, u64) {
    let total = attribute(html, "data-total").parse().unwrap();
    let rows = html
        .split("<tr class=\"option\"")
        .skip(1)
        .map(|row| {
            (
                attribute(row, "data-option").to_owned(),
                (
                    attribute(row, "data-votes").parse().unwrap(),
                    attribute(row, "data-share").parse().unwrap(),
                ),
            )
        })
        .collect();
    (rows, total)
}

fn counts(redis: &RedisServer, key: &str) -> BTreeMap<String, u64> {
    redis::cmd("HGETALL")
        .arg(key)
        .query(&mut redis.connection())
        .unwrap()
}

#[tokio::test]
async fn a_thousand_concurrent_voters_are_counted_exactly() {
    let redis = RedisServer::start();
    let (server, _dir) = start(&redis).await;
    let server = Arc::new(server);
    // One client (its connections kept alive), at most 48 votes in flight: under the
    // server's cap of 64 connections per address.
    let http = no_redirects();
    let permits = Arc::new(tokio::sync::Semaphore::new(48));
    let mut votes = tokio::task::JoinSet::new();
    for n in 0..1000 {
        let (server, permits, http) = (Arc::clone(&server), Arc::clone(&permits), http.clone());
        votes.spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let option = OPTIONS[n % 3];
            let answer = send(http.get(vote_url(&server, "sport", option, &format!("v{n}")))).await;
            (answer, option)
        });
    }
    while let Some(done) = votes.join_next().await {
        let (answer, option) = done.unwrap();
        assert_eq!(answer.status, 302);
        assert_eq!(
            answer.header("location"),
            Some(format!("https://shop.example.com/thanks?vote={option}").as_str())
        );
        assert_eq!(answer.header("cache-control"), Some("no-store"));
    }
    let expected = BTreeMap::from([
        ("running".to_owned(), 334),
        ("yoga".to_owned(), 333),
        ("cycling".to_owned(), 333),
    ]);
    assert_eq!(counts(&redis, "poll:{vote}:sport"), expected);

    // The results block shows the same numbers, and shares that add up.
    let answer = get(&format!("{}/html/vote/results.html", server.base)).await;
    assert_eq!(answer.status, 200);
    let (rows, total) = results(&answer.text());
    assert_eq!(total, 1000);
    assert_eq!(rows["running"], (334, 33));
    assert_eq!(rows["yoga"], (333, 33));
    assert_eq!(rows["cycling"], (333, 33));

    // Each vote is in the voter's context and in the event stream.
    assert_eq!(
        redis.hget_json("v1", "polls"),
        Some(json!({"vote": {"sport": "yoga"}}))
    );
    let recorded = eventually(Duration::from_secs(5), || async {
        redis.events().iter().any(|e| {
            e.get("type").map(String::as_str) == Some("vote")
                && e.get("subscriber").map(String::as_str) == Some("v2")
                && e.get("option").map(String::as_str) == Some("cycling")
                && e.get("counted").map(String::as_str) == Some("1")
        })
    })
    .await;
    assert!(recorded);
}

#[tokio::test]
async fn a_second_vote_counts_only_where_votes_may_change() {
    let redis = RedisServer::start();
    let (server, _dir) = start(&redis).await;
    for option in ["running", "yoga", "yoga"] {
        let answer = send(no_redirects().get(vote_url(&server, "sport", option, "ann"))).await;
        assert_eq!(answer.status, 302);
    }
    assert_eq!(
        counts(&redis, "poll:{vote}:sport"),
        BTreeMap::from([("running".to_owned(), 1)]),
        "the first vote stands"
    );
    assert_eq!(
        redis.hget_json("ann", "polls"),
        Some(json!({"vote": {"sport": "running"}}))
    );

    for option in ["happy", "meh", "meh"] {
        send(no_redirects().get(vote_url(&server, "mood", option, "ann"))).await;
    }
    assert_eq!(
        counts(&redis, "poll:{vote}:mood"),
        BTreeMap::from([("happy".to_owned(), 0), ("meh".to_owned(), 1)]),
        "a changed vote moves"
    );
    assert_eq!(
        redis.hget_json("ann", "polls"),
        Some(json!({"vote": {"sport": "running", "mood": "meh"}}))
    );
}

#[tokio::test]
async fn bad_votes_get_a_clear_answer_and_machines_are_not_counted() {
    let redis = RedisServer::start();
    let (server, _dir) = start(&redis).await;
    let forged = format!("{}/vote/vote/sport/yoga?s=ann&t=forged", server.base);
    let answer = send(no_redirects().get(&forged)).await;
    assert_eq!(answer.status, 403);
    assert!(answer.text().contains("token"), "{}", answer.text());
    let answer = send(no_redirects().get(vote_url(&server, "sport", "chess", "ann"))).await;
    assert_eq!(answer.status, 404);
    let answer = send(no_redirects().get(vote_url(&server, "nope", "yoga", "ann"))).await;
    assert_eq!(answer.status, 404);
    // A link scanner follows the vote link: redirected, never counted.
    let scanner = send(
        no_redirects()
            .get(vote_url(&server, "sport", "yoga", "ann"))
            .header("user-agent", "python-requests/2.31"),
    )
    .await;
    assert_eq!(scanner.status, 302);
    assert!(counts(&redis, "poll:{vote}:sport").is_empty());
    assert_eq!(redis.hget_json("ann", "polls"), None);
}

/// Without Redis, the embedded store counts votes the same way.
#[tokio::test]
async fn the_embedded_store_counts_votes_too() {
    let dir = campaign();
    let server = TestServer::builder()
        .embedded_store()
        .templates(dir.path())
        .start()
        .await;
    for (subscriber, option) in [
        ("ann", "yoga"),
        ("bob", "yoga"),
        ("ann", "running"),
        ("cat", "cycling"),
    ] {
        let answer = send(no_redirects().get(vote_url(&server, "sport", option, subscriber))).await;
        assert_eq!(answer.status, 302);
    }
    let answer = get(&format!("{}/html/vote/results.html", server.base)).await;
    let (rows, total) = results(&answer.text());
    assert_eq!(total, 3);
    assert_eq!(rows["yoga"], (2, 67));
    assert_eq!(rows["running"], (0, 0));
    assert_eq!(rows["cycling"], (1, 33));
}
