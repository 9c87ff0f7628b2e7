//! The studio's pages (gallery, editor, login), drawn from Tera templates compiled into the
//! binary (`pages/*.html`), and the plain CSS and JavaScript they load (`assets/`): no build
//! step, nothing fetched from elsewhere.

use super::access::Session;
use super::error_view::ErrorView;
use super::preview::{CLIENTS, LOCATIONS};
use super::snippets::{image_extension, sample_url};
use super::staging::editable_files;
use super::Studio;
use crate::blocks::BlockKind;
use serde_json::json;

const TEMPLATES: [(&str, &str); 4] = [
    ("base.html", include_str!("pages/base.html")),
    ("gallery.html", include_str!("pages/gallery.html")),
    ("editor.html", include_str!("pages/editor.html")),
    ("login.html", include_str!("pages/login.html")),
];

const STUDIO_CSS: &[u8] = include_bytes!("assets/studio.css");
const STUDIO_JS: &[u8] = include_bytes!("assets/studio.js");

/// An embedded asset by file name: its content type and bytes.
pub(super) fn asset(file: &str) -> Option<(&'static str, &'static [u8])> {
    match file {
        "studio.css" => Some(("text/css; charset=utf-8", STUDIO_CSS)),
        "studio.js" => Some(("text/javascript; charset=utf-8", STUDIO_JS)),
        _ => None,
    }
}

pub(super) struct Pages {
    tera: tera::Tera,
}

impl Pages {
    pub(super) fn new() -> Result<Self, String> {
        let mut tera = tera::Tera::default();
        tera.add_raw_templates(TEMPLATES)
            .map_err(|e| e.to_string())?;
        tera.autoescape_on(vec![".html"]);
        Ok(Self { tera })
    }

    fn draw(&self, name: &str, context: &serde_json::Value) -> Result<String, String> {
        let context = tera::Context::from_value(context.clone()).map_err(|e| e.to_string())?;
        self.tera
            .render(name, &context)
            .map_err(|e| format!("{e:?}"))
    }

    pub(super) fn login(&self, next: &str, problem: Option<&str>) -> Result<String, String> {
        self.draw("login.html", &json!({"next": next, "problem": problem}))
    }

    /// Every campaign × block, with what the page's script needs to render each for every
    /// sample, the snippets per ESP and the links that open a block as a sample.
    pub(super) fn gallery(&self, studio: &Studio, session: &Session) -> Result<String, String> {
        let catalog = &studio.catalog;
        let mut campaigns = Vec::new();
        for name in catalog.campaign_dirs() {
            let dir = catalog.root().join(&name);
            let refused = catalog.refused(&name).map(|m| ErrorView::new(&m, &dir));
            let Some(campaign) = catalog.campaign(&name) else {
                campaigns
                    .push(json!({"name": name, "refused": refused, "blocks": [], "samples": []}));
                continue;
            };
            let samples: Vec<String> = campaign
                .samples()
                .map(|s| s.into_iter().map(|(n, _)| n).collect())
                .unwrap_or_default();
            let blocks: Vec<serde_json::Value> = campaign
                .blocks()
                .map(|block| {
                    let extension = image_extension(block);
                    let links: Vec<serde_json::Value> = samples
                        .iter()
                        .map(|sample| {
                            let token = studio.signer.token(sample);
                            json!({"sample": sample,
                                   "url": sample_url(&studio.public_base, &name, block, sample, &token)})
                        })
                        .collect();
                    json!({
                        "name": block.name,
                        "kind": match block.kind { BlockKind::Image => "image", BlockKind::Countdown => "countdown", BlockKind::Html => "html" },
                        "extension": extension,
                        "html": block.html_template.is_some(),
                        "width": block.width,
                        "height": block.height,
                        "alt": block.alt,
                        "personal": block.reads_context(),
                        "weight_cap": block.weight_cap_bytes,
                        "suppressible": block.suppression.is_some(),
                        "click": block.links.is_some(),
                        "click_url": block.links.as_ref().map(|_| format!("{}/click/{name}/{}", studio.public_base, block.name)),
                        "snippets": studio.snippets.for_block(&studio.public_base, &name, block),
                        "sample_links": if block.reads_context() { links } else { links.into_iter().take(1).collect() },
                    })
                })
                .collect();
            campaigns.push(
                json!({"name": name, "refused": refused, "blocks": blocks, "samples": samples}),
            );
        }
        self.draw(
            "gallery.html",
            &json!({
                "page": "gallery",
                "csrf": session.csrf,
                "campaigns": campaigns,
                "clients": CLIENTS.iter().map(|(k, n)| json!({"key": k, "name": n})).collect::<Vec<_>>(),
                "locations": LOCATIONS,
            }),
        )
    }

    /// The editor of one campaign's files, opened on `file` (the first template by default).
    pub(super) fn editor(
        &self,
        studio: &Studio,
        session: &Session,
        campaign: &str,
        file: Option<&String>,
    ) -> Result<String, String> {
        let dir = studio.catalog.root().join(campaign);
        let files = editable_files(&dir);
        let file = file
            .filter(|f| files.contains(f))
            .cloned()
            .or_else(|| files.iter().find(|f| f.ends_with(".svg")).cloned())
            .unwrap_or_else(|| "blocks.toml".to_owned());
        let content = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        let loaded = studio.catalog.campaign(campaign);
        // The preview starts on the first block that uses the file.
        let mut chosen = false;
        let blocks: Vec<serde_json::Value> = loaded
            .iter()
            .flat_map(|c| c.blocks())
            .map(|block| {
                let uses_file = !chosen
                    && [&block.template, &block.html_template]
                        .iter()
                        .any(|t| t.as_deref() == Some(file.as_str()));
                chosen |= uses_file;
                json!({"name": block.name, "kind": image_extension(block), "html": block.html_template.is_some(), "uses_file": uses_file})
            })
            .collect();
        let samples: Vec<String> = loaded
            .and_then(|c| c.samples().ok())
            .map(|s| s.into_iter().map(|(n, _)| n).collect())
            .unwrap_or_default();
        self.draw(
            "editor.html",
            &json!({
                "page": "editor",
                "csrf": session.csrf,
                "campaign": campaign,
                "files": files,
                "file": file,
                "content": content,
                "blocks": blocks,
                "samples": samples,
                "clients": CLIENTS.iter().map(|(k, n)| json!({"key": k, "name": n})).collect::<Vec<_>>(),
            }),
        )
    }
}
