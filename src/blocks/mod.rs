//! Campaigns and their blocks: manifests, compiled templates, fallbacks and hot reload.
//!
//! `templates/{campaign}/blocks.toml` declares the blocks ([`manifest`]); the campaign's Tera
//! templates are compiled together ([`campaign`]); the [`Catalog`] holds every campaign behind
//! an atomic pointer so a reload ([`reload`]) swaps a whole campaign at once, and a campaign
//! that fails to load never replaces the last good one. Every Tera built here comes from the
//! [`sandbox`], which decides what templates may reach and how much one render may do.

mod campaign;
mod catalog;
mod condition;
pub mod feeds;
mod filters;
pub(crate) mod links;
mod manifest;
pub mod polls;
mod reload;
mod sandbox;
pub(crate) mod suppress;
mod text_functions;
mod validate;
pub mod variants;

pub use campaign::{Campaign, CampaignError};
pub use catalog::Catalog;
pub use manifest::{Block, BlockKind, CachePolicy, ManifestError};
pub use reload::TemplateWatcher;
pub use text_functions::{collect_notes, TextNote};

pub use crate::names::is_valid_name;
