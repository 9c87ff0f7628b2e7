//! The HTTP face of opentime: accept loop and shutdown ([`server`]), routing ([`router`]), and
//! one small file per route that turns a request into an open pipeline call (`crate::open`)
//! and its outcome into an answer. Every outcome becomes an answer in one place ([`answer`]);
//! every caching header is decided in one place ([`headers`]).

mod answer;
mod block_route;
mod click;
mod connection_limits;
mod cors;
mod headers;
mod ingest;
mod pixel;
mod report;
mod router;
pub mod server;
pub(crate) mod shutdown;
mod state;
mod vote;

pub use state::AppState;
