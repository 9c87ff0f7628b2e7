//! HTML fragments: the block's HTML template rendered with autoescaping on.

use super::RenderError;
use crate::blocks::Campaign;

pub fn render(
    campaign: &Campaign,
    template: &str,
    context: &tera::Context,
) -> Result<Vec<u8>, RenderError> {
    Ok(campaign.render_template(template, context)?.into_bytes())
}
