//! One block rendered for the studio by the real pipeline's steps (the open's input, the
//! render key's decisions, the render job with its product photos): for a sample context or
//! an edited one, as a given mail client, reader location, scale and moment (time travel).
//! Says what the reader gets (rendered, suppressed, expired, the still, the first frame), how
//! long it took and how many frames a GIF has.

use crate::blocks::{Block, Campaign};
use crate::context::ContextFields;
use crate::open::render_job::{self, RenderJob, RenderJobError};
use crate::open::{from_context, Opener, RenderInput};
use crate::render::{Format, Renderer};
use crate::sources::mail_clients::ClientKind;
use crate::sources::Sources;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a studio render may wait for product photos.
const PHOTO_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("unknown client `{0}` (gmail-proxy, apple-mpp, outlook-word, browser, unknown)")]
    Client(String),
    #[error("unknown location `{0}`")]
    Location(String),
    #[error("scale must be 1, 2 or 3")]
    Scale,
    #[error("at = `{0}` is not a moment (2026-12-24T18:00 in UTC, or RFC 3339)")]
    At(String),
    #[error("campaign `{campaign}` has no sample `{sample}`")]
    Sample { campaign: String, sample: String },
    #[error("{0}")]
    Samples(String),
    #[error("the context must be a JSON object of fields: {0}")]
    Context(String),
    /// The render failed: what the reader gets is the block's fallback.
    #[error("{0}")]
    Render(String),
}

/// The mail clients a preview can be rendered for.
pub(super) const CLIENTS: [(&str, &str); 5] = [
    ("unknown", "Any mail app"),
    ("gmail-proxy", "Gmail (image proxy)"),
    ("apple-mpp", "Apple Mail (Privacy Protection)"),
    ("outlook-word", "Outlook for Windows (first frame)"),
    ("browser", "Webmail in a browser"),
];

/// A reader location a preview can be rendered for (written into `ctx.location`).
#[derive(Debug, Serialize)]
pub(super) struct LocationPreset {
    pub key: &'static str,
    pub city: &'static str,
    pub country: &'static str,
    pub lat: f64,
    pub lon: f64,
    pub time_zone: &'static str,
}

pub(super) const LOCATIONS: [LocationPreset; 5] = [
    LocationPreset {
        key: "berlin",
        city: "Berlin",
        country: "DE",
        lat: 52.52,
        lon: 13.405,
        time_zone: "Europe/Berlin",
    },
    LocationPreset {
        key: "paris",
        city: "Paris",
        country: "FR",
        lat: 48.857,
        lon: 2.352,
        time_zone: "Europe/Paris",
    },
    LocationPreset {
        key: "new-york",
        city: "New York",
        country: "US",
        lat: 40.713,
        lon: -74.006,
        time_zone: "America/New_York",
    },
    LocationPreset {
        key: "tokyo",
        city: "Tokyo",
        country: "JP",
        lat: 35.676,
        lon: 139.65,
        time_zone: "Asia/Tokyo",
    },
    LocationPreset {
        key: "sydney",
        city: "Sydney",
        country: "AU",
        lat: -33.869,
        lon: 151.209,
        time_zone: "Australia/Sydney",
    },
];

/// What a preview is asked for, from the studio URL's query.
#[derive(Debug)]
pub(super) struct PreviewAsk {
    /// A sample of the campaign (`samples/NAME.json`); `None` with an edited context.
    pub sample: Option<String>,
    pub client: ClientKind,
    pub location: Option<&'static LocationPreset>,
    pub scale: u8,
    /// Time travel: render as of this moment instead of now.
    pub at: Option<DateTime<Utc>>,
}

impl PreviewAsk {
    /// Reads `sample`, `client`, `location`, `scale` and `at` from a query string; others are
    /// ignored.
    pub(super) fn from_query(query: &BTreeMap<String, String>) -> Result<Self, PreviewError> {
        let text = |key: &str| query.get(key).map(String::as_str).filter(|v| !v.is_empty());
        let client = match text("client") {
            None => ClientKind::Unknown,
            Some(name) => ClientKind::from_name(name)
                .filter(|kind| CLIENTS.iter().any(|(n, _)| *n == kind.as_str()))
                .ok_or_else(|| PreviewError::Client(name.to_owned()))?,
        };
        let location = match text("location") {
            None => None,
            Some(key) => Some(
                LOCATIONS
                    .iter()
                    .find(|l| l.key == key)
                    .ok_or_else(|| PreviewError::Location(key.to_owned()))?,
            ),
        };
        let scale = match text("scale").unwrap_or("1") {
            "1" => 1,
            "2" => 2,
            "3" => 3,
            _ => return Err(PreviewError::Scale),
        };
        let at = text("at").map(parse_moment).transpose()?;
        Ok(Self {
            sample: text("sample").map(str::to_owned),
            client,
            location,
            scale,
            at,
        })
    }
}

/// `2026-12-24T18:00` (a browser's `datetime-local`, read as UTC) or RFC 3339.
fn parse_moment(text: &str) -> Result<DateTime<Utc>, PreviewError> {
    if let Ok(moment) = DateTime::parse_from_rfc3339(text) {
        return Ok(moment.to_utc());
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|moment| moment.and_utc())
        .ok_or_else(|| PreviewError::At(text.to_owned()))
}

/// What the reader of a preview gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum PreviewState {
    Rendered,
    /// The block's suppressed variant (`suppress_if` held).
    Suppressed,
    /// A countdown past its deadline.
    Expired,
    /// A countdown's still of when it ends (Apple's prefetch).
    Still,
    /// A countdown's first frame only (Outlook for Windows).
    FirstFrame,
}

impl PreviewState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            PreviewState::Rendered => "rendered",
            PreviewState::Suppressed => "suppressed",
            PreviewState::Expired => "expired",
            PreviewState::Still => "still",
            PreviewState::FirstFrame => "first-frame",
        }
    }
}

/// A finished preview.
pub(super) struct Preview {
    pub bytes: bytes::Bytes,
    pub content_type: &'static str,
    pub state: PreviewState,
    pub render_ms: f64,
    /// Frames of a GIF.
    pub frames: Option<usize>,
}

/// The context fields of a preview: the sample's (or `edited`), with the asked location.
pub(super) fn preview_fields(
    campaign: &Campaign,
    ask: &PreviewAsk,
    edited: Option<ContextFields>,
) -> Result<ContextFields, PreviewError> {
    let mut fields = match (edited, &ask.sample) {
        (Some(fields), _) => fields,
        (None, None) => ContextFields::new(),
        (None, Some(sample)) => campaign
            .samples()
            .map_err(|e| PreviewError::Samples(e.to_string()))?
            .into_iter()
            .find(|(name, _)| name == sample)
            .map(|(_, fields)| fields)
            .ok_or_else(|| PreviewError::Sample {
                campaign: campaign.name.clone(),
                sample: sample.clone(),
            })?,
    };
    if let Some(location) = ask.location {
        fields.insert(
            "location".into(),
            json!({"city": location.city, "country": location.country, "lat": location.lat,
                   "lon": location.lon, "time_zone": location.time_zone}),
        );
    }
    Ok(fields)
}

/// Parses an edited context (a JSON object of fields).
pub(super) fn edited_context(body: &[u8]) -> Result<ContextFields, PreviewError> {
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(PreviewError::Context("not an object".into())),
        Err(error) => Err(PreviewError::Context(error.to_string())),
    }
}

/// Which block a preview renders, in which format, with what.
pub(super) struct PreviewRender<'a> {
    pub renderer: Arc<Renderer>,
    pub sources: &'a Sources,
    pub campaign: Arc<Campaign>,
    pub block: Arc<Block>,
    pub format: Format,
}

impl PreviewRender<'_> {
    /// Renders for `fields` as `ask` says, as of `now` unless the ask travels in time.
    pub(super) async fn run(
        self,
        ask: &PreviewAsk,
        fields: &ContextFields,
        now: DateTime<Utc>,
    ) -> Result<Preview, PreviewError> {
        let PreviewRender {
            renderer,
            sources,
            campaign,
            block,
            format,
        } = self;
        render(renderer, sources, campaign, block, format, ask, fields, now).await
    }
}

#[allow(clippy::too_many_arguments)]
async fn render(
    renderer: Arc<Renderer>,
    sources: &Sources,
    campaign: Arc<Campaign>,
    block: Arc<Block>,
    format: Format,
    ask: &PreviewAsk,
    fields: &ContextFields,
    now: DateTime<Utc>,
) -> Result<Preview, PreviewError> {
    let started = Instant::now();
    let opener = Opener::offline(ask.client);
    let at = ask.at.unwrap_or(now);
    let subscriber = ask.sample.as_deref().unwrap_or("edited");
    let input = from_context(
        &block,
        fields,
        Some(subscriber),
        at,
        BTreeMap::new(),
        &opener,
        sources,
    );
    let decided = RenderInput::decide(
        &campaign, &block, format, ask.scale, input, &opener, sources,
    )
    .map_err(|e| PreviewError::Render(e.to_string()))?;
    let state = state_of(&block, &decided.input);
    let job = RenderJob {
        campaign,
        block,
        format,
        scale: ask.scale,
        input: decided.input,
    };
    let deadline = tokio::time::Instant::now() + PHOTO_WAIT;
    let done = render_job::run(renderer, &sources.photos, job, deadline, None)
        .await
        .map_err(|error| match error {
            RenderJobError::Render(error) => PreviewError::Render(error.to_string()),
            RenderJobError::Overloaded => PreviewError::Render(error.to_string()),
        })?;
    let rendered = done.rendered;
    let frames = (format == Format::Gif).then(|| gif_frames(&rendered.bytes));
    Ok(Preview {
        content_type: rendered.content_type,
        bytes: rendered.bytes,
        state,
        render_ms: started.elapsed().as_secs_f64() * 1000.0,
        frames,
    })
}

/// What the reader gets, from the input the render saw.
fn state_of(block: &Block, input: &crate::open::TemplateInput) -> PreviewState {
    if block
        .suppression
        .as_ref()
        .is_some_and(|s| s.applies(&input.to_tera_context(block)))
    {
        return PreviewState::Suppressed;
    }
    match &input.countdown {
        Some(request) if request.deadline <= input.now => PreviewState::Expired,
        Some(request) if request.ends.is_some() => PreviewState::Still,
        Some(request) if request.first_frame_only => PreviewState::FirstFrame,
        _ => PreviewState::Rendered,
    }
}

/// How many frames a GIF holds (0 when it does not decode).
fn gif_frames(bytes: &[u8]) -> usize {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let Ok(mut decoder) = options.read_info(bytes) else {
        return 0;
    };
    let mut frames = 0;
    while let Ok(Some(_)) = decoder.next_frame_info() {
        frames += 1;
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn asks_are_read_or_refused_with_a_reason() {
        let ask = PreviewAsk::from_query(&query(&[
            ("sample", "alice"),
            ("client", "outlook-word"),
            ("location", "tokyo"),
            ("scale", "2"),
            ("at", "2027-01-02T10:00"),
        ]))
        .unwrap();
        assert_eq!(ask.client, ClientKind::OutlookWord);
        assert_eq!(ask.location.map(|l| l.city), Some("Tokyo"));
        assert_eq!(ask.scale, 2);
        assert_eq!(ask.at.unwrap().to_rfc3339(), "2027-01-02T10:00:00+00:00");
        for (key, bad) in [
            ("client", "fax"),
            ("location", "mars"),
            ("scale", "4"),
            ("at", "soon"),
        ] {
            assert!(
                PreviewAsk::from_query(&query(&[(key, bad)])).is_err(),
                "{key}={bad}"
            );
        }
        assert_eq!(PreviewAsk::from_query(&query(&[])).unwrap().scale, 1);
    }

    #[test]
    fn edited_contexts_must_be_objects() {
        assert!(edited_context(br#"{"profile": {"first_name": "Ann"}}"#).is_ok());
        assert!(edited_context(b"[1, 2]").is_err());
        assert!(edited_context(b"{oops").is_err());
    }
}
