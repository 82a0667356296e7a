//! The one JSON error shape of every HTTP failure:
//! `{"error": {"code", "message", "details"}}`, with the status code that
//! goes with the code.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use orchestr8_host::error::{Coded, ErrorBody, ErrorCode};

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    // Boxed: handlers return `Result<_, ApiError>` everywhere; keep it small.
    body: Box<ErrorBody>,
    retry_after: Option<Duration>,
}

/// `{"error": …}` as sent.
#[derive(Serialize, schemars::JsonSchema)]
pub struct ErrorEnvelope {
    /// The failure.
    pub error: ErrorBody,
}

/// The HTTP status a failure with `code` answers with.
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidInput | ErrorCode::Validation => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::NotFound | ErrorCode::AgentNotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Overloaded
        | ErrorCode::Retryable
        | ErrorCode::CircuitOpen
        | ErrorCode::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Timeout | ErrorCode::BudgetExhausted => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::FuelExhausted
        | ErrorCode::MemoryLimit
        | ErrorCode::Trap
        | ErrorCode::CapabilityDenied
        | ErrorCode::InvalidOutput
        | ErrorCode::OutputTooLarge
        | ErrorCode::Fatal
        | ErrorCode::InvalidAgent
        | ErrorCode::InvalidConfig
        | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// A failure with the status its code implies.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::from_body(ErrorBody {
            code,
            message: message.into(),
            details: None,
        })
    }

    /// A failure from its JSON shape.
    pub fn from_body(body: ErrorBody) -> Self {
        ApiError {
            status: status_for(body.code),
            body: Box::new(body),
            retry_after: None,
        }
    }

    /// The same failure with another status (405 for a wrong method).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.body.details = Some(details);
        self
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The failure's code.
    pub fn code(&self) -> ErrorCode {
        self.body.code
    }
}

impl<E: Coded> From<&E> for ApiError {
    fn from(e: &E) -> Self {
        let mut error = ApiError::from_body(e.to_body());
        error.retry_after = e.retry_after();
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorEnvelope { error: *self.body })).into_response();
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: `Retry-After: 0` would invite a storm.
            let secs = wait.as_millis().div_ceil(1000).max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_client_or_server_status() {
        for code in ErrorCode::ALL {
            let status = status_for(code);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code}"
            );
        }
        assert_eq!(status_for(ErrorCode::Validation), StatusCode::BAD_REQUEST);
        assert_eq!(
            status_for(ErrorCode::Overloaded),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let response = ApiError::new(ErrorCode::Overloaded, "full")
            .retry_after(Duration::from_millis(1200))
            .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
