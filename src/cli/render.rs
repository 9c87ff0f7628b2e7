//! `opentime render CAMPAIGN/BLOCK --context FILE.json [--at RFC3339] -o OUT`: one block,
//! rendered offline exactly as the server would render it — remote photos included, fetched
//! under the same allow-list settings (`OPENTIME_IMAGE_HOSTS`, …); the block's `location` comes
//! from the context file, and `client` from `--client`.

use super::sample_pins::SamplePins;
use super::{split_block_path, CliError};
use crate::blocks::Campaign;
use crate::config::RenderArgs;
use crate::context::ContextFields;
use crate::open::render_job::{self, RenderJob, RenderJobError};
use crate::open::{from_context, Opener, RenderInput};
use crate::render::{Format, Renderer};
use crate::sources::mail_clients::ClientKind;
use crate::sources::Sources;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub fn run_render(args: &RenderArgs) -> Result<(), CliError> {
    let (campaign_name, block_name, _) = split_block_path(&args.block)?;
    let format = match args.output.extension().and_then(|e| e.to_str()) {
        Some("png") => Format::Png,
        Some("gif") => Format::Gif,
        Some("html") => Format::Html,
        _ => {
            return Err(CliError::Usage(
                "the output file must end in .png, .gif or .html".into(),
            ))
        }
    };
    if !(1..=crate::render::MAX_SCALE).contains(&args.scale) {
        return Err(CliError::Usage(format!(
            "--scale must be 1 to {}",
            crate::render::MAX_SCALE
        )));
    }
    let client = ClientKind::from_name(&args.client)
        .ok_or_else(|| CliError::Usage(format!("--client {}: not a client kind", args.client)))?;
    let sources = Sources::from_args(&args.sources)?;
    let renderer = Arc::new(Renderer::load_with(
        &args.common.assets,
        &args.common.font_settings(),
    )?);
    let campaign = Arc::new(Campaign::load(
        &args.common.templates.join(campaign_name),
        &renderer,
    )?);
    let block = Arc::clone(
        campaign
            .block(block_name)
            .ok_or_else(|| CliError::NoSuchBlock {
                campaign: campaign_name.to_owned(),
                block: block_name.to_owned(),
            })?,
    );
    let fields = match &args.context {
        Some(path) => read_context(path)?,
        None => ContextFields::new(),
    };
    let pins = SamplePins::take(&fields).map_err(|reason| CliError::Input {
        path: "--context".into(),
        reason: format!("_open: {reason}"),
    })?;
    let at = match &args.at {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|e| CliError::Usage(format!("--at {text}: {e}")))?
            .with_timezone(&Utc),
        None => pins.at.unwrap_or_else(Utc::now),
    };
    let query = parse_query_pairs(&args.query)?;
    let opener = Opener::offline(
        pins.client
            .filter(|_| args.client == "unknown")
            .unwrap_or(client),
    );
    let mut input = from_context(
        &block,
        &pins.fields,
        Some(&args.subscriber),
        at,
        query,
        &opener,
        &sources,
    );
    pins.apply(&campaign, &block, &mut input);
    if let Some(variant) = &args.variant {
        if block
            .variants
            .as_ref()
            .and_then(|v| v.get(variant))
            .is_none()
        {
            return Err(CliError::Usage(format!(
                "--variant {variant}: the block has no such variant"
            )));
        }
        input.variant = Some(variant.clone());
    }
    let decided = RenderInput::decide(
        &campaign, &block, format, args.scale, input, &opener, &sources,
    )
    .map_err(|e| CliError::BlockRender(e.into()))?;
    let job = RenderJob {
        block,
        campaign,
        format,
        scale: args.scale,
        input: decided.input,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("cannot start the runtime: {e}")))?;
    let wait = Duration::from_millis(args.sources.image_timeout_ms) + Duration::from_secs(2);
    let done = runtime
        .block_on(async {
            let deadline = tokio::time::Instant::now() + wait;
            render_job::run(renderer, &sources.photos, job, deadline, None).await
        })
        .map_err(|error| match error {
            RenderJobError::Render(error) => CliError::BlockRender(error),
            RenderJobError::Overloaded => CliError::Usage(error.to_string()),
        })?;
    for (href, failure) in done.images.failures() {
        eprintln!("placeholder for {href}: {}", failure.reason());
    }
    let rendered = done.rendered;
    std::fs::write(&args.output, &rendered.bytes).map_err(|e| CliError::Input {
        path: args.output.display().to_string(),
        reason: e.to_string(),
    })?;
    eprintln!(
        "wrote {} ({} bytes, {})",
        args.output.display(),
        rendered.bytes.len(),
        rendered.content_type
    );
    Ok(())
}

/// Reads a JSON object of context fields.
pub(crate) fn read_context(path: &std::path::Path) -> Result<ContextFields, CliError> {
    let input_error = |reason: String| CliError::Input {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| input_error(e.to_string()))?;
    match serde_json::from_str(&text).map_err(|e| input_error(e.to_string()))? {
        serde_json::Value::Object(fields) => Ok(fields),
        _ => Err(input_error("a context is a JSON object of fields".into())),
    }
}

fn parse_query_pairs(pairs: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| CliError::Usage(format!("--query {pair}: expected KEY=VALUE")))
        })
        .collect()
}
