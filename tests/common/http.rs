//! Speaking HTTP to the test server: requests, answers, the ingest API, `/metrics`.

use super::{decode_png, TestServer};
use std::time::Duration;

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn png(&self) -> image::RgbaImage {
        decode_png(&self.body)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    /// The body as JSON (`null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What the tests' HTTP client says it is unless a test says otherwise: a person reading mail
/// in Chrome (a fetch with no User-Agent is a machine's, and never counts as an open).
pub const PERSON_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(PERSON_USER_AGENT)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// A client that shows redirects instead of following them (for `/click`).
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(PERSON_USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

pub async fn get(url: &str) -> Answer {
    send(client().get(url)).await
}

pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// A JSON `PATCH /v1/context/{subscriber}` with a channel's bearer token.
pub async fn patch_context(
    server: &TestServer,
    subscriber: &str,
    bearer: &str,
    body: &str,
) -> Answer {
    send(
        client()
            .patch(server.url(&format!("/v1/context/{subscriber}")))
            .header("authorization", format!("Bearer {bearer}"))
            .header("content-type", "application/json")
            .body(body.to_owned()),
    )
    .await
}

impl TestServer {
    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> String {
        String::from_utf8(get(&self.url("/metrics")).await.body).expect("metrics text")
    }
}

/// The value of one Prometheus sample (`name` with its labels, if any) in `/metrics` text;
/// 0 when it is absent.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The User-Agent of Apple Mail Privacy Protection's prefetch, exactly.
pub const APPLE_MPP_USER_AGENT: &str = "Mozilla/5.0";

/// Fetches `url` as Apple Mail Privacy Protection does (its exact User-Agent, from a relay
/// egress address behind one trusted proxy hop) and checks it was served, not a fallback.
pub async fn apple_prefetch(url: &str) -> Answer {
    let prefetch = send(
        client()
            .get(url)
            .header("user-agent", APPLE_MPP_USER_AGENT)
            .header("x-forwarded-for", "172.224.226.9"),
    )
    .await;
    assert_eq!(prefetch.status, 200);
    assert_eq!(prefetch.header("x-opentime-fallback"), None);
    prefetch
}
