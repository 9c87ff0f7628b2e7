//! `opentime report CAMPAIGN`: the campaign's test arms (opens, clicks, rate, probability of
//! being best) and poll counts, read from Redis — the same figures as `GET /v1/report/…`
//! (`crate::open::report`), as a table or, with `--json`, as JSON.

use super::CliError;
use crate::blocks::Catalog;
use crate::config::ReportArgs;
use crate::render::Renderer;
use std::sync::Arc;

/// The report of `args.campaign`, as text or JSON.
pub async fn run_report(args: &ReportArgs) -> Result<String, CliError> {
    let renderer = Arc::new(Renderer::load_with(
        &args.common.assets,
        &args.common.font_settings(),
    )?);
    let (catalog, _) = Catalog::load(&args.common.templates, renderer);
    let campaign = catalog
        .campaign(&args.campaign)
        .ok_or_else(|| CliError::Usage(format!("no campaign `{}` loads", args.campaign)))?;
    let store = super::connect_redis(&args.redis, "the counts are read").await?;
    let report = crate::open::report(&campaign, &store)
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(if args.json {
        serde_json::to_string_pretty(&report).unwrap_or_default()
    } else {
        report.to_text()
    })
}
