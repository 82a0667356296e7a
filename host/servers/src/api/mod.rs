//! The HTTP interfaces, on axum: the orchestrator's REST API
//! ([`ExecutionService`]: execute, status, journal, cancel) and one agent as
//! a microservice ([`AgentService`]: `POST /process`, `GET /health`).
//!
//! Both share the same hardening ([`harden`]): one JSON error shape for
//! every failure (unknown routes and methods, bad JSON, oversized bodies,
//! timeouts, even a panic in a handler), a body size limit, a request
//! timeout, and a bearer token on every route but `/health` (and the
//! console's page and assets, which hold no data) when one is set.

mod catalog;
mod console;
mod error;
mod events;
mod executions;
mod extract;
mod metrics;
mod model;
mod openapi;
mod process;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ErrorEnvelope, status_for};
pub use executions::{ExecutionService, ServiceOptions, TAKE_OVER_EVERY};
pub use extract::{ApiPath, ApiQuery, JsonBody};
pub use metrics::Metrics;
pub use model::{
    Accepted, AgentHealth, Cancelling, ExecuteQuery, ExecuteRequest, ExecutionView, Health,
    JournalPage, JournalQuery,
};
pub use process::AgentService;

use orchestr8_host::error::ErrorCode;

/// What every server enforces.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// When set, every route but `/health` needs `Authorization: Bearer <token>`.
    /// Never empty: the CLI refuses an empty token at startup.
    pub token: Option<String>,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// How long one request may take.
    pub request_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            token: None,
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(90),
        }
    }
}

/// Wraps `router` in the shared layers.
fn harden(router: Router, options: &HttpOptions) -> Router {
    let token: Option<Arc<str>> = options.token.as_deref().map(Arc::from);
    let timeout = options.request_timeout;
    router
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::InvalidInput,
                "this route does not take that method",
            )
            .with_status(StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(middleware::from_fn_with_state(timeout, time_limit))
        .layer(middleware::from_fn_with_state(token, authorize))
        .layer(DefaultBodyLimit::max(options.body_limit))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(ErrorCode::Internal, "the request failed inside the server")
                .into_response()
        }))
        .layer(TraceLayer::new_for_http().make_span_with(crate::api::request_span))
}

async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::Timeout,
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

async fn authorize(
    State(token): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/health" || console::ASSETS.contains(&path) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match given {
        Some(given) if same(given.as_bytes(), token.as_bytes()) => next.run(request).await,
        _ => ApiError::new(
            ErrorCode::Unauthorized,
            "this server needs `Authorization: Bearer <token>`",
        )
        .into_response(),
    }
}

/// The credentials of a `Bearer` authorization; the scheme name is
/// case-insensitive (RFC 9110 §11.1), one or more spaces follow it.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

/// The span of one HTTP request, the parent taken from its `traceparent`.
pub fn request_span(request: &http::Request<axum::body::Body>) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        execution_id = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(request.headers()))
    });
    let _ = span.set_parent(parent);
    span
}

/// Compares without an early exit, so timing says nothing of the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_name_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER   abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn tokens_compare_by_content() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
    }
}
