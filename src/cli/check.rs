//! `opentime check`: compiles every campaign and renders every block against every sample
//! context, in every format the block serves (a countdown also as the still Apple's prefetch
//! gets). Exits non-zero, naming `file:line`, on any error. Warns (without failing) about what a
//! reader would miss: a text the text functions cut or could not fit, a text running out of the
//! image, a character no font has.
//!
//! A block with variants is rendered once per variant with every sample (so every variant's
//! template is known to work), and the line says which one the rules pick for that sample. A
//! sample may pin what rules read besides its context in a `_open` object: `at` (RFC 3339),
//! `client` (a client kind, e.g. `gmail-proxy`), `feeds` (a value per feed name; feeds are
//! never fetched by `check`) and `votes` (per option, for a poll's results block).

use super::sample_pins::SamplePins;
use super::CliError;
use crate::blocks::{collect_notes, Block, BlockKind, Campaign, Catalog};
use crate::config::CheckArgs;
use crate::context::ContextFields;
use crate::open::{
    from_context, render_block, BlockRenderError, Opener, RenderInput, TemplateInput,
};
use crate::render::{Format, Renderer};
use crate::sources::mail_clients::ClientKind;
use crate::sources::Sources;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

pub fn run_check(args: &CheckArgs) -> Result<(), CliError> {
    let renderer = Arc::new(Renderer::load_with(
        &args.common.assets,
        &args.common.font_settings(),
    )?);
    let (catalog, load_errors) = Catalog::load(&args.common.templates, renderer);
    let mut problems = 0;
    let mut warnings = 0;
    for error in &load_errors {
        println!("error: {error}");
        problems += 1;
    }
    // Blocks that read `location` see the sample's own `location` and the demo stores.
    let sources = Sources::defaults()?;
    let now = chrono::Utc::now();
    for campaign in catalog.campaigns() {
        for line in check_campaign(catalog.renderer(), &campaign, &sources, now) {
            match line.level {
                CheckLevel::Ok => {}
                CheckLevel::Warning => warnings += 1,
                CheckLevel::Error => problems += 1,
            }
            println!("{line}");
        }
    }
    if warnings > 0 {
        println!("{warnings} warning(s): texts cut or running out of their box (see above)");
    }
    if problems > 0 {
        return Err(CliError::CheckFailed(problems));
    }
    Ok(())
}

/// How a line of a check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckLevel {
    Ok,
    Warning,
    Error,
}

/// One line of a campaign's check: a render that worked, a warning, or a problem.
#[derive(Debug, Clone)]
pub(crate) struct CheckLine {
    pub level: CheckLevel,
    pub text: String,
}

impl std::fmt::Display for CheckLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = match self.level {
            CheckLevel::Ok => "ok   ",
            CheckLevel::Warning => "warn ",
            CheckLevel::Error => "error",
        };
        write!(f, "{label} {}", self.text)
    }
}

/// Renders every block of `campaign` against every sample context as of `now`, in every
/// format the block serves (a countdown also as Apple's still): the rules `opentime check`
/// and the studio's save both apply.
pub(crate) fn check_campaign(
    renderer: &Renderer,
    campaign: &Campaign,
    sources: &Sources,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    let mut line = |level, text| lines.push(CheckLine { level, text });
    let samples = match campaign.samples() {
        Ok(samples) if !samples.is_empty() => samples,
        Ok(_) => vec![("(empty context)".to_owned(), ContextFields::new())],
        Err(error) => {
            line(CheckLevel::Error, error.to_string());
            return lines;
        }
    };
    let opener = Opener::offline(ClientKind::Unknown);
    let apple = Opener::offline(ClientKind::AppleMpp);
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
        // A shared block never sees the sample (no context, no subscriber): one render says
        // all there is to say about it.
        let renders = if block.reads_context() {
            samples.len()
        } else {
            1
        };
        for (sample, fields) in samples.iter().take(renders) {
            let pins = match SamplePins::take(fields) {
                Ok(pins) => pins,
                Err(reason) => {
                    line(
                        CheckLevel::Error,
                        format!(
                            "{}/{} with {sample}: _open: {reason}",
                            campaign.name, block.name
                        ),
                    );
                    continue;
                }
            };
            let pinned_opener = pins.client.map(Opener::offline);
            let mut input = from_context(
                block,
                &pins.fields,
                Some(sample),
                pins.at.unwrap_or(now),
                BTreeMap::new(),
                pinned_opener.as_ref().unwrap_or(&opener),
                sources,
            );
            pins.apply(campaign, block, &mut input);
            for (input, shown) in &variant_inputs(block, &input) {
                for &(format, opener, variant) in &formats {
                    let opener = pinned_opener.as_ref().unwrap_or(opener);
                    let what = format!(
                        "{}/{}.{}{variant}{shown} with {sample}",
                        campaign.name,
                        block.name,
                        format.as_str()
                    );
                    let started = Instant::now();
                    let decided = RenderInput::decide(
                        campaign,
                        block,
                        format,
                        1,
                        input.clone(),
                        opener,
                        sources,
                    );
                    let rendered = match decided {
                        Ok(decided) => {
                            if format == Format::Png {
                                for warning in
                                    text_warnings(renderer, campaign, block, &decided.input)
                                {
                                    line(CheckLevel::Warning, format!("{what}: {warning}"));
                                }
                            }
                            render_block(renderer, campaign, block, format, 1, &decided.input)
                        }
                        Err(error) => Err(BlockRenderError::from(error)),
                    };
                    match rendered {
                        Ok(rendered) => line(
                            CheckLevel::Ok,
                            format!(
                                "{what}: {} bytes in {:.1} ms",
                                rendered.bytes.len(),
                                started.elapsed().as_secs_f64() * 1000.0
                            ),
                        ),
                        Err(error) => line(CheckLevel::Error, format!("{what}: {error}")),
                    }
                }
            }
        }
    }
    lines
}

/// The inputs to render for `block`: one per variant when it has variants (each forced, and
/// named in the output, with the one its rules pick marked), else `input` alone.
fn variant_inputs(block: &Block, input: &TemplateInput) -> Vec<(TemplateInput, String)> {
    let Some(variants) = &block.variants else {
        return vec![(input.clone(), String::new())];
    };
    let picked = (!variants.is_test()).then(|| {
        variants
            .by_rules(&input.to_tera_context(block))
            .name
            .clone()
    });
    variants
        .iter()
        .map(|variant| {
            let mut forced = input.clone();
            forced.variant = Some(variant.name.clone());
            let mark = if picked.as_deref() == Some(variant.name.as_str()) {
                ", picked by the rules"
            } else {
                ""
            };
            (forced, format!(" [variant {}{mark}]", variant.name))
        })
        .collect()
}

/// What a reader of `block` rendered for `input` would miss: texts the text functions cut or
/// could not fit, texts that run outside the image, characters no font has.
fn text_warnings(
    renderer: &Renderer,
    campaign: &Campaign,
    block: &Block,
    input: &TemplateInput,
) -> Vec<String> {
    let Some(template) = block.template.as_deref() else {
        return Vec::new();
    };
    let (svg, notes) =
        collect_notes(|| campaign.render_template(template, &input.to_tera_context(block)));
    let Ok(svg) = svg else {
        // The render itself reports the error.
        return Vec::new();
    };
    let mut warnings: Vec<String> = notes.iter().map(ToString::to_string).collect();
    if let Ok(overflows) = renderer.text_overflows(&svg) {
        for overflow in overflows {
            let sides = ["left", "top", "right", "bottom"]
                .iter()
                .zip(overflow.past)
                .filter(|(_, by)| *by > 0.0)
                .map(|(side, by)| format!("{by:.0} px past the {side} edge"))
                .collect::<Vec<_>>()
                .join(", ");
            warnings.push(format!(
                "text \"{}\" runs out of the image ({sides})",
                overflow.text
            ));
        }
    }
    let missing = campaign.missing_characters(template, &svg);
    if !missing.is_empty() {
        warnings.push(format!(
            "no font has {}: drawn as � (install a font that has them; see the README's \
             Fonts: every script)",
            crate::render::name_characters(&missing, 8)
        ));
    }
    warnings
}
