//! Extractors whose every rejection is an [`ApiError`] in the one JSON
//! shape (axum's own answer in plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;
use orchestr8_host::error::ErrorCode;

/// A JSON body: 413 past the body limit, 400 naming the JSON path of what
/// does not fit.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "the request body is larger than this server accepts",
                )
            } else {
                ApiError::new(ErrorCode::InvalidInput, rejection.body_text())
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses JSON, naming the path of the first problem.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let invalid = |e: &serde_json::Error| {
        ApiError::new(
            ErrorCode::InvalidInput,
            format!("the request body is not valid JSON: {e}"),
        )
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            invalid(&inner)
        } else if path == "." {
            ApiError::new(
                ErrorCode::InvalidInput,
                format!("the request body does not fit: {inner}"),
            )
        } else {
            ApiError::new(
                ErrorCode::InvalidInput,
                format!("the request body does not fit at `{path}`: {inner}"),
            )
        }
    })?;
    de.end().map_err(|e| invalid(&e))?;
    Ok(value)
}

/// Query parameters; a bad one is a 400 in the JSON shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.body_text()))
    }
}

/// Path parameters; a bad one is a 400 in the JSON shape.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.body_text()))
    }
}
