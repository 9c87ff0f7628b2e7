//! opentime renders email content at the moment an email is opened.
//!
//! The request flow reads top to bottom through the modules: [`http`] parses and routes a
//! request, [`signing`] checks the subscriber token, [`context`] reads the subscriber's live
//! context, [`blocks`] holds the campaigns' manifests and compiled templates, [`render`] turns a
//! template into PNG, GIF or HTML bytes, and [`cache`] keeps rendered answers. `ARCHITECTURE.md`
//! at the top of the repository is the map.

pub mod blocks;
pub mod cache;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod countdown;
pub mod events;
pub mod gif;
pub mod http;
pub mod lock;
pub mod metrics;
pub mod names;
pub mod open;
pub mod render;
pub mod signing;
pub mod sources;
pub mod store;
pub mod template_error;

pub use cli::{check::run_check, render::run_render, tokens::run_tokens, url::run_url};
pub use http::server::{serve, start, start_with_clock, RunningServer, ServeError};
