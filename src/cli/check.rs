//! `opentime check`: compiles every campaign and renders every block against every sample
//! context, in every format the block serves (a countdown also as the still Apple's prefetch
//! gets). Exits non-zero, naming `file:line`, on any error.

use super::CliError;
use crate::blocks::{BlockKind, Catalog};
use crate::config::CheckArgs;
use crate::context::ContextFields;
use crate::open::{from_context, render_block, BlockRenderError, Opener, RenderInput};
use crate::render::{Format, Renderer};
use crate::sources::mail_clients::ClientKind;
use crate::sources::Sources;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

pub fn run_check(args: &CheckArgs) -> Result<(), CliError> {
    let renderer = Arc::new(Renderer::load(&args.common.assets)?);
    let (catalog, load_errors) = Catalog::load(&args.common.templates, renderer);
    let mut problems = 0;
    for error in &load_errors {
        println!("error: {error}");
        problems += 1;
    }
    let now = chrono::Utc::now();
    // Blocks that read `location` see the sample's own `location` and the demo stores.
    let sources = Sources::defaults()?;
    let opener = Opener::offline(ClientKind::Unknown);
    let apple = Opener::offline(ClientKind::AppleMpp);
    for campaign in catalog.campaigns() {
        let samples = match campaign.samples() {
            Ok(samples) if !samples.is_empty() => samples,
            Ok(_) => vec![("(empty context)".to_owned(), ContextFields::new())],
            Err(error) => {
                println!("error: {error}");
                problems += 1;
                continue;
            }
        };
        for block in campaign.blocks() {
            let mut formats = Vec::new();
            match block.kind {
                BlockKind::Image => formats.push((Format::Png, &opener, "")),
                BlockKind::Countdown => {
                    formats.push((Format::Gif, &opener, ""));
                    formats.push((Format::Gif, &apple, " (Apple's still)"));
                }
                BlockKind::Html => {}
            }
            if block.html_template.is_some() {
                formats.push((Format::Html, &opener, ""));
            }
            for (sample, fields) in &samples {
                let input = from_context(
                    block,
                    fields,
                    Some(sample),
                    now,
                    BTreeMap::new(),
                    &opener,
                    &sources,
                );
                for &(format, opener, variant) in &formats {
                    let started = Instant::now();
                    let rendered = RenderInput::decide(
                        &campaign,
                        block,
                        format,
                        1,
                        input.clone(),
                        opener,
                        &sources,
                    )
                    .map_err(BlockRenderError::from)
                    .and_then(|decided| {
                        render_block(
                            catalog.renderer(),
                            &campaign,
                            block,
                            format,
                            1,
                            &decided.input,
                        )
                    });
                    match rendered {
                        Ok(rendered) => println!(
                            "ok    {}/{}.{}{variant} with {sample}: {} bytes in {:.1} ms",
                            campaign.name,
                            block.name,
                            format.as_str(),
                            rendered.bytes.len(),
                            started.elapsed().as_secs_f64() * 1000.0
                        ),
                        Err(error) => {
                            problems += 1;
                            println!(
                                "error {}/{}.{}{variant} with {sample}: {error}",
                                campaign.name,
                                block.name,
                                format.as_str()
                            );
                        }
                    }
                }
            }
        }
    }
    if problems > 0 {
        return Err(CliError::CheckFailed(problems));
    }
    Ok(())
}
