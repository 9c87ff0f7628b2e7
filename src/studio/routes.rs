//! The studio's URLs, all under `/studio/`, and the one gate every request passes: the login
//! page and `?token=` open a session; without one a page redirects to the login page and
//! anything else answers 401; a write (every POST) needs the session's CSRF header and no
//! foreign `Origin`. Answers are never cached and carry a strict content security policy.

use super::access::{cleared_cookie, same_origin, Session, CSRF_HEADER};
use super::error_view::ErrorView;
use super::preview::{self, PreviewAsk, PreviewError};
use super::staging::{self, StagingError};
use super::Studio;
use crate::blocks::{Block, Campaign};
use crate::cli::check::{check_campaign, CheckLevel};
use crate::render::Format;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, HOST,
    LOCATION, ORIGIN, REFERRER_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

/// The body of every studio answer (pages, images, the event stream).
pub type StudioBody = BoxBody<Bytes, Infallible>;

/// Largest request body: an edited file plus a little.
const MAX_BODY: usize = staging::MAX_FILE_BYTES + 4096;
/// Largest query string.
const MAX_QUERY: usize = 4096;
/// What studio pages may load: their own scripts and styles only; HTML fragments in frames
/// may carry inline styles and remote images, never scripts.
const POLICY: &str = "default-src 'self'; img-src 'self' blob: data: https:; \
     style-src 'self' 'unsafe-inline'; script-src 'self'; frame-src 'self'; \
     frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Answers one request to the studio.
pub async fn handle(studio: Arc<Studio>, request: Request<Incoming>) -> Response<StudioBody> {
    let mut response = route(&studio, request).await;
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

async fn route(studio: &Arc<Studio>, request: Request<Incoming>) -> Response<StudioBody> {
    let path = request.uri().path().to_owned();
    let Some(query) = query_of(request.uri().query()) else {
        return text(StatusCode::BAD_REQUEST, "query string too long\n");
    };
    let header = |name: HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let secure = header(HeaderName::from_static("x-forwarded-proto")).as_deref() == Some("https");
    let is_get = matches!(*request.method(), Method::GET | Method::HEAD);
    if path == "/" || path == "/studio" {
        return redirect("/studio/", None);
    }
    if path == "/studio/login" {
        return if is_get {
            page(studio.pages.login(next_of(&query), None))
        } else {
            login(studio, request, secure).await
        };
    }
    if let Some(given) = query.get("token") {
        return token_login(studio, &path, &query, given, secure);
    }
    let Some(session) = studio.access.session(header(COOKIE).as_deref()) else {
        let is_page = path == "/studio/" || path.starts_with("/studio/edit/");
        return if is_get && is_page {
            let next = form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>();
            redirect(&format!("/studio/login?next={next}"), None)
        } else {
            text(
                StatusCode::UNAUTHORIZED,
                "log in to the studio first (/studio/login)\n",
            )
        };
    };
    if !is_get {
        let csrf = header(HeaderName::from_static(CSRF_HEADER));
        if !session.csrf_matches(csrf.as_deref())
            || !same_origin(header(ORIGIN).as_deref(), header(HOST).as_deref())
        {
            return text(
                StatusCode::FORBIDDEN,
                "refused: this write does not carry the session's CSRF token, or comes from another site\n",
            );
        }
    }
    let segments: Vec<&str> = path.trim_start_matches("/studio/").split('/').collect();
    match (is_get, segments.as_slice()) {
        (true, [""]) => page(studio.pages.gallery(studio, &session)),
        (true, ["assets", file]) => {
            super::pages::asset(file).map_or_else(not_found, |(content_type, body)| {
                bytes_answer(StatusCode::OK, content_type, Bytes::from_static(body))
            })
        }
        (true, ["events"]) => events(studio),
        (_, ["render", campaign, file]) => {
            let edited = if is_get {
                None
            } else {
                match read_body(request).await {
                    Ok(body) => Some(body),
                    Err(response) => return response,
                }
            };
            render(studio, campaign, file, &query, edited).await
        }
        (true, ["fallback", campaign, file]) => fallback(studio, campaign, file, &query),
        (true, ["edit", campaign]) => match studio.catalog.root().join(campaign) {
            dir if crate::names::is_valid_name(campaign) && dir.is_dir() => page(
                studio
                    .pages
                    .editor(studio, &session, campaign, query.get("file")),
            ),
            _ => not_found(),
        },
        (_, ["api", action, campaign]) => {
            let target = match editable_file(studio, campaign, &query) {
                Ok(target) => target,
                Err(refusal) => return refusal.answer(),
            };
            match (is_get, *action) {
                (true, "file") => file_text(&target),
                (true, "history") => history(studio, &target),
                (true, "version") => version(studio, &target, &query, false),
                (true, "diff") => version(studio, &target, &query, true),
                (false, "preview" | "save") => match read_body(request).await {
                    Ok(body) if *action == "save" => save(studio, &target, body).await,
                    Ok(body) => edit_preview(studio, &target, &query, body).await,
                    Err(response) => response,
                },
                _ => not_found(),
            }
        }
        (false, ["logout"]) => logout(studio, &session),
        _ => not_found(),
    }
}

/// The login form: the right token opens a session and goes on to `next`.
async fn login(studio: &Studio, request: Request<Incoming>, secure: bool) -> Response<StudioBody> {
    let origin = request
        .headers()
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let host = request
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !same_origin(origin.as_deref(), host.as_deref()) {
        return text(
            StatusCode::FORBIDDEN,
            "refused: a login from another site\n",
        );
    }
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let next = next_of(&form);
    match form.get("token") {
        Some(token) if studio.access.token_matches(token) => open_session(studio, next, secure),
        _ => {
            let mut response = page(studio.pages.login(next, Some("That token is not right.")));
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
        }
    }
}

/// `?token=` given once: a session, then the same URL without the token.
fn token_login(
    studio: &Studio,
    path: &str,
    query: &BTreeMap<String, String>,
    given: &str,
    secure: bool,
) -> Response<StudioBody> {
    if !studio.access.token_matches(given) {
        let mut response = page(studio.pages.login(path, Some("That token is not right.")));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    let rest: Vec<(&String, &String)> = query.iter().filter(|(k, _)| *k != "token").collect();
    let mut target = path.to_owned();
    if !rest.is_empty() {
        let mut encoded = form_urlencoded::Serializer::new(String::new());
        encoded.extend_pairs(rest);
        target = format!("{target}?{}", encoded.finish());
    }
    open_session(studio, &target, secure)
}

fn open_session(studio: &Studio, next: &str, secure: bool) -> Response<StudioBody> {
    match studio.access.open_session() {
        Ok(session) => redirect(next, Some(session.cookie(secure))),
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
    }
}

fn logout(studio: &Studio, session: &Session) -> Response<StudioBody> {
    studio.access.close_session(&session.id);
    redirect("/studio/login", Some(cleared_cookie()))
}

/// Where to go after logging in: a studio path, nothing else (no open redirect).
fn next_of(query: &BTreeMap<String, String>) -> &str {
    query
        .get("next")
        .map(String::as_str)
        .filter(|next| next.starts_with("/studio/") && !next.contains("//") && !next.contains('\\'))
        .unwrap_or("/studio/")
}

fn events(studio: &Studio) -> Response<StudioBody> {
    let stream = super::live::reload_events(Arc::clone(&studio.catalog));
    let mut response = Response::new(BodyExt::boxed(stream));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

/// The campaign and block a studio URL names, and the format its extension asks for.
fn find_block(
    studio: &Studio,
    campaign: &str,
    file: &str,
) -> Option<(Arc<Campaign>, Arc<Block>, Format)> {
    let (block, extension) = file.rsplit_once('.')?;
    let format = match extension {
        "png" => Format::Png,
        "gif" => Format::Gif,
        "html" => Format::Html,
        _ => return None,
    };
    let (campaign, block) = studio.catalog.find(campaign, block)?;
    crate::open::serves_format(&block, format).then_some((campaign, block, format))
}

/// A block rendered for the gallery: the bytes, or 422 with the error (the reader would get
/// the block's fallback, at `/studio/fallback/…`).
async fn render(
    studio: &Studio,
    campaign: &str,
    file: &str,
    query: &BTreeMap<String, String>,
    edited: Option<Bytes>,
) -> Response<StudioBody> {
    let Some((campaign, block, format)) = find_block(studio, campaign, file) else {
        return not_found();
    };
    let dir = campaign.dir.clone();
    let result = async {
        let ask = PreviewAsk::from_query(query)?;
        let edited = edited
            .map(|body| preview::edited_context(&body))
            .transpose()?;
        let fields = preview::preview_fields(&campaign, &ask, edited)?;
        let renderer = Arc::clone(studio.catalog.renderer());
        let now = studio.clock.now();
        let render = preview::PreviewRender {
            renderer,
            sources: &studio.sources,
            campaign,
            block: Arc::clone(&block),
            format,
        };
        render.run(&ask, &fields, now).await
    };
    match result.await {
        Ok(preview) => preview_answer(preview, &block),
        Err(error) => preview_error(&error, &dir),
    }
}

fn preview_answer(preview: preview::Preview, block: &Block) -> Response<StudioBody> {
    let mut response = bytes_answer(StatusCode::OK, preview.content_type, preview.bytes);
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-studio-state", preview.state.as_str().to_owned());
    set("x-studio-render-ms", format!("{:.1}", preview.render_ms));
    set("x-studio-weight-cap", block.weight_cap_bytes.to_string());
    if let Some(frames) = preview.frames {
        set("x-studio-frames", frames.to_string());
    }
    response
}

fn preview_error(error: &PreviewError, campaign_dir: &std::path::Path) -> Response<StudioBody> {
    let status = match error {
        PreviewError::Render(_) | PreviewError::Samples(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::BAD_REQUEST,
    };
    json_answer(
        status,
        &json!({"error": ErrorView::new(&error.to_string(), campaign_dir)}),
    )
}

/// What the reader gets when the block fails: its fallback.
fn fallback(
    studio: &Studio,
    campaign: &str,
    file: &str,
    query: &BTreeMap<String, String>,
) -> Response<StudioBody> {
    let Some((campaign, block, format)) = find_block(studio, campaign, file) else {
        return not_found();
    };
    let Some(fallback) = campaign.fallback(&block.name) else {
        return not_found();
    };
    if format == Format::Html {
        return bytes_answer(
            StatusCode::OK,
            "text/html; charset=utf-8",
            fallback.html.clone(),
        );
    }
    let scale = query.get("scale").and_then(|s| s.parse().ok()).unwrap_or(1);
    bytes_answer(
        StatusCode::OK,
        fallback.content_type,
        fallback.image_for_scale(scale).clone(),
    )
}

/// Why `?file=` names no file the editor may open.
enum FileRefusal {
    NoCampaign,
    NotEditable(StagingError),
}

impl FileRefusal {
    fn answer(&self) -> Response<StudioBody> {
        match self {
            FileRefusal::NoCampaign => not_found(),
            FileRefusal::NotEditable(error) => text(StatusCode::BAD_REQUEST, &format!("{error}\n")),
        }
    }
}

/// A file the editor works on: its campaign, the campaign's folder, the file in it.
struct EditTarget<'a> {
    campaign: &'a str,
    dir: std::path::PathBuf,
    file: String,
}

/// The editable file of `campaign` that `?file=` names.
fn editable_file<'a>(
    studio: &Studio,
    campaign: &'a str,
    query: &BTreeMap<String, String>,
) -> Result<EditTarget<'a>, FileRefusal> {
    let dir = studio.catalog.root().join(campaign);
    if !crate::names::is_valid_name(campaign) || !dir.is_dir() {
        return Err(FileRefusal::NoCampaign);
    }
    let file = query.get("file").map(String::as_str).unwrap_or_default();
    let file = staging::editable(&dir, file).map_err(FileRefusal::NotEditable)?;
    Ok(EditTarget {
        campaign,
        dir,
        file,
    })
}

fn file_text(target: &EditTarget<'_>) -> Response<StudioBody> {
    match std::fs::read_to_string(target.dir.join(&target.file)) {
        Ok(content) => bytes_answer(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            Bytes::from(content),
        ),
        Err(error) => text(
            StatusCode::NOT_FOUND,
            &format!("{}: {error}\n", target.file),
        ),
    }
}

/// An edit staged and loaded, off the async threads.
async fn staged(
    studio: &Studio,
    target: &EditTarget<'_>,
    text: String,
) -> Result<staging::StagedCampaign, StagingError> {
    let renderer = Arc::clone(studio.catalog.renderer());
    let in_service = studio.catalog.campaign(target.campaign);
    let (dir, file) = (target.dir.clone(), target.file.clone());
    tokio::task::spawn_blocking(move || {
        staging::stage(&dir, in_service.as_deref(), &renderer, &file, &text)
    })
    .await
    .map_err(|e| StagingError::Io(e.to_string()))?
}

/// The edit's text (bounded UTF-8) staged, or the answer that refuses it.
async fn staged_edit(
    studio: &Studio,
    target: &EditTarget<'_>,
    body: &[u8],
) -> Result<(String, staging::StagedCampaign), Box<Response<StudioBody>>> {
    let refused = |error: StagingError| {
        let status = match error {
            StagingError::Load(_) => StatusCode::UNPROCESSABLE_ENTITY,
            StagingError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let view = ErrorView::new(&error.to_string(), &target.dir);
        Box::new(json_answer(
            status,
            &json!({"saved": false, "error": view, "problems": [view]}),
        ))
    };
    let text = staging::edit_text(body).map_err(refused)?.to_owned();
    let staged = staged(studio, target, text.clone())
        .await
        .map_err(refused)?;
    Ok((text, staged))
}

/// Preview as you type: the edited file staged, then one block rendered from the copy.
async fn edit_preview(
    studio: &Studio,
    target: &EditTarget<'_>,
    query: &BTreeMap<String, String>,
    body: Bytes,
) -> Response<StudioBody> {
    let staged = match staged_edit(studio, target, &body).await {
        Ok((_, staged)) => staged,
        Err(response) => return *response,
    };
    let block_name = query.get("block").map(String::as_str).unwrap_or_default();
    let Some(block) = staged.campaign.block(block_name).cloned() else {
        return text(
            StatusCode::BAD_REQUEST,
            &format!("no block `{block_name}` in the edited campaign\n"),
        );
    };
    let format = match query.get("format").map(String::as_str) {
        Some("html") => Format::Html,
        _ if block.kind == crate::blocks::BlockKind::Countdown => Format::Gif,
        _ => Format::Png,
    };
    if !crate::open::serves_format(&block, format) {
        return text(StatusCode::BAD_REQUEST, "the block has no such format\n");
    }
    let result = async {
        let ask = PreviewAsk::from_query(query)?;
        let fields = preview::preview_fields(&staged.campaign, &ask, None)?;
        let render = preview::PreviewRender {
            renderer: Arc::clone(studio.catalog.renderer()),
            sources: &studio.sources,
            campaign: Arc::clone(&staged.campaign),
            block: Arc::clone(&block),
            format,
        };
        render.run(&ask, &fields, studio.clock.now()).await
    };
    match result.await {
        Ok(preview) => preview_answer(preview, &block),
        Err(error) => {
            let message = staged.live_paths(&error.to_string());
            preview_error(&PreviewError::Render(message), &target.dir)
        }
    }
}

/// A save: written only when the edited campaign loads whole and every block renders against
/// every sample (`opentime check`'s rules); every save is kept in the history.
async fn save(studio: &Studio, target: &EditTarget<'_>, body: Bytes) -> Response<StudioBody> {
    let _one_at_a_time = studio.saving.lock().await;
    let (text, staged) = match staged_edit(studio, target, &body).await {
        Ok(staged) => staged,
        Err(response) => return *response,
    };
    let renderer = Arc::clone(studio.catalog.renderer());
    let sources = Arc::clone(&studio.sources);
    let now = studio.clock.now();
    let checked = Arc::clone(&staged.campaign);
    let lines =
        tokio::task::spawn_blocking(move || check_campaign(&renderer, &checked, &sources, now))
            .await
            .unwrap_or_default();
    let problems: Vec<ErrorView> = lines
        .iter()
        .filter(|line| line.level == CheckLevel::Error)
        .map(|line| ErrorView::new(&staged.live_paths(&line.text), &target.dir))
        .collect();
    if !problems.is_empty() {
        return json_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"saved": false, "problems": problems}),
        );
    }
    let (campaign, file) = (target.campaign, &target.file);
    let path = target.dir.join(file);
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    let version = match studio.history.record(campaign, file, &before, &text) {
        Ok(version) => version,
        Err(error) => return text_answer(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    if let Err(error) = staging::write_atomically(&path, &text) {
        return text_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("{file}: {error}"),
        );
    }
    let catalog = Arc::clone(&studio.catalog);
    let name = campaign.to_owned();
    let reloaded = tokio::task::spawn_blocking(move || catalog.reload(&name)).await;
    if let Ok(Err(error)) = reloaded {
        tracing::warn!(%error, "a checked save did not reload");
    }
    json_answer(
        StatusCode::OK,
        &json!({"saved": true, "version": version, "checked": lines.len()}),
    )
}

fn history(studio: &Studio, target: &EditTarget<'_>) -> Response<StudioBody> {
    match studio.history.list(target.campaign, &target.file) {
        Ok(versions) => json_answer(StatusCode::OK, &json!({"versions": versions})),
        Err(error) => text_answer(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

/// One saved version's text, or (`diff`) how the current file differs from it.
fn version(
    studio: &Studio,
    target: &EditTarget<'_>,
    query: &BTreeMap<String, String>,
    diff: bool,
) -> Response<StudioBody> {
    let file = &target.file;
    let id = query.get("id").map(String::as_str).unwrap_or_default();
    let saved = match studio.history.read(target.campaign, file, id) {
        Ok(saved) => saved,
        Err(error) => return text(StatusCode::NOT_FOUND, &format!("{error}\n")),
    };
    let body = if diff {
        let current = std::fs::read_to_string(target.dir.join(file)).unwrap_or_default();
        super::history::diff(
            &saved,
            &current,
            &format!("{file} ({id})"),
            &format!("{file} (now)"),
        )
    } else {
        saved
    };
    bytes_answer(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        Bytes::from(body),
    )
}

/// The query string as a map; `None` when it is longer than allowed.
fn query_of(raw: Option<&str>) -> Option<BTreeMap<String, String>> {
    let raw = raw.unwrap_or_default();
    (raw.len() <= MAX_QUERY).then(|| {
        form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect()
    })
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, Response<StudioBody>> {
    match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        )),
    }
}

fn page(html: Result<String, String>) -> Response<StudioBody> {
    match html {
        Ok(html) => bytes_answer(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from(html),
        ),
        Err(error) => {
            tracing::error!(%error, "studio page failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn\n",
            )
        }
    }
}

fn redirect(location: &str, cookie: Option<String>) -> Response<StudioBody> {
    let mut response = bytes_answer(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        Bytes::new(),
    );
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

fn not_found() -> Response<StudioBody> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

fn text(status: StatusCode, body: &str) -> Response<StudioBody> {
    bytes_answer(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(body.to_owned()),
    )
}

fn text_answer(status: StatusCode, body: &str) -> Response<StudioBody> {
    text(status, &format!("{body}\n"))
}

fn json_answer(status: StatusCode, value: &serde_json::Value) -> Response<StudioBody> {
    bytes_answer(status, "application/json", Bytes::from(value.to_string()))
}

fn bytes_answer(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<StudioBody> {
    let mut response = Response::new(Full::new(body).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
