//! The context ingest API for the other channels:
//! `GET|PATCH|POST|DELETE /v1/context/{subscriber}` and `DELETE /v1/context/{subscriber}/{field}`
//! (or `?field=NAME`).
//!
//! Each channel has its bearer token (`OPENTIME_CHANNEL_TOKENS`) and its scope
//! (`OPENTIME_CHANNEL_SCOPES`: the fields it may write, whether it may read, whether it may
//! erase a subscriber — context, locks and cached renders). A PATCH body is a JSON object
//! of top-level fields; each is set with one HSET (the whole body in one command), next to a
//! `_by.{field}` field saying which channel wrote it and when — written in the same command,
//! so the record can never disagree with the data. Every bad input is refused with a 4xx and a
//! JSON `{"error", "reason"}` before anything is written; a 2xx means the write is in the store,
//! on as many copies as `OPENTIME_WRITE_REPLICAS` asks (the answer's `copies`): a Redis
//! failover cannot take it back. Answers are `no-store`. Tokens are never logged.

use super::answer::{self, Body};
use super::state::AppState;
use crate::channels::Scope;
use crate::context::{ContextFields, Copies, StoreError, SubscriberId, SubscriberIdError};
use bytes::Bytes;
use chrono::SecondsFormat;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// Largest request body.
pub(super) const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most fields in one PATCH.
pub(super) const MAX_FIELDS: usize = 32;
/// Largest single field value, as JSON.
pub(super) const MAX_FIELD_BYTES: usize = 16 * 1024;
/// Longest field name.
pub(super) const MAX_FIELD_NAME: usize = 64;
/// Fields opentime writes itself; channels read them but do not write them.
pub(super) const RESERVED_FIELDS: [&str; 1] = ["email"];
/// Prefix of the fields recording which channel wrote a field.
pub(super) const WRITTEN_BY_PREFIX: &str = "_by.";
/// Longest wait for the store on the API (longer than on the open path: a channel can wait).
const API_STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest time a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(super) enum IngestError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("no such API route")]
    NotFound,
    #[error("method not allowed here")]
    MethodNotAllowed(&'static str),
    #[error("{0}")]
    BadSubscriber(#[from] SubscriberIdError),
    #[error("the body must be JSON: send Content-Type: application/json (or none; `curl -d` alone sends a form type)")]
    UnsupportedMediaType,
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("the body is not valid JSON: {0}")]
    BadJson(String),
    #[error("the body must be a JSON object of context fields")]
    NotAnObject,
    #[error("the body holds no field")]
    NoFields,
    #[error("more than {MAX_FIELDS} fields in one request")]
    TooManyFields,
    #[error("field name `{0}` must match [a-z][a-z0-9_]* and be at most {MAX_FIELD_NAME} bytes")]
    BadFieldName(String),
    #[error("field `{0}` is written by opentime itself")]
    ReservedField(String),
    #[error("field `{0}` is larger than {MAX_FIELD_BYTES} bytes as JSON")]
    FieldTooLarge(String),
    #[error("no context stored for this subscriber")]
    NoContext,
    #[error("could not read the request body (in time)")]
    BodyRead,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the write reached the Redis master but {held} of {wanted} copies acknowledged it in time; send it again (writes are idempotent)")]
    NotReplicated { held: u32, wanted: u32 },
}

impl IngestError {
    fn status(&self) -> StatusCode {
        match self {
            IngestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            IngestError::Forbidden(_) => StatusCode::FORBIDDEN,
            IngestError::NotFound | IngestError::NoContext => StatusCode::NOT_FOUND,
            IngestError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            IngestError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::BodyTooLarge | IngestError::FieldTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            IngestError::BadSubscriber(_)
            | IngestError::BadJson(_)
            | IngestError::NotAnObject
            | IngestError::NoFields
            | IngestError::TooManyFields
            | IngestError::BadFieldName(_)
            | IngestError::ReservedField(_)
            | IngestError::BodyRead => StatusCode::BAD_REQUEST,
            IngestError::Store(_) | IngestError::NotReplicated { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The machine-readable `error` of the answer.
    pub(super) fn code(&self) -> &'static str {
        match self {
            IngestError::Unauthorized(_) => "unauthorized",
            IngestError::Forbidden(_) => "forbidden",
            IngestError::NotFound => "not-found",
            IngestError::MethodNotAllowed(_) => "method-not-allowed",
            IngestError::BadSubscriber(_) => "bad-subscriber",
            IngestError::UnsupportedMediaType => "unsupported-media-type",
            IngestError::BodyTooLarge => "body-too-large",
            IngestError::BadJson(_) => "bad-json",
            IngestError::NotAnObject => "not-an-object",
            IngestError::NoFields => "no-fields",
            IngestError::TooManyFields => "too-many-fields",
            IngestError::BadFieldName(_) => "bad-field-name",
            IngestError::ReservedField(_) => "reserved-field",
            IngestError::FieldTooLarge(_) => "field-too-large",
            IngestError::NoContext => "no-context",
            IngestError::BodyRead => "bad-body",
            IngestError::Store(_) => "store-unavailable",
            IngestError::NotReplicated { .. } => "not-replicated",
        }
    }
}

/// Answers one API request (any path under `/v1/`).
pub(super) async fn handle(state: &AppState, request: Request<Incoming>) -> Response<Body> {
    match respond(state, request).await {
        Ok(response) => response,
        Err(error) => {
            if matches!(
                error,
                IngestError::Store(_) | IngestError::NotReplicated { .. }
            ) {
                tracing::warn!(%error, "context API: store failed");
            }
            let mut body = json!({"error": error.code(), "reason": error.to_string()});
            if let IngestError::NotReplicated { held, .. } = error {
                body["copies"] = json!(held);
            }
            let mut response = json_answer(error.status(), &body);
            let headers = response.headers_mut();
            match &error {
                IngestError::Unauthorized(_) => {
                    headers.insert("www-authenticate", HeaderValue::from_static("Bearer"));
                }
                IngestError::MethodNotAllowed(allow) => {
                    headers.insert(ALLOW, HeaderValue::from_static(allow));
                }
                IngestError::Store(_) | IngestError::NotReplicated { .. } => {
                    headers.insert("retry-after", HeaderValue::from_static("1"));
                }
                _ => {}
            }
            response
        }
    }
}

pub(super) fn json_answer(status: StatusCode, body: &Value) -> Response<Body> {
    answer::plain(status, "application/json", body.to_string())
}

async fn respond(
    state: &AppState,
    request: Request<Incoming>,
) -> Result<Response<Body>, IngestError> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (raw_subscriber, path_field) = match segments.as_slice() {
        ["v1", "context", subscriber] => (*subscriber, None),
        ["v1", "context", subscriber, field] => (*subscriber, Some(*field)),
        _ => return Err(IngestError::NotFound),
    };
    let (channel, scope) = authenticate(state, &request)?;
    let (channel, scope) = (channel.to_owned(), scope.clone());
    let subscriber = SubscriberId::parse(&percent_decode(raw_subscriber))?;
    let query_field = request.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "field")
            .map(|(_, v)| v.into_owned())
    });
    let field = path_field.map(percent_decode).or(query_field);
    let method = request.method().clone();
    let forbidden = |what: String| {
        IngestError::Forbidden(format!(
            "channel `{channel}` may not {what} (OPENTIME_CHANNEL_SCOPES)"
        ))
    };
    match (method, field) {
        (Method::GET | Method::HEAD, None) => {
            if !scope.read {
                return Err(forbidden("read contexts".into()));
            }
            read(state, &subscriber).await
        }
        (Method::PATCH | Method::POST, None) => {
            let body = read_body(request).await?;
            let fields = parse_fields(&body)?;
            if let Some(field) = fields.keys().find(|field| !scope.may_write(field)) {
                return Err(forbidden(format!("write field `{field}`")));
            }
            write(state, &subscriber, &channel, fields).await
        }
        (Method::DELETE, Some(field)) => {
            check_field_name(&field)?;
            if !scope.may_write(&field) {
                return Err(forbidden(format!("delete field `{field}`")));
            }
            delete_field(state, &subscriber, &channel, &field).await
        }
        (Method::DELETE, None) => {
            if !scope.erase {
                return Err(forbidden("erase subscribers".into()));
            }
            erase(state, &subscriber, &channel).await
        }
        (_, Some(_)) => Err(IngestError::MethodNotAllowed("DELETE")),
        (_, None) => Err(IngestError::MethodNotAllowed(
            "GET, HEAD, PATCH, POST, DELETE",
        )),
    }
}

/// The channel whose bearer token the request carries, and its scope.
pub(super) fn authenticate<'a>(
    state: &'a AppState,
    request: &Request<Incoming>,
) -> Result<(&'a str, &'a Scope), IngestError> {
    if state.channels.is_empty() {
        return Err(IngestError::Unauthorized(
            "no channel tokens are configured (OPENTIME_CHANNEL_TOKENS)",
        ));
    }
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(IngestError::Unauthorized(
            "missing Authorization: Bearer TOKEN",
        ))?;
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(IngestError::Unauthorized("use Authorization: Bearer TOKEN"))?;
    state
        .channels
        .authorized(token)
        .ok_or(IngestError::Unauthorized("unknown token"))
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, IngestError> {
    let headers = request.headers();
    if let Some(content_type) = headers.get(CONTENT_TYPE) {
        let media = content_type.to_str().unwrap_or_default();
        let essence = media.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(IngestError::UnsupportedMediaType);
        }
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(IngestError::BodyTooLarge);
    }
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES).collect();
    match tokio::time::timeout(BODY_TIMEOUT, body).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(IngestError::BodyTooLarge)
        }
        Ok(Err(_)) | Err(_) => Err(IngestError::BodyRead),
    }
}

/// Checks a PATCH body; returns its fields.
pub(super) fn parse_fields(body: &[u8]) -> Result<ContextFields, IngestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(IngestError::BodyTooLarge);
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| IngestError::BadJson(e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(IngestError::NotAnObject);
    };
    if fields.is_empty() {
        return Err(IngestError::NoFields);
    }
    if fields.len() > MAX_FIELDS {
        return Err(IngestError::TooManyFields);
    }
    for (name, value) in &fields {
        check_field_name(name)?;
        if RESERVED_FIELDS.contains(&name.as_str()) {
            return Err(IngestError::ReservedField(name.clone()));
        }
        if value.to_string().len() > MAX_FIELD_BYTES {
            return Err(IngestError::FieldTooLarge(name.clone()));
        }
    }
    Ok(fields)
}

fn check_field_name(name: &str) -> Result<(), IngestError> {
    let mut bytes = name.bytes();
    let valid = name.len() <= MAX_FIELD_NAME
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(IngestError::BadFieldName(name.chars().take(80).collect()))
    }
}

async fn within<T>(
    future: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, IngestError> {
    match tokio::time::timeout(API_STORE_TIMEOUT, future).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(IngestError::Store(StoreError::Timeout)),
    }
}

async fn read(state: &AppState, subscriber: &SubscriberId) -> Result<Response<Body>, IngestError> {
    let fields = within(state.pipeline.contexts.load(subscriber)).await?;
    if fields.is_empty() {
        return Err(IngestError::NoContext);
    }
    Ok(json_answer(
        StatusCode::OK,
        &json!({"subscriber": subscriber.as_str(), "context": fields}),
    ))
}

async fn write(
    state: &AppState,
    subscriber: &SubscriberId,
    channel: &str,
    fields: ContextFields,
) -> Result<Response<Body>, IngestError> {
    let at = chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let names: Vec<String> = fields.keys().cloned().collect();
    let mut record = fields;
    for name in &names {
        record.insert(
            format!("{WRITTEN_BY_PREFIX}{name}"),
            json!({"channel": channel, "at": at}),
        );
    }
    let copies = replicated(within(state.pipeline.contexts.merge(subscriber, record)).await?)?;
    tracing::debug!(subscriber = %subscriber, channel, fields = ?names, "context written");
    Ok(json_answer(
        StatusCode::OK,
        &json!({"subscriber": subscriber.as_str(), "channel": channel, "written": names, "at": at, "copies": copies.held}),
    ))
}

async fn delete_field(
    state: &AppState,
    subscriber: &SubscriberId,
    channel: &str,
    field: &str,
) -> Result<Response<Body>, IngestError> {
    // The field and its `_by` record, in one command.
    let record = format!("{WRITTEN_BY_PREFIX}{field}");
    let removed = within(
        state
            .pipeline
            .contexts
            .remove_fields(subscriber, &[field, record.as_str()]),
    )
    .await?;
    let copies = replicated(removed.copies)?;
    let deleted = removed.existed;
    tracing::debug!(subscriber = %subscriber, channel, field, deleted, "context field deleted");
    Ok(json_answer(
        StatusCode::OK,
        &json!({"subscriber": subscriber.as_str(), "field": field, "deleted": deleted, "copies": copies.held}),
    ))
}

/// Erases a subscriber: their locks (what locked blocks showed them), the whole context and
/// their cached renders. The locks go first, on the connection the context's removal then
/// waits for replicas on, so the copies the answer gives hold the whole erasure; the answer
/// says how many locks went too. A failure half-way is a 503: repeating the DELETE finishes it.
async fn erase(
    state: &AppState,
    subscriber: &SubscriberId,
    channel: &str,
) -> Result<Response<Body>, IngestError> {
    let pipeline = &state.pipeline;
    let locks =
        match tokio::time::timeout(API_STORE_TIMEOUT, pipeline.locks.remove_all_of(subscriber))
            .await
        {
            Ok(Ok(count)) => count,
            Ok(Err(error)) => {
                tracing::warn!(%error, "locks not erased");
                return Err(IngestError::Store(StoreError::Backend(
                    "the locks could not be erased; repeat the DELETE".into(),
                )));
            }
            Err(_) => return Err(IngestError::Store(StoreError::Timeout)),
        };
    let removed = within(pipeline.contexts.remove_all(subscriber)).await?;
    pipeline.cache.forget_subscriber(subscriber.as_str());
    let copies = replicated(removed.copies)?;
    let deleted = removed.existed;
    tracing::debug!(subscriber = %subscriber, channel, deleted, locks, "subscriber erased");
    Ok(json_answer(
        StatusCode::OK,
        &json!({"subscriber": subscriber.as_str(), "deleted": deleted, "locks_deleted": locks, "copies": copies.held}),
    ))
}

/// The copies of an acknowledged write, or `NotReplicated` when fewer replicas acknowledged
/// it than were waited for.
fn replicated(copies: Copies) -> Result<Copies, IngestError> {
    if copies.enough() {
        Ok(copies)
    } else {
        Err(IngestError::NotReplicated {
            held: copies.held,
            wanted: copies.wanted,
        })
    }
}

/// Decodes `%XX` escapes in a path segment (invalid escapes are kept as they are).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes.get(index), bytes.get(index + 1), bytes.get(index + 2)) {
            (Some(b'%'), Some(&high), Some(&low)) => match (hex(high), hex(low)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    index += 3;
                }
                _ => {
                    out.push(b'%');
                    index += 1;
                }
            },
            (Some(&b), _, _) => {
                out.push(b);
                index += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_objects_of_named_fields() {
        let fields = parse_fields(br#"{"sms": {"intent": "upgrade"}, "crm_2": 1}"#).unwrap();
        assert_eq!(fields.len(), 2);
    }

    #[test]
    fn refuses_each_kind_of_bad_body() {
        let code = |body: &[u8]| parse_fields(body).unwrap_err().code();
        assert_eq!(code(b"{"), "bad-json");
        assert_eq!(code(b"[1]"), "not-an-object");
        assert_eq!(code(b"{}"), "no-fields");
        assert_eq!(code(br#"{"Sms": 1}"#), "bad-field-name");
        assert_eq!(code(br#"{"_by.sms": 1}"#), "bad-field-name");
        assert_eq!(code(br#"{"email": {}}"#), "reserved-field");
        let big = format!(r#"{{"a": "{}"}}"#, "x".repeat(MAX_FIELD_BYTES));
        assert_eq!(code(big.as_bytes()), "field-too-large");
        let many: Vec<String> = (0..=MAX_FIELDS).map(|i| format!(r#""f{i}": 1"#)).collect();
        assert_eq!(
            code(format!("{{{}}}", many.join(",")).as_bytes()),
            "too-many-fields"
        );
        assert_eq!(code(&vec![b' '; MAX_BODY_BYTES + 1]), "body-too-large");
    }

    #[test]
    fn decodes_path_segments() {
        assert_eq!(
            percent_decode("bob%2Bnews%40example.com"),
            "bob+news@example.com"
        );
        assert_eq!(percent_decode("a%zz%"), "a%zz%");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    proptest::proptest! {
        /// Any body a channel can send: refused, or fields within every limit, never a panic.
        #[test]
        fn any_body_is_refused_or_within_limits(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            json_like in "\\{(\"[a-z_A-Z0-9.]{0,12}\": ?(\"\\PC{0,20}\"|[0-9]{1,5}|null|\\{\\}|\\[\\]), ?){0,6}\\}",
        ) {
            for body in [body.as_slice(), json_like.as_bytes()] {
                if let Ok(fields) = parse_fields(body) {
                    proptest::prop_assert!(!fields.is_empty() && fields.len() <= MAX_FIELDS);
                    for (name, value) in &fields {
                        proptest::prop_assert!(check_field_name(name).is_ok());
                        proptest::prop_assert!(!RESERVED_FIELDS.contains(&name.as_str()));
                        proptest::prop_assert!(value.to_string().len() <= MAX_FIELD_BYTES);
                    }
                }
            }
        }
    }
}
