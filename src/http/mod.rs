//! The HTTP face of opentime: accept loop and shutdown ([`server`]), routing ([`router`]), the
//! block routes ([`block_route`]), and the rules for caching headers ([`headers`]). Every
//! failure of a block route becomes an answer in one place: [`answer`].

mod answer;
mod block_route;
pub mod cdn;
mod click;
pub mod cors;
pub mod headers;
mod ingest;
mod locked;
mod pixel;
mod query;
mod router;
pub mod server;
mod shutdown;
mod state;

pub use state::AppState;
