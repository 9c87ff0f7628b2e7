//! `GET /v1/report/{campaign}` (a channel's bearer token): the campaign's test arms and poll
//! counts as JSON (`crate::open::report`).

use super::answer::Body;
use super::ingest::{authenticate, json_answer};
use super::state::AppState;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use std::time::Duration;

/// How long the counts may take to read.
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn serve(
    state: &AppState,
    request: &Request<Incoming>,
    campaign: &str,
) -> Response<Body> {
    let error = |status, code: &str, reason: String| {
        json_answer(status, &json!({"error": code, "reason": reason}))
    };
    if let Err(refused) = authenticate(state, request) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            refused.to_string(),
        );
        response
            .headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        return response;
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "use GET".into(),
        );
    }
    let Some(campaign) = state.pipeline.catalog.campaign(campaign) else {
        return error(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no campaign `{campaign}`"),
        );
    };
    let report = tokio::time::timeout(
        REPORT_TIMEOUT,
        crate::open::report(&campaign, state.pipeline.tallies.as_ref()),
    )
    .await;
    let mut response = match report {
        Ok(Ok(report)) => json_answer(StatusCode::OK, &json!(report)),
        Ok(Err(failure)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store",
            failure.to_string(),
        ),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store",
            "the counts could not be read in time".into(),
        ),
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
