//! opentime renders email content at the moment an email is opened.
//!
//! One open flows down through the modules: [`http`] routes a request to the open pipeline
//! ([`open`]), which verifies the token ([`signing`]), reads the subscriber's context
//! (`context`, kept in a `store`) or what a locked block showed (`lock`), decides the render's
//! input and key, looks in the render cache (`cache`), and renders the block of a campaign
//! ([`blocks`]) — Tera, then [`render`] (SVG → PNG), or a [`countdown`] (frames → [`gif`]) —
//! while the open is recorded (`events`). `ARCHITECTURE.md` at the top of the repository is
//! the map.
//!
//! Modules are public only where the binary, the integration tests or the benches use them.
#![warn(unreachable_pub)]

pub mod arm_choice;
pub mod blocks;
pub(crate) mod cache;
pub(crate) mod channels;
pub(crate) mod cli;
pub mod clock;
pub mod config;
pub(crate) mod context;
pub mod countdown;
pub(crate) mod events;
pub mod gif;
pub mod http;
pub(crate) mod lock;
pub(crate) mod metrics;
pub(crate) mod names;
pub mod open;
pub mod render;
pub mod signing;
pub mod sources;
pub(crate) mod store;
pub mod studio;
pub(crate) mod tally;
pub(crate) mod template_bounds;
pub(crate) mod template_error;

pub use cli::events::{run_events, EventsRead};
pub use cli::report::run_report;
pub use cli::{check::run_check, render::run_render, tokens::run_tokens, url::run_url};
pub use http::server::{serve, start, start_with_clock, RunningServer, ServeError};
pub use studio::{run_studio, start_studio, RunningStudio};
