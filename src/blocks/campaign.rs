//! One campaign loaded from disk: its blocks, its compiled templates, its fallbacks.
//!
//! Everything is checked at load time — the manifest, every template's syntax, every fallback
//! file — so a campaign either loads whole or not at all, and errors name `file:line`. The
//! templates live in the [`sandbox`](super::sandbox): every path the manifest names must stay
//! inside the campaign folder, templates cannot call functions that read the environment, the
//! clock or a random source, nor include templates of other folders (refused here, at load),
//! and a render's loops and output are bounded (refused when it renders).

use super::feeds::Feed;
use super::manifest::{Block, BlockKind, ManifestError};
use super::polls::Poll;
use super::sandbox::{self, RenderFailure};
use super::validate;
use super::variants::Shows;
use crate::context::ContextFields;
use crate::render::text_layout::Typesetter;
use crate::render::{Fallback, Renderer};
use crate::template_error::describe_tera_error;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use xxhash_rust::xxh3::Xxh3;

pub(super) const MANIFEST_FILE: &str = "blocks.toml";
const TEMPLATE_EXTENSIONS: [&str; 4] = ["svg", "html", "xml", "tera"];
/// Distinct missing characters logged per campaign (a context full of them logs no more).
const MAX_LOGGED_CHARACTERS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Manifest { path: String, source: ManifestError },
    /// A template failed to compile or render, or the sandbox refused it; the text is
    /// `file:line:column: reason` (a bound of the sandbox: `file: template-limit: …`).
    #[error("{0}")]
    Template(String),
    /// A path the manifest names leaves the campaign folder (absolute, `..`, symbolic link).
    #[error("{path}: block `{block}`: {setting} = {file:?} {reason}")]
    File {
        path: String,
        block: String,
        setting: &'static str,
        file: String,
        reason: String,
    },
    #[error("{path}: block `{block}` names template `{template}`, which does not exist")]
    MissingTemplate {
        path: String,
        block: String,
        template: String,
    },
    #[error("{path}: fallback of block `{block}`: {reason}")]
    Fallback {
        path: String,
        block: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Sample { path: String, reason: String },
}

/// A campaign ready to serve.
pub struct Campaign {
    pub name: String,
    pub dir: PathBuf,
    /// Hash of the manifest and every template: part of each render's cache key.
    pub version: u64,
    /// When this version was loaded: the `Last-Modified` of its shared blocks.
    pub loaded_at: std::time::SystemTime,
    blocks: BTreeMap<String, Arc<Block>>,
    fallbacks: BTreeMap<String, Arc<Fallback>>,
    /// Per block, a hash of what its fallback is made from, so a reload that leaves it
    /// unchanged reuses the prepared images instead of rasterizing them again.
    fallback_sources: BTreeMap<String, u64>,
    /// The live data feeds its blocks read.
    feeds: BTreeMap<String, Arc<Feed>>,
    /// Its polls.
    polls: BTreeMap<String, Arc<Poll>>,
    tera: tera::Tera,
    /// The renderer's text layout: what the text functions measure with, and which characters
    /// no font has.
    typesetter: Arc<Typesetter>,
    /// Characters no font has that this campaign's renders met: each is logged once.
    missing_logged: Mutex<BTreeSet<char>>,
}

impl std::fmt::Debug for Campaign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Campaign")
            .field("name", &self.name)
            .field("version", &format_args!("{:016x}", self.version))
            .field("blocks", &self.blocks.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CampaignError + '_ {
    move |source| CampaignError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Campaign {
    /// Loads `dir` (named after the campaign) with its manifest, templates and fallbacks.
    pub fn load(dir: &Path, renderer: &Renderer) -> Result<Self, CampaignError> {
        Self::load_after(dir, renderer, None)
    }

    /// [`Campaign::load`], reusing the fallbacks of `previous` (the version in service) whose
    /// sources did not change: a template edit then goes live without re-rasterizing them.
    pub fn load_after(
        dir: &Path,
        renderer: &Renderer,
        previous: Option<&Campaign>,
    ) -> Result<Self, CampaignError> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest_text =
            std::fs::read_to_string(&manifest_path).map_err(io_error(&manifest_path))?;
        let validate::Manifest {
            blocks,
            feeds,
            polls,
        } = validate::parse_manifest(&manifest_text).map_err(|source| CampaignError::Manifest {
            path: manifest_path.display().to_string(),
            source,
        })?;

        for block in &blocks {
            check_paths(dir, &manifest_path, block)?;
        }

        let mut hasher = Xxh3::new();
        hasher.update(manifest_text.as_bytes());
        let tera = compile_templates(dir, &mut hasher, renderer.typesetter())?;
        for block in &blocks {
            let suppressed = block.suppression.as_ref().and_then(|s| s.template());
            let countdown = block.countdown.as_deref();
            let expired = countdown.and_then(|c| c.expired_template.as_ref());
            let still = countdown.and_then(|c| c.still_template.as_ref());
            let variant_templates = block.variants.iter().flat_map(|variants| {
                variants.iter().flat_map(|variant| {
                    let template = match &variant.shows {
                        Shows::Template(template) => Some(template),
                        Shows::Block | Shows::Image(_) => None,
                    };
                    template.into_iter().chain(variant.html.iter())
                })
            });
            for template in block
                .template
                .iter()
                .chain(block.html_template.iter())
                .chain(suppressed)
                .chain(expired)
                .chain(still)
                .chain(variant_templates)
            {
                if !tera.get_template_names().any(|t| t == template) {
                    return Err(CampaignError::MissingTemplate {
                        path: manifest_path.display().to_string(),
                        block: block.name.clone(),
                        template: template.clone(),
                    });
                }
            }
        }

        let mut fallbacks: BTreeMap<String, Arc<Fallback>> = BTreeMap::new();
        let mut fallback_sources = BTreeMap::new();
        for (index, block) in blocks.iter().enumerate() {
            // Unchanged since the version in service: reuse it (a template edit then goes live
            // without re-rasterizing any fallback).
            let source = fallback_source(dir, block);
            let unchanged = previous.and_then(|previous| {
                let same = previous.fallback_sources.get(&block.name) == Some(&source);
                same.then(|| previous.fallbacks.get(&block.name).cloned())
                    .flatten()
            });
            // Blocks sharing a fallback (same files, same size) share one prepared copy: an
            // SVG fallback is rasterized twice per block, which is most of a reload's time.
            let shared = || {
                blocks[..index]
                    .iter()
                    .find(|earlier| same_fallback_image(earlier, block))
                    .and_then(|earlier| fallbacks.get(&earlier.name).cloned())
            };
            let fallback = match unchanged {
                Some(fallback) => fallback,
                None => Arc::new(
                    match shared() {
                        Some(earlier) => fallback_html(dir, block).map(|html| Fallback {
                            html: html.into(),
                            ..(*earlier).clone()
                        }),
                        None => load_fallback(dir, block, renderer),
                    }
                    .map_err(|reason| CampaignError::Fallback {
                        path: manifest_path.display().to_string(),
                        block: block.name.clone(),
                        reason,
                    })?,
                ),
            };
            fallbacks.insert(block.name.clone(), fallback);
            fallback_sources.insert(block.name.clone(), source);
        }
        for block in &blocks {
            if let Some(super::suppress::Instead::Image(file)) =
                block.suppression.as_ref().map(|s| &s.instead)
            {
                let bytes = std::fs::read(dir.join(file)).map_err(|e| CampaignError::Fallback {
                    path: manifest_path.display().to_string(),
                    block: block.name.clone(),
                    reason: format!("suppressed_image {file}: {e}"),
                })?;
                hasher.update(&bytes);
            }
            if let Some(file) = block
                .countdown
                .as_ref()
                .and_then(|c| c.expired_image.as_ref())
            {
                let bytes = std::fs::read(dir.join(file)).map_err(|e| CampaignError::Fallback {
                    path: manifest_path.display().to_string(),
                    block: block.name.clone(),
                    reason: format!("expired_image {file}: {e}"),
                })?;
                hasher.update(&bytes);
            }
            if let Some(file) = &block.fallback {
                if let Ok(bytes) = std::fs::read(dir.join(file)) {
                    hasher.update(&bytes);
                }
            }
            for variant in block.variants.iter().flat_map(|variants| variants.iter()) {
                if let Shows::Image(file) = &variant.shows {
                    let bytes =
                        std::fs::read(dir.join(file)).map_err(|e| CampaignError::Fallback {
                            path: manifest_path.display().to_string(),
                            block: block.name.clone(),
                            reason: format!("variant `{}` image {file}: {e}", variant.name),
                        })?;
                    hasher.update(&bytes);
                }
            }
        }

        Ok(Self {
            name,
            dir: dir.to_owned(),
            version: hasher.digest(),
            loaded_at: std::time::SystemTime::now(),
            blocks: blocks
                .into_iter()
                .map(|b| (b.name.clone(), Arc::new(b)))
                .collect(),
            fallbacks,
            fallback_sources,
            feeds,
            polls,
            tera,
            typesetter: Arc::clone(renderer.typesetter()),
            missing_logged: Mutex::new(BTreeSet::new()),
        })
    }

    pub fn block(&self, name: &str) -> Option<&Arc<Block>> {
        self.blocks.get(name)
    }

    pub fn blocks(&self) -> impl Iterator<Item = &Arc<Block>> {
        self.blocks.values()
    }

    pub fn feed(&self, name: &str) -> Option<&Arc<Feed>> {
        self.feeds.get(name)
    }

    pub fn poll(&self, name: &str) -> Option<&Arc<Poll>> {
        self.polls.get(name)
    }

    pub fn polls(&self) -> impl Iterator<Item = &Arc<Poll>> {
        self.polls.values()
    }

    /// The fallback of a block of this campaign (every block has one).
    pub fn fallback(&self, block: &str) -> Option<&Arc<Fallback>> {
        self.fallbacks.get(block)
    }

    /// The compiled templates (countdowns render their frames from them directly).
    pub(crate) fn tera(&self) -> &tera::Tera {
        &self.tera
    }

    /// Renders one of this campaign's templates within the sandbox's bounds (ranges, output
    /// size); errors read `file: reason`, a bound's `file: template-limit: …`.
    pub fn render_template(
        &self,
        template: &str,
        context: &tera::Context,
    ) -> Result<String, CampaignError> {
        let rendered = sandbox::render(&self.tera, template, context).map_err(|failure| {
            CampaignError::Template(match failure {
                RenderFailure::Tera(e) => describe_tera_error(&e, &self.dir, template),
                RenderFailure::TooLarge(bytes) => format!(
                    "{}: {}",
                    self.dir.join(template).display(),
                    RenderFailure::too_large(bytes)
                ),
            })
        })?;
        if template.ends_with(".svg") {
            self.missing_characters(template, &rendered);
        }
        Ok(rendered)
    }

    /// Characters of `svg`'s texts that no font has (drawn as `�`): counted in the metric,
    /// and each logged once for this campaign, naming it and the template, so the operator
    /// knows which font to install.
    pub fn missing_characters(&self, template: &str, svg: &str) -> Vec<char> {
        let missing: Vec<char> = self
            .typesetter
            .missing_characters(svg)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        if missing.is_empty() {
            return missing;
        }
        let Ok(mut logged) = self.missing_logged.lock() else {
            return missing;
        };
        let new: Vec<char> = missing
            .iter()
            .copied()
            .filter(|c| logged.len() < MAX_LOGGED_CHARACTERS && logged.insert(*c))
            .collect();
        if !new.is_empty() {
            tracing::warn!(
                campaign = %self.name,
                template,
                characters = %crate::render::name_characters(&new, 16),
                "no font has these characters: they are drawn as `�`; install a font that has \
                 them (see the README's \"Fonts: every script\")"
            );
        }
        missing
    }

    /// The sample contexts in `samples/*.json`, by file stem, in name order.
    pub fn samples(&self) -> Result<Vec<(String, ContextFields)>, CampaignError> {
        let dir = self.dir.join("samples");
        let mut samples = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(samples);
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Object(fields)) => samples.push((stem, fields)),
                Ok(_) => {
                    return Err(CampaignError::Sample {
                        path: path.display().to_string(),
                        reason: "a sample context must be a JSON object of fields".into(),
                    })
                }
                Err(e) => {
                    return Err(CampaignError::Sample {
                        path: format!("{}:{}:{}", path.display(), e.line(), e.column()),
                        reason: e.to_string(),
                    })
                }
            }
        }
        samples.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(samples)
    }
}

/// Compiles every template file directly in `dir` into one Tera (so templates can include
/// and import each other), feeding their text into `hasher`.
fn compile_templates(
    dir: &Path,
    hasher: &mut Xxh3,
    typesetter: &Arc<Typesetter>,
) -> Result<tera::Tera, CampaignError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| TEMPLATE_EXTENSIONS.contains(&e))
        })
        .collect();
    files.sort();
    let mut sources = Vec::with_capacity(files.len());
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        // A template file that is a link out of the folder would make that file includable.
        sandbox::campaign_file(dir, &name)
            .map_err(|reason| CampaignError::Template(format!("{}: {reason}", path.display())))?;
        let text = std::fs::read_to_string(path).map_err(io_error(path))?;
        hasher.update(name.as_bytes());
        hasher.update(text.as_bytes());
        sources.push((name, text));
    }
    let is_template = |name: &str| sources.iter().any(|(n, _)| n == name);
    for (name, text) in &sources {
        sandbox::check_template(name, text, is_template, &sandbox::TEMPLATE_FUNCTIONS).map_err(
            |refusal| {
                CampaignError::Template(format!(
                    "{}:{}: {}",
                    dir.join(name).display(),
                    refusal.line,
                    refusal.reason
                ))
            },
        )?;
    }
    sandbox::check_macro_recursion(&sources).map_err(|(name, refusal)| {
        CampaignError::Template(format!(
            "{}:{}: {}",
            dir.join(name).display(),
            refusal.line,
            refusal.reason
        ))
    })?;
    let mut tera = sandbox::new_template_tera(typesetter);
    tera.autoescape_on(vec![".svg", ".html", ".xml"]);
    tera.add_raw_templates(sources.iter().map(|(n, t)| (n.as_str(), t.as_str())))
        .map_err(|e| CampaignError::Template(describe_tera_error(&e, dir, failing_template(&e))))?;
    Ok(tera)
}

/// Every path `block` names is a file inside the campaign folder (see [`sandbox::campaign_file`]).
fn check_paths(dir: &Path, manifest_path: &Path, block: &Block) -> Result<(), CampaignError> {
    let suppressed = block.suppression.as_ref().and_then(|s| match &s.instead {
        super::suppress::Instead::Template(file) => Some(("suppressed_template", file)),
        super::suppress::Instead::Image(file) => Some(("suppressed_image", file)),
        super::suppress::Instead::Pixel => None,
    });
    let countdown = block.countdown.as_deref();
    let files = [
        ("template", block.template.as_ref()),
        ("html", block.html_template.as_ref()),
        ("fallback", block.fallback.as_ref()),
        ("fallback_html", block.fallback_html.as_ref()),
        (
            "expired_template",
            countdown.and_then(|c| c.expired_template.as_ref()),
        ),
        (
            "expired_image",
            countdown.and_then(|c| c.expired_image.as_ref()),
        ),
        (
            "still_template",
            countdown.and_then(|c| c.still_template.as_ref()),
        ),
    ]
    .into_iter()
    .filter_map(|(setting, file)| file.map(|file| (setting, file)))
    .chain(suppressed)
    .chain(
        block
            .variants
            .iter()
            .flat_map(|variants| variants.iter())
            .flat_map(|variant| {
                let shown = match &variant.shows {
                    Shows::Template(file) => Some(("variants.template", file)),
                    Shows::Image(file) => Some(("variants.image", file)),
                    Shows::Block => None,
                };
                shown
                    .into_iter()
                    .chain(variant.html.iter().map(|file| ("variants.html", file)))
            }),
    );
    for (setting, file) in files {
        sandbox::campaign_file(dir, file).map_err(|reason| CampaignError::File {
            path: manifest_path.display().to_string(),
            block: block.name.clone(),
            setting,
            file: file.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// The file a Tera compile error is about: its message reads "Failed to parse 'cart.svg'".
fn failing_template(error: &tera::Error) -> &str {
    let message = match &error.kind {
        tera::ErrorKind::Msg(message) => message.as_str(),
        _ => "",
    };
    message.split('\'').nth(1).unwrap_or_default()
}

/// A hash of everything a block's fallback is prepared from (an unreadable file hashes as
/// missing, so its error still shows when the fallback is prepared).
fn fallback_source(dir: &Path, block: &Block) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(&block.width.to_le_bytes());
    hasher.update(&block.height.to_le_bytes());
    hasher.update(&[u8::from(block.kind == BlockKind::Html)]);
    for file in [&block.fallback, &block.fallback_html] {
        match file {
            Some(file) => {
                hasher.update(file.as_bytes());
                hasher.update(&std::fs::read(dir.join(file)).unwrap_or_default());
            }
            None => hasher.update(b"\0none"),
        }
    }
    hasher.digest()
}

fn same_fallback_image(a: &Block, b: &Block) -> bool {
    (&a.fallback, a.width, a.height, a.kind) == (&b.fallback, b.width, b.height, b.kind)
}

fn fallback_html(dir: &Path, block: &Block) -> Result<String, String> {
    match &block.fallback_html {
        Some(file) => std::fs::read_to_string(dir.join(file)).map_err(|e| format!("{file}: {e}")),
        None => Ok(String::new()),
    }
}

fn load_fallback(dir: &Path, block: &Block, renderer: &Renderer) -> Result<Fallback, String> {
    let html = fallback_html(dir, block)?;
    let image = match (&block.fallback, block.kind) {
        (_, BlockKind::Html) => None,
        (Some(file), _) => {
            let bytes = std::fs::read(dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
            Some((file.as_str(), bytes))
        }
        (None, _) => None,
    };
    renderer
        .fallback(image, block.width, block.height, html)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_reuses_unchanged_fallbacks() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let renderer = Renderer::load(&root.join("assets")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let campaign_dir = dir.path().join("t");
        std::fs::create_dir_all(campaign_dir.join("fallback")).unwrap();
        std::fs::write(
            campaign_dir.join(MANIFEST_FILE),
            "[blocks.a]\nkind = \"image\"\ntemplate = \"a.svg\"\nwidth = 20\nheight = 10\nreads = []\nfallback = \"fallback/a.svg\"\n",
        )
        .unwrap();
        let svg = |fill: &str| {
            format!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"><rect width="20" height="10" fill="{fill}"/></svg>"#
            )
        };
        std::fs::write(campaign_dir.join("a.svg"), svg("red")).unwrap();
        std::fs::write(campaign_dir.join("fallback/a.svg"), svg("grey")).unwrap();
        let first = Campaign::load(&campaign_dir, &renderer).unwrap();

        std::fs::write(campaign_dir.join("a.svg"), svg("blue")).unwrap();
        let second = Campaign::load_after(&campaign_dir, &renderer, Some(&first)).unwrap();
        assert_ne!(first.version, second.version);
        assert!(Arc::ptr_eq(
            first.fallback("a").unwrap(),
            second.fallback("a").unwrap()
        ));

        std::fs::write(campaign_dir.join("fallback/a.svg"), svg("black")).unwrap();
        let third = Campaign::load_after(&campaign_dir, &renderer, Some(&second)).unwrap();
        assert!(!Arc::ptr_eq(
            second.fallback("a").unwrap(),
            third.fallback("a").unwrap()
        ));
        assert_ne!(
            second.fallback("a").unwrap().image,
            third.fallback("a").unwrap().image
        );
    }
}
