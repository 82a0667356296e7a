//! The web console: one page, its script and its style, embedded in the
//! binary (no CDN, no build step, nothing to install) and served by
//! `orchestr8 serve` at `/`. They hold no data (everything the console
//! shows comes from the REST API, with the token when the server has one),
//! so they are served without the token; the console asks for it.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ExecutionService;

const PAGE: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/app.js");
const STYLE: &str = include_str!("../../console/app.css");

/// Where the console is served; the token is not asked for there.
pub(super) const ASSETS: [&str; 3] = ["/", "/console/app.js", "/console/app.css"];

/// The console runs only its own script and style and talks only to its
/// own origin; no page may frame it.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

pub(super) fn routes() -> Router<Arc<ExecutionService>> {
    Router::new()
        .route(
            ASSETS[0],
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            ASSETS[1],
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            ASSETS[2],
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Asked again each time: a new binary serves a new console.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}
