//! Maps method and path to a handler, and counts every answer by route and status.

use super::answer::{self, Body};
use super::block_route;
use super::state::AppState;
use super::{click, ingest, pixel, report, vote};
use crate::open::Opener;
use crate::render::Format;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;

/// The TCP peer of a connection, put into each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub(super) struct PeerAddr(pub std::net::SocketAddr);

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Face {
    /// Mail clients, image proxies, CDNs and the channels' API.
    Public,
    /// Operators (`OPENTIME_ADMIN_LISTEN`): `/metrics`, `/readyz`, `/healthz` only.
    Admin,
}

pub(super) async fn handle(
    state: Arc<AppState>,
    request: Request<Incoming>,
    face: Face,
) -> Response<Body> {
    let is_head = request.method() == Method::HEAD;
    let path = request.uri().path();
    let (route, response) = if !serves(face, path, state.config.admin_listen.is_some()) {
        ("unknown", not_found())
    } else if let Some(campaign) = path.strip_prefix("/v1/report/") {
        let campaign = campaign.to_owned();
        ("report", report::serve(&state, &request, &campaign).await)
    } else if path.starts_with("/v1/") {
        ("context-api", ingest::handle(&state, request).await)
    } else {
        route(&state, &request).await
    };
    state
        .pipeline
        .metrics
        .request(route, response.status().as_u16());
    if is_head {
        answer::strip_body_for_head(response)
    } else {
        response
    }
}

async fn route(
    state: &Arc<AppState>,
    request: &Request<Incoming>,
) -> (&'static str, Response<Body>) {
    let path = request.uri().path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let readable = matches!(*request.method(), Method::GET | Method::HEAD);
    let route_name = match segments.as_slice() {
        ["img", _, _] => "img",
        ["html", _, _] => "html",
        ["click", _, _] => "click",
        ["vote", _, _, _] => "vote",
        ["open", _] => "open",
        ["healthz"] => "healthz",
        ["readyz"] => "readyz",
        ["metrics"] => "metrics",
        _ => "unknown",
    };
    if route_name != "unknown" && !readable {
        let mut response = answer::plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return (route_name, response);
    }
    let query = request.uri().query();
    let opener = opener_of(state, request);
    let response = match segments.as_slice() {
        ["img", campaign, file] => {
            block_route::serve(
                state,
                campaign,
                file,
                Format::Png,
                query,
                request.headers(),
                opener,
            )
            .await
        }
        ["click", campaign, block] => click::serve(state, campaign, block, query, opener).await,
        ["vote", campaign, poll, option] => {
            vote::serve(state, campaign, poll, option, query, opener).await
        }
        ["open", file] => pixel::serve(state, file, query, opener),
        ["html", campaign, file] => {
            block_route::serve(
                state,
                campaign,
                file,
                Format::Html,
                query,
                request.headers(),
                opener,
            )
            .await
        }
        ["healthz"] => answer::plain(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        ["readyz"] => readiness(state).await,
        ["metrics"] => answer::plain(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            state.pipeline.metrics_text().await,
        ),
        _ => answer::plain(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    };
    (route_name, response)
}

/// Whether `path` is answered on `face`: operator routes move to the admin listener when there
/// is one, and the admin listener answers nothing else.
fn serves(face: Face, path: &str, admin_listener: bool) -> bool {
    let operator_route = matches!(path, "/metrics" | "/readyz" | "/healthz");
    match face {
        Face::Admin => operator_route,
        Face::Public => !(admin_listener && matches!(path, "/metrics" | "/readyz")),
    }
}

fn not_found() -> Response<Body> {
    answer::plain(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "not found\n",
    )
}

/// Who fetched: from the User-Agent, `X-Forwarded-For` (through the trusted proxy hops) and
/// the connection's peer address; a HEAD request is never a person's open.
fn opener_of(state: &AppState, request: &Request<Incoming>) -> Opener {
    let headers = request.headers();
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok());
    Opener::of(
        headers.get(USER_AGENT).and_then(|v| v.to_str().ok()),
        forwarded,
        request.extensions().get::<PeerAddr>().map(|p| p.0.ip()),
        state.config.trusted_proxy_hops,
        &state.pipeline.sources.clients,
    )
    .with_head(request.method() == Method::HEAD)
}

/// Ready when the store answers and at least one campaign is loaded.
async fn readiness(state: &AppState) -> Response<Body> {
    let store = tokio::time::timeout(
        state.config.store_timeout() * 5,
        state.pipeline.contexts.ping(),
    )
    .await;
    let campaigns = state.pipeline.catalog.campaigns().len();
    match store {
        Ok(Ok(())) if campaigns > 0 => answer::plain(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            format!(
                "ready: {} store, {campaigns} campaigns\n",
                state.pipeline.contexts.kind().as_str()
            ),
        ),
        Ok(Ok(())) => answer::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "not ready: no campaign loaded\n",
        ),
        Ok(Err(error)) => answer::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            format!("not ready: {}\n", error.reason()),
        ),
        Err(_) => answer::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "not ready: store-timeout\n",
        ),
    }
}
