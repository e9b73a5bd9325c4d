//! The HTTP adapter: axum routes, authentication and authorisation, the JSON error envelope.
//!
//! Every route is declared once in [`routes::ROUTES`] with the [`Access`](routes::Access) it
//! needs; the authentication layer looks the matched route up there and refuses any route
//! that is missing (fail closed). Every failure, including malformed JSON, an unknown route
//! and a wrong method, answers `{"error": "...", "code": "..."}`.
//!
//! # Layout
//! - [`routes`] — the route table and the router.
//! - [`state`] — [`AppState`] and [`HttpConfig`].
//! - [`error`] — [`ApiError`] and the JSON body extractor.
//! - [`auth`] — bearer authentication, the per-address failure throttle, route permissions.
//! - [`observe`] — request timeout, request ids, HTTP metrics.
//! - [`handlers`] — one file per endpoint group.
//! - [`serve`] — serving on a listener, with header and idle timeouts and a connection cap.
//! - [`openapi`] — the OpenAPI document at `/openapi.json`.

pub mod auth;
pub mod error;
pub mod handlers;
pub mod limits;
pub mod observe;
pub mod openapi;
pub mod query;
pub mod routes;
pub mod serve;
pub mod state;

pub use error::ApiError;
pub use routes::{Access, ROUTES, RouteSpec, router};
pub use serve::{ConnectionLimits, serve};
pub use state::{AppState, HttpConfig, Services};
