//! The copy-paste tags for an email: per block and per email service provider (ESP), the
//! `<img>` (inside an `<a>` when the block has a click link) with that ESP's merge tags for the
//! subscriber id and token, each URL-encoded with the ESP's own filter, the block's alt text
//! and declared size. The ESPs are data (`assets/esp-snippets.toml`): adding one is adding an
//! entry there.

use crate::blocks::{Block, BlockKind};
use crate::cli::url::{block_url, UrlQuery};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The ESP file in the assets folder.
const ESP_FILE: &str = "esp-snippets.toml";
/// The shipped ESP file, used when the assets folder has none.
const SHIPPED: &str = include_str!("../../assets/esp-snippets.toml");

#[derive(Debug, thiserror::Error)]
pub enum SnippetError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

/// How one ESP merges the subscriber id and the token into a URL.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Esp {
    pub name: String,
    /// The subscriber id's merge tag, URL-encoded by the ESP.
    pub subscriber: String,
    /// The token's merge tag (the `opentime_token` profile field), URL-encoded by the ESP.
    pub token: String,
    #[serde(default)]
    pub notes: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EspFile {
    esp: BTreeMap<String, Esp>,
}

/// Every ESP the studio writes snippets for, by key.
pub(super) struct EspSnippets {
    esps: Vec<(String, Esp)>,
}

/// One block's snippet for one ESP.
#[derive(Debug, Serialize)]
pub(super) struct Snippet {
    pub esp: String,
    pub name: String,
    pub html: String,
    pub notes: String,
}

impl EspSnippets {
    /// The ESPs of `assets/esp-snippets.toml`, or the shipped list when the assets have none.
    pub(super) fn load(assets: &Path) -> Result<Self, SnippetError> {
        let path = assets.join(ESP_FILE);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|_| SHIPPED.to_owned());
        Self::parse(&text).map_err(|reason| SnippetError::File {
            path: path.display().to_string(),
            reason,
        })
    }

    fn parse(text: &str) -> Result<Self, String> {
        let file: EspFile = toml::from_str(text).map_err(|e| e.to_string())?;
        for (key, esp) in &file.esp {
            if esp.subscriber.trim().is_empty() || esp.token.trim().is_empty() {
                return Err(format!(
                    "esp `{key}`: subscriber and token must not be empty"
                ));
            }
        }
        Ok(Self {
            esps: file.esp.into_iter().collect(),
        })
    }

    /// The snippets of `block` for every ESP, with URLs under `base`.
    pub(super) fn for_block(&self, base: &str, campaign: &str, block: &Block) -> Vec<Snippet> {
        self.esps
            .iter()
            .map(|(key, esp)| Snippet {
                esp: key.clone(),
                name: esp.name.clone(),
                html: snippet_html(base, campaign, block, Some(esp)),
                notes: esp.notes.clone(),
            })
            .collect()
    }
}

/// The extension of a block's email image.
pub(super) fn image_extension(block: &Block) -> &'static str {
    match block.kind {
        BlockKind::Countdown => "gif",
        BlockKind::Image => "png",
        BlockKind::Html => "html",
    }
}

/// The tag for `block`: the `<img>` (in an `<a>` to the click route when it has a link), or
/// for an HTML block the fragment's URL in a comment (it is fetched by a page, not a mail app).
fn snippet_html(base: &str, campaign: &str, block: &Block, esp: Option<&Esp>) -> String {
    let merged = |route: &str| {
        let url = format!("{base}/{route}");
        match esp {
            Some(esp) if block.reads_context() => {
                format!("{url}?s={}&amp;t={}", esp.subscriber, esp.token)
            }
            _ => url,
        }
    };
    let extension = image_extension(block);
    if block.kind == BlockKind::Html {
        return format!(
            "<!-- HTML fragment, fetched by a page: {} -->",
            merged(&format!("html/{campaign}/{}.html", block.name))
        );
    }
    let image = format!(
        "<img src=\"{}\" alt=\"{}\" width=\"{}\" height=\"{}\" style=\"display:block;border:0;max-width:100%;height:auto\">",
        merged(&format!("img/{campaign}/{}.{extension}", block.name)),
        attribute(&block.alt),
        block.width,
        block.height,
    );
    if block.links.is_none() {
        return image;
    }
    format!(
        "<a href=\"{}\">{image}</a>",
        merged(&format!("click/{campaign}/{}", block.name))
    )
}

/// The signed URL that opens `block` as `subscriber` (a sample) on the server.
pub(super) fn sample_url(
    base: &str,
    campaign: &str,
    block: &Block,
    subscriber: &str,
    token: &str,
) -> String {
    let query = UrlQuery {
        subscriber: block.reads_context().then_some((subscriber, token)),
        ..UrlQuery::default()
    };
    block_url(base, campaign, &block.name, image_extension(block), &query)
}

/// `text` safe inside a double-quoted HTML attribute.
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Renderer;

    fn demo_block(name: &str) -> std::sync::Arc<Block> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let renderer = Renderer::load(&root.join("assets")).unwrap();
        let campaign =
            crate::blocks::Campaign::load(&root.join("templates/demo"), &renderer).unwrap();
        std::sync::Arc::clone(campaign.block(name).unwrap())
    }

    #[test]
    fn every_shipped_esp_merges_the_id_and_token_url_encoded() {
        let esps = EspSnippets::parse(SHIPPED).unwrap();
        let names: Vec<&str> = esps.esps.iter().map(|(_, e)| e.name.as_str()).collect();
        for esp in [
            "Mailchimp",
            "Klaviyo",
            "Braze",
            "Salesforce Marketing Cloud",
            "Iterable",
            "HubSpot",
        ] {
            assert!(names.contains(&esp), "{esp} in {names:?}");
        }
        let cart = demo_block("cart");
        let snippets = esps.for_block("https://r.example.com", "demo", &cart);
        let mailchimp = snippets.iter().find(|s| s.esp == "mailchimp").unwrap();
        assert_eq!(
            mailchimp.html,
            "<a href=\"https://r.example.com/click/demo/cart?s=*|URL:EMAIL|*&amp;t=*|URL:OTTOKEN|*\">\
             <img src=\"https://r.example.com/img/demo/cart.png?s=*|URL:EMAIL|*&amp;t=*|URL:OTTOKEN|*\" \
             alt=\"cart\" width=\"600\" height=\"300\" style=\"display:block;border:0;max-width:100%;height:auto\"></a>"
        );
        for snippet in &snippets {
            assert!(!snippet.html.contains("=\"\""), "{}", snippet.html);
            assert_eq!(snippet.html.matches('"').count() % 2, 0, "{}", snippet.html);
        }
        assert!(
            EspSnippets::parse("[esp.x]\nname = \"X\"\nsubscriber = \"\"\ntoken = \"t\"").is_err()
        );
    }

    #[test]
    fn shared_blocks_carry_no_merge_tags_and_samples_open_signed() {
        let esps = EspSnippets::parse(SHIPPED).unwrap();
        let countdown = demo_block("countdown");
        let html = &esps.for_block("http://h", "demo", &countdown)[0].html;
        assert!(
            html.starts_with("<img src=\"http://h/img/demo/countdown.gif\""),
            "{html}"
        );
        let cart = demo_block("cart");
        assert_eq!(
            sample_url("http://h", "demo", &cart, "bob+news@example.com", "TOK"),
            "http://h/img/demo/cart.png?s=bob%2Bnews%40example.com&t=TOK"
        );
    }
}
